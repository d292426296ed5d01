use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{
    IpAddressType, LoadBalancerSchemeEnum, LoadBalancerStateEnum, LoadBalancerTypeEnum,
};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use provision_core::wait::{Backoff, Poll, until};
use serde::{Deserialize, Serialize};

use crate::{aws, ensure_live_ours, ensure_ours, no_retry, tags};

/// A load balancer, named by its node.
pub struct LoadBalancer {
    elb: Client,
}

impl LoadBalancer {
    pub fn new(elb: Client) -> Self {
        LoadBalancer { elb }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LoadBalancerSpec {
    /// `internet-facing` or `internal`.
    pub scheme: String,
    /// `application`.
    pub load_balancer_type: String,
    /// `ipv4` or `dualstack`.
    pub ip_address_type: String,
    /// Sorted.
    pub subnet_ids: Vec<String>,
    /// Sorted.
    pub security_group_ids: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LoadBalancerOut {
    pub load_balancer_arn: String,
    pub load_balancer_name: String,
    pub dns_name: String,
    /// For Route 53 alias records.
    pub canonical_hosted_zone_id: String,
    pub ip_address_type: String,
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

fn lb_live(
    lb: &aws_sdk_elasticloadbalancingv2::types::LoadBalancer,
) -> Result<Live, ResourceError> {
    let arn = lb
        .load_balancer_arn()
        .ok_or_else(|| ResourceError::fatal("ELB described a load balancer without its ARN"))?;
    let ip_address_type = lb
        .ip_address_type()
        .map(|t| t.as_str())
        .unwrap_or("ipv4")
        .to_string();
    let spec = LoadBalancerSpec {
        scheme: lb
            .scheme()
            .map(|s| s.as_str())
            .unwrap_or_default()
            .to_string(),
        load_balancer_type: lb
            .r#type()
            .map(|t| t.as_str())
            .unwrap_or_default()
            .to_string(),
        ip_address_type: ip_address_type.clone(),
        subnet_ids: sorted(
            &lb.availability_zones()
                .iter()
                .filter_map(|z| z.subnet_id().map(str::to_string))
                .collect::<Vec<_>>(),
        ),
        security_group_ids: sorted(lb.security_groups()),
    };
    let out = LoadBalancerOut {
        load_balancer_arn: arn.to_string(),
        load_balancer_name: lb.load_balancer_name().unwrap_or_default().to_string(),
        dns_name: lb.dns_name().unwrap_or_default().to_string(),
        canonical_hosted_zone_id: lb
            .canonical_hosted_zone_id()
            .unwrap_or_default()
            .to_string(),
        ip_address_type,
    };
    let value = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    let live = Live::new(arn, to_settings(&spec), value);
    let state = lb.state().and_then(|s| s.code());
    Ok(match state {
        Some(LoadBalancerStateEnum::Active) => live.with_status("active"),
        // Impaired (a zone is unhealthy) still serves; AWS recovers it on its own.
        Some(LoadBalancerStateEnum::ActiveImpaired) => live.with_status("active_impaired"),
        Some(s) => live.pending(s.as_str()),
        None => live.pending("unknown"),
    })
}

impl LoadBalancer {
    async fn describe_arn(
        &self,
        arn: &str,
    ) -> Result<Option<aws_sdk_elasticloadbalancingv2::types::LoadBalancer>, ResourceError> {
        match self
            .elb
            .describe_load_balancers()
            .load_balancer_arns(arn)
            .send()
            .await
        {
            Ok(out) => Ok(out.load_balancers().first().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_load_balancer_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("elasticloadbalancing:DescribeLoadBalancers", e)),
        }
    }

    async fn describe_name(
        &self,
        name: &str,
    ) -> Result<Option<aws_sdk_elasticloadbalancingv2::types::LoadBalancer>, ResourceError> {
        match self.elb.describe_load_balancers().names(name).send().await {
            Ok(out) => Ok(out.load_balancers().first().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_load_balancer_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("elasticloadbalancing:DescribeLoadBalancers", e)),
        }
    }
}

#[async_trait]
impl Kind for LoadBalancer {
    fn name(&self) -> &'static str {
        "elbv2.load-balancer"
    }
    fn noun(&self) -> &'static str {
        "load balancer"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["scheme", "load_balancer_type"]
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        if let Some(arn) = lookup.physical_id() {
            return self
                .describe_arn(arn)
                .await?
                .as_ref()
                .map(lb_live)
                .transpose();
        }
        let Some(name) = lookup.recorded_name() else {
            return Ok(None);
        };
        let Some(lb) = self.describe_name(name).await? else {
            return Ok(None);
        };
        let arn = lb.load_balancer_arn().unwrap_or_default();
        ensure_ours(&self.elb, cx, &format!("load balancer {name}"), arn).await?;
        lb_live(&lb).map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: LoadBalancerSpec = desired.spec()?;
        let name = desired.name()?;
        // The same name with the same settings returns the existing load balancer, so a retry
        // after a lost reply does not make a second one.
        let out = self
            .elb
            .create_load_balancer()
            .name(name)
            .scheme(LoadBalancerSchemeEnum::from(spec.scheme.as_str()))
            .r#type(LoadBalancerTypeEnum::from(spec.load_balancer_type.as_str()))
            .ip_address_type(IpAddressType::from(spec.ip_address_type.as_str()))
            .set_subnets(Some(spec.subnet_ids.clone()))
            .set_security_groups(Some(spec.security_group_ids.clone()))
            .set_tags(Some(tags(cx)))
            // Not every emulator is idempotent here: no SDK retry, and the engine's retry
            // looks by name first.
            .customize()
            .config_override(no_retry())
            .send()
            .await
            .map_err(|e| aws("elasticloadbalancing:CreateLoadBalancer", e))?;
        let lb = out.load_balancers().first().ok_or_else(|| {
            ResourceError::fatal(
                "elasticloadbalancing:CreateLoadBalancer returned no load balancer",
            )
        })?;
        let mut live = lb_live(lb)?;
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn verify_owner(&self, cx: &Cx, live: &Live) -> Result<(), ResourceError> {
        ensure_live_ours(&self.elb, cx, self.noun(), live).await
    }

    async fn update(
        &self,
        _cx: &Cx,
        desired: &Desired,
        live: &Live,
        changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: LoadBalancerSpec = desired.spec()?;
        let arn = &live.physical_id;
        if changed.iter().any(|c| c == "subnet_ids") {
            self.elb
                .set_subnets()
                .load_balancer_arn(arn)
                .set_subnets(Some(spec.subnet_ids.clone()))
                .send()
                .await
                .map_err(|e| aws("elasticloadbalancing:SetSubnets", e))?;
        }
        if changed.iter().any(|c| c == "security_group_ids") {
            self.elb
                .set_security_groups()
                .load_balancer_arn(arn)
                .set_security_groups(Some(spec.security_group_ids.clone()))
                .send()
                .await
                .map_err(|e| aws("elasticloadbalancing:SetSecurityGroups", e))?;
        }
        if changed.iter().any(|c| c == "ip_address_type") {
            self.elb
                .set_ip_address_type()
                .load_balancer_arn(arn)
                .ip_address_type(IpAddressType::from(spec.ip_address_type.as_str()))
                .send()
                .await
                .map_err(|e| aws("elasticloadbalancing:SetIpAddressType", e))?;
        }
        let mut live = live.clone();
        live.settings = to_settings(&spec);
        if let Some(out) = live.outputs.as_object_mut() {
            out.insert(
                "ip_address_type".into(),
                serde_json::json!(spec.ip_address_type),
            );
        }
        Ok(live)
    }

    async fn wait_ready(&self, cx: &Cx, live: Live) -> Result<Live, ResourceError> {
        let arn = live.physical_id.clone();
        let name = live
            .outputs
            .get("load_balancer_name")
            .and_then(|v| v.as_str())
            .unwrap_or(&arn)
            .to_string();
        // Load balancers take two to three minutes; nothing to see in the first half minute.
        until(
            cx,
            &format!("load balancer {name} to be active"),
            &provision_aws::timeouts::LOAD_BALANCER,
            Backoff::SLOW.after(Duration::from_secs(30)),
            || async {
                let lb = self
                    .describe_arn(&arn)
                    .await?
                    .ok_or_else(|| ResourceError::fatal(format!("load balancer {name} disappeared while starting")))?;
                match lb.state().and_then(|s| s.code()) {
                    Some(LoadBalancerStateEnum::Failed) => Err(ResourceError::fatal(format!(
                        "load balancer {name} failed to start: {}",
                        lb.state().and_then(|s| s.reason()).unwrap_or("AWS gave no reason")
                    ))
                    .with_hint("delete it (aws elbv2 delete-load-balancer) and rerun `provision up`, which creates it again")),
                    _ => {
                        let mut l = lb_live(&lb)?;
                        if l.ready {
                            l.settings = live.settings.clone();
                            Ok(Poll::Ready(l))
                        } else {
                            Ok(Poll::Pending(l.status.unwrap_or_default()))
                        }
                    }
                }
            },
        )
        .await
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(arn) = record.physical_id.as_deref() else {
            return Ok(());
        };
        let Some(lb) = self.describe_arn(arn).await? else {
            return Ok(());
        };
        let name = lb.load_balancer_name().unwrap_or(arn).to_string();
        ensure_ours(&self.elb, cx, &format!("load balancer {name}"), arn).await?;
        match self
            .elb
            .delete_load_balancer()
            .load_balancer_arn(arn)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_load_balancer_not_found_exception()) =>
            {
                return Ok(());
            }
            Err(e) => return Err(aws("elasticloadbalancing:DeleteLoadBalancer", e)),
        }
        // Its subnets and security groups stay in use until it is gone.
        until(
            cx,
            &format!("load balancer {name} to be deleted"),
            &provision_aws::timeouts::LOAD_BALANCER_DELETE,
            Backoff::FAST,
            || async {
                Ok(match self.describe_arn(arn).await? {
                    None => Poll::Ready(()),
                    Some(lb) => Poll::Pending(
                        lb.state()
                            .and_then(|s| s.code())
                            .map(|c| c.as_str().to_string())
                            .unwrap_or_else(|| "deleting".into()),
                    ),
                })
            },
        )
        .await
    }
}
