use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, DeploymentCircuitBreaker, DeploymentConfiguration,
    DeploymentRolloutState, LaunchType, LoadBalancer, NetworkConfiguration, PropagateTags,
    ServiceField,
};
use provision_aws::retry::{ECS_SERVICE_DEPENDENCIES, ECS_SERVICE_LINKED_ROLE, retry};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use provision_core::wait::{Backoff, Poll, until};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{aws, tag_pairs, tags};

/// A service running a task definition on Fargate behind a target group. Its node's name is
/// `<cluster>/<service>` ([`service_node_name`]): a service's name is unique only in its cluster.
pub struct Service {
    ecs: Client,
}

impl Service {
    pub fn new(ecs: Client) -> Self {
        Service { ecs }
    }
}

/// The node name of a service: `<cluster>/<service>`, as ECS itself spells a service.
pub fn service_node_name(cluster: &str, service: &str) -> String {
    format!("{cluster}/{service}")
}

fn split_name(name: &str) -> Option<(&str, &str)> {
    name.split_once('/')
}

/// Stops a deployment whose tasks keep failing, and goes back to the last one that worked.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ServiceSpec {
    pub cluster_arn: String,
    /// `FARGATE`.
    pub launch_type: String,
    /// `LATEST`.
    pub platform_version: String,
    pub desired_count: i32,
    /// The revision to run.
    pub task_definition_arn: String,
    /// Sorted.
    pub subnet_ids: Vec<String>,
    /// Sorted.
    pub security_group_ids: Vec<String>,
    pub assign_public_ip: bool,
    /// Where the load balancer finds the tasks.
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: i32,
    /// How long a new task may fail load balancer health checks before ECS replaces it.
    pub health_check_grace_period_seconds: i32,
    pub circuit_breaker: CircuitBreaker,
    /// During a deployment, at least this share of the desired tasks keeps running...
    pub minimum_healthy_percent: i32,
    /// ...and at most this share runs.
    pub maximum_percent: i32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ServiceOut {
    pub service_arn: String,
    pub service_name: String,
    pub cluster_arn: String,
}

/// Settings keys changed by one part of UpdateService.
const NETWORK: &[&str] = &["subnet_ids", "security_group_ids", "assign_public_ip"];
const LOAD_BALANCER: &[&str] = &["target_group_arn", "container_name", "container_port"];
const DEPLOYMENT: &[&str] = &[
    "circuit_breaker",
    "minimum_healthy_percent",
    "maximum_percent",
];

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

/// What the service is doing, if it is not steady: for progress messages and readiness.
fn unsteady(s: &aws_sdk_ecs::types::Service) -> Option<String> {
    if s.status() != Some("ACTIVE") {
        return Some(s.status().unwrap_or("unknown").to_string());
    }
    let deployments = s.deployments();
    if deployments.len() > 1 {
        return Some(format!(
            "{} deployments, the old one draining",
            deployments.len()
        ));
    }
    let primary = deployments.first();
    let rollout = primary.and_then(|d| d.rollout_state());
    let running = s.running_count();
    let desired = s.desired_count();
    if running != desired || matches!(rollout, Some(DeploymentRolloutState::InProgress)) {
        return Some(format!(
            "{running} of {desired} task(s) running, {} pending, deployment {}",
            s.pending_count(),
            rollout.map(|r| r.as_str()).unwrap_or("in progress")
        ));
    }
    None
}

fn service_live(s: &aws_sdk_ecs::types::Service) -> Result<Live, ResourceError> {
    let arn = s
        .service_arn()
        .ok_or_else(|| ResourceError::fatal("ECS described a service without its ARN"))?;
    let mut m = Map::new();
    m.insert(
        "cluster_arn".into(),
        json!(s.cluster_arn().unwrap_or_default()),
    );
    m.insert(
        "launch_type".into(),
        json!(s.launch_type().map(|l| l.as_str()).unwrap_or_default()),
    );
    if let Some(p) = s.platform_version() {
        m.insert("platform_version".into(), json!(p));
    }
    m.insert("desired_count".into(), json!(s.desired_count()));
    m.insert(
        "task_definition_arn".into(),
        json!(s.task_definition().unwrap_or_default()),
    );
    let vpc = s
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration());
    m.insert(
        "subnet_ids".into(),
        json!(vpc.map(|v| sorted(v.subnets())).unwrap_or_default()),
    );
    m.insert(
        "security_group_ids".into(),
        json!(vpc.map(|v| sorted(v.security_groups())).unwrap_or_default()),
    );
    m.insert(
        "assign_public_ip".into(),
        json!(vpc.and_then(|v| v.assign_public_ip()) == Some(&AssignPublicIp::Enabled)),
    );
    let lb = match s.load_balancers() {
        [one] => Some(one),
        _ => None,
    };
    m.insert(
        "target_group_arn".into(),
        json!(lb.and_then(|l| l.target_group_arn()).unwrap_or_default()),
    );
    m.insert(
        "container_name".into(),
        json!(lb.and_then(|l| l.container_name()).unwrap_or_default()),
    );
    m.insert(
        "container_port".into(),
        json!(lb.and_then(|l| l.container_port()).unwrap_or_default()),
    );
    // Reported by AWS; left out (compared with what was applied) where an emulator is silent.
    if let Some(g) = s.health_check_grace_period_seconds() {
        m.insert("health_check_grace_period_seconds".into(), json!(g));
    }
    if let Some(d) = s.deployment_configuration() {
        let cb = d.deployment_circuit_breaker();
        m.insert(
            "circuit_breaker".into(),
            json!(CircuitBreaker {
                enable: cb.is_some_and(|c| c.enable()),
                rollback: cb.is_some_and(|c| c.rollback()),
            }),
        );
        if let Some(p) = d.minimum_healthy_percent() {
            m.insert("minimum_healthy_percent".into(), json!(p));
        }
        if let Some(p) = d.maximum_percent() {
            m.insert("maximum_percent".into(), json!(p));
        }
    }
    let out = ServiceOut {
        service_arn: arn.to_string(),
        service_name: s.service_name().unwrap_or_default().to_string(),
        cluster_arn: s.cluster_arn().unwrap_or_default().to_string(),
    };
    let value = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    let live = Live::new(arn, m, value);
    Ok(match unsteady(s) {
        None => live.with_status("steady"),
        Some(why) => live.pending(why),
    })
}

fn network(spec: &ServiceSpec) -> Result<NetworkConfiguration, ResourceError> {
    Ok(NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder()
                .set_subnets(Some(spec.subnet_ids.clone()))
                .set_security_groups(Some(spec.security_group_ids.clone()))
                .assign_public_ip(if spec.assign_public_ip {
                    AssignPublicIp::Enabled
                } else {
                    AssignPublicIp::Disabled
                })
                .build()
                .map_err(|e| {
                    ResourceError::fatal(format!("could not build an ECS request: {e}"))
                })?,
        )
        .build())
}

fn load_balancer(spec: &ServiceSpec) -> LoadBalancer {
    LoadBalancer::builder()
        .target_group_arn(&spec.target_group_arn)
        .container_name(&spec.container_name)
        .container_port(spec.container_port)
        .build()
}

fn deployment(spec: &ServiceSpec) -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(spec.circuit_breaker.enable)
                .rollback(spec.circuit_breaker.rollback)
                .build(),
        )
        .minimum_healthy_percent(spec.minimum_healthy_percent)
        .maximum_percent(spec.maximum_percent)
        .build()
}

impl Service {
    /// The service, unless it does not exist or is being deleted.
    async fn describe(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<aws_sdk_ecs::types::Service>, ResourceError> {
        match self
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .include(ServiceField::Tags)
            .send()
            .await
        {
            // A deleted service lingers as DRAINING, then INACTIVE; neither is the service.
            Ok(out) => Ok(out
                .services()
                .iter()
                .find(|s| s.status() == Some("ACTIVE"))
                .cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_cluster_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("ecs:DescribeServices", e)),
        }
    }

    /// Whether the service is gone (INACTIVE, or not listed at all).
    async fn gone(&self, cluster: &str, service: &str) -> Result<Option<String>, ResourceError> {
        match self
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .services()
                .iter()
                .find(|s| s.status() != Some("INACTIVE"))
                .map(|s| {
                    format!(
                        "{} ({} task(s) running)",
                        s.status().unwrap_or("unknown"),
                        s.running_count()
                    )
                })),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_cluster_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("ecs:DescribeServices", e)),
        }
    }

    fn locate<'a>(
        lookup_name: Option<&'a str>,
        settings: Option<&'a ServiceSpec>,
        arn: Option<&'a str>,
    ) -> Option<(String, String)> {
        let from_name = lookup_name.and_then(split_name);
        let cluster = settings
            .map(|s| s.cluster_arn.clone())
            .filter(|c| !c.is_empty())
            .or_else(|| from_name.map(|(c, _)| c.to_string()))?;
        let service = arn
            .map(str::to_string)
            .or_else(|| from_name.map(|(_, s)| s.to_string()))?;
        Some((cluster, service))
    }
}

#[async_trait]
impl Kind for Service {
    fn name(&self) -> &'static str {
        "ecs.service"
    }
    fn noun(&self) -> &'static str {
        "ECS service"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["cluster_arn", "launch_type"]
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let recorded = lookup.recorded_settings::<ServiceSpec>();
        let Some((cluster, service)) = Self::locate(
            lookup.recorded_name(),
            recorded.as_ref(),
            lookup.physical_id(),
        ) else {
            return Ok(None);
        };
        let Some(s) = self.describe(&cluster, &service).await? else {
            return Ok(None);
        };
        cx.ensure_ours(
            &format!("ECS service {}", s.service_name().unwrap_or(&service)),
            tag_pairs(s.tags()),
        )?;
        service_live(&s).map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: ServiceSpec = desired.spec()?;
        let name = desired.name()?;
        let service_name = split_name(name).map(|(_, s)| s).unwrap_or(name);
        let network = network(&spec)?;
        // A fresh account's first service waits for ECS's service-linked role; a new cluster,
        // target group or role may not have reached ECS yet.
        let out = retry(
            cx,
            &[&ECS_SERVICE_LINKED_ROLE, &ECS_SERVICE_DEPENDENCIES],
            || async {
                self.ecs
                    .create_service()
                    .cluster(&spec.cluster_arn)
                    .service_name(service_name)
                    .task_definition(&spec.task_definition_arn)
                    .desired_count(spec.desired_count)
                    .launch_type(LaunchType::from(spec.launch_type.as_str()))
                    .platform_version(&spec.platform_version)
                    .network_configuration(network.clone())
                    .load_balancers(load_balancer(&spec))
                    .health_check_grace_period_seconds(spec.health_check_grace_period_seconds)
                    .deployment_configuration(deployment(&spec))
                    // A retry after a lost reply with the same token returns the same service.
                    .client_token(&desired.token)
                    .set_tags(Some(tags(cx)))
                    // Tasks carry the stack's tags too, so they can be told apart in the console.
                    .propagate_tags(PropagateTags::Service)
                    .enable_ecs_managed_tags(true)
                    .send()
                    .await
                    .map_err(|e| aws("ecs:CreateService", e))
            },
        )
        .await?;
        let s = out
            .service()
            .ok_or_else(|| ResourceError::fatal("ecs:CreateService returned no service"))?;
        let mut live = service_live(s)?;
        live.settings = to_settings(&spec);
        if live.ready {
            // Just created: wait for it to report its tasks running, whatever the reply said.
            live = live.pending("starting");
        }
        Ok(live)
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: ServiceSpec = desired.spec()?;
        let any = |keys: &[&str]| changed.iter().any(|c| keys.contains(&c.as_str()));
        let is = |key: &str| changed.iter().any(|c| c == key);
        // One call for everything that changed: a new revision is one UpdateService.
        let mut req = self
            .ecs
            .update_service()
            .cluster(&spec.cluster_arn)
            .service(&live.physical_id);
        if is("desired_count") {
            req = req.desired_count(spec.desired_count);
        }
        if is("task_definition_arn") {
            req = req.task_definition(&spec.task_definition_arn);
        }
        if is("platform_version") {
            req = req.platform_version(&spec.platform_version);
        }
        if any(NETWORK) {
            req = req.network_configuration(network(&spec)?);
        }
        if any(LOAD_BALANCER) {
            req = req.load_balancers(load_balancer(&spec));
        }
        if is("health_check_grace_period_seconds") {
            req = req.health_check_grace_period_seconds(spec.health_check_grace_period_seconds);
        }
        if any(DEPLOYMENT) {
            req = req.deployment_configuration(deployment(&spec));
        }
        // A new target group may not have reached ECS yet.
        let out = retry(cx, &[&ECS_SERVICE_DEPENDENCIES], || {
            let req = req.clone();
            async move { req.send().await.map_err(|e| aws("ecs:UpdateService", e)) }
        })
        .await?;
        let mut live = match out.service() {
            Some(s) => service_live(s)?,
            None => live.clone(),
        };
        live.settings = to_settings(&spec);
        if live.ready {
            live = live.pending("deploying");
        }
        Ok(live)
    }

    async fn wait_ready(&self, cx: &Cx, live: Live) -> Result<Live, ResourceError> {
        let arn = live.physical_id.clone();
        let wanted_td = live
            .settings
            .get("task_definition_arn")
            .and_then(Value::as_str)
            .map(str::to_string);
        let cluster = live
            .outputs
            .get("cluster_arn")
            .and_then(Value::as_str)
            .or_else(|| live.settings.get("cluster_arn").and_then(Value::as_str))
            .unwrap_or_default()
            .to_string();
        let name = live
            .outputs
            .get("service_name")
            .and_then(Value::as_str)
            .unwrap_or(&arn)
            .to_string();
        // Fargate tasks take a minute to pull and start, and the target group's health
        // checks another before a deployment completes.
        until(
            cx,
            &format!("ECS service {name} to be stable"),
            &provision_aws::timeouts::SERVICE,
            Backoff::SLOW.after(Duration::from_secs(10)),
            || async {
                let s = self.describe(&cluster, &arn).await?.ok_or_else(|| {
                    ResourceError::fatal(format!("ECS service {name} disappeared while starting"))
                })?;
                if let Some(failed) = s.deployments().iter().find(|d| {
                    d.status() == Some("PRIMARY")
                        && d.rollout_state() == Some(&DeploymentRolloutState::Failed)
                }) {
                    return Err(deployment_failed(&name, failed.rollout_state_reason(), &s));
                }
                if let Some(why) = unsteady(&s) {
                    return Ok(Poll::Pending(why));
                }
                // Steady, but on another revision than asked for: the circuit breaker rolled back.
                if let Some(want) = &wanted_td
                    && s.task_definition() != Some(want.as_str())
                {
                    return Err(deployment_failed(
                        &name,
                        Some("the circuit breaker rolled back to the previous revision"),
                        &s,
                    ));
                }
                let mut l = service_live(&s)?;
                l.settings = live.settings.clone();
                Ok(Poll::Ready(l))
            },
        )
        .await
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let recorded: Option<ServiceSpec> =
            serde_json::from_value(Value::Object(record.settings.clone())).ok();
        let Some((cluster, service)) = Self::locate(
            record.name.as_deref(),
            recorded.as_ref(),
            record.physical_id.as_deref(),
        ) else {
            return Ok(());
        };
        let Some(s) = self.describe(&cluster, &service).await? else {
            return Ok(());
        };
        let name = s.service_name().unwrap_or(&service).to_string();
        cx.ensure_ours(&format!("ECS service {name}"), tag_pairs(s.tags()))?;
        // Force: it scales the tasks down as part of the delete, in one call.
        match self
            .ecs
            .delete_service()
            .cluster(&cluster)
            .service(&service)
            .force(true)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_service_not_found_exception() || s.is_cluster_not_found_exception()
                }) =>
            {
                return Ok(());
            }
            Err(e) => return Err(aws("ecs:DeleteService", e)),
        }
        // Its tasks hold network interfaces in the subnets and the target group until they stop.
        until(
            cx,
            &format!("ECS service {name} to be deleted"),
            &provision_aws::timeouts::SERVICE_DELETE,
            Backoff::SLOW,
            || async {
                Ok(match self.gone(&cluster, &service).await? {
                    None => Poll::Ready(()),
                    Some(state) => Poll::Pending(state),
                })
            },
        )
        .await
    }
}

fn deployment_failed(
    name: &str,
    reason: Option<&str>,
    s: &aws_sdk_ecs::types::Service,
) -> ResourceError {
    let last_event = s
        .events()
        .first()
        .and_then(|e| e.message())
        .unwrap_or("none");
    ResourceError::fatal(format!(
        "the deployment of ECS service {name} failed: {} (last service event: {last_event})",
        reason.unwrap_or("tasks did not start or did not pass health checks")
    ))
    .with_hint("the app's log group has each task's output; check the image starts and answers /healthz on port 8080, then rerun `provision up`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_locate_the_service() {
        let name = service_node_name("streamlit-app-dev-cluster", "streamlit-app-dev-app");
        assert_eq!(
            Service::locate(Some(&name), None, None),
            Some((
                "streamlit-app-dev-cluster".to_string(),
                "streamlit-app-dev-app".to_string()
            ))
        );
        assert_eq!(
            Service::locate(Some(&name), None, Some("arn:svc")),
            Some((
                "streamlit-app-dev-cluster".to_string(),
                "arn:svc".to_string()
            ))
        );
        assert_eq!(Service::locate(None, None, None), None);
    }
}
