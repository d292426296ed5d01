//! The web tier: the Streamlit app on Fargate behind an HTTPS application load balancer, at
//! `https://<app domain>`.
//!
//! The graph is shaped so the slow waits overlap (see the node list in [`add`]):
//! - ACM validates the certificate while the load balancer provisions and the service starts.
//!   The service only needs its target group attached to the load balancer, not the
//!   certificate: the HTTP listener (which only redirects to HTTPS) carries a rule forwarding
//!   to the target group that no client can ever match, and the HTTPS listener, the only way
//!   in to the app, is added once the certificate is issued.
//! - Listeners and the DNS record need the load balancer to exist, not to be active.
//! - The app needs the backends' names and ARNs, not the backends being in service.

use std::collections::BTreeMap;
use std::sync::Arc;

use provision_acm::AcmKinds;
use provision_config::PolicyStatement;
use provision_core::graph::{Graph, GraphError};
use provision_core::input::{Derived, Ref};
use provision_core::names;
use provision_core::resource::Kind;
use provision_ecs::{ClusterOut, EcsKinds, ServiceOut};
use provision_elbv2::{Elbv2Kinds, LoadBalancerOut};
use provision_iam::policy;
use provision_logs::LogsKinds;
use provision_route53::Route53Kinds;
use serde_json::{Value, json};

use crate::backends::Backends;
use crate::images::Images;
use crate::network::Network;
use crate::{Clients, Kinds, OutputsPart, Project};

mod certificate;
mod dns;
mod load_balancer;
mod roles;
mod service;

/// The port Streamlit listens on in the container.
pub const APP_PORT: i32 = 8080;
/// Fargate size: a quarter vCPU and 2 GiB (the seed's).
pub const TASK_CPU: &str = "256";
pub const TASK_MEMORY: &str = "2048";
pub const CONTAINER_NAME: &str = "app";
pub const HEALTH_CHECK_PATH: &str = "/healthz";
pub const HEALTH_CHECK_INTERVAL_SECONDS: i32 = 60;
pub const HEALTH_CHECK_TIMEOUT_SECONDS: i32 = 5;
pub const UNHEALTHY_THRESHOLD: i32 = 5;
/// Two good checks (the minimum) put a new task in service: with checks a minute apart, the
/// default five would add three minutes to every deployment.
pub const HEALTHY_THRESHOLD: i32 = 2;
/// The default 300 s puts a five-minute floor under every rollout.
pub const DEREGISTRATION_DELAY_SECONDS: i32 = 30;
/// How long a starting task may fail health checks before ECS gives up on it.
pub const HEALTH_CHECK_GRACE_SECONDS: i32 = 60;
/// The CDK's FORWARD_SECRECY_TLS12_RES.
pub const SSL_POLICY: &str = "ELBSecurityPolicy-FS-1-2-Res-2019-08";
pub const LOG_RETENTION_DAYS: i32 = 30;
/// TEST-NET-1 (RFC 5737): documentation addresses, never routed on the internet. A load
/// balancer's `source-ip` condition matches the address of the TCP connection it accepted,
/// which a client cannot choose the way it chooses a header; a client would have to complete
/// a TCP handshake from an address no reply can reach. The VPC (10.0.0.0/16) does not contain
/// it either. So a rule matching only this address never matches any request.
pub const UNREACHABLE_SOURCE: &str = "192.0.2.1/32";
/// The attaching rule's priority: last, below anything anyone might add.
pub const ATTACH_RULE_PRIORITY: i32 = 50_000;
/// The load balancer answers on IPv4 and IPv6 (its subnets are dual stack; see
/// [`crate::network`]), which is what the seed's `::/0` ingress rules were for.
pub const IP_ADDRESS_TYPE: &str = "dualstack";
/// The security groups' descriptions. EC2 allows only `a-zA-Z0-9`, spaces and
/// `._-:/()#,@[]+=&;{}!$*` in a VPC security group's description, at most 255 characters
/// (API_CreateSecurityGroup, GroupDescription); an apostrophe is refused.
pub const LOAD_BALANCER_GROUP_DESCRIPTION: &str =
    "HTTPS from anywhere to the app load balancer, and HTTP to be redirected";
pub const SERVICE_GROUP_DESCRIPTION: &str = "The app port, from its load balancer only";

/// Every web-tier kind, each built once around its client.
pub struct WebKinds {
    pub acm: AcmKinds,
    pub route53: Route53Kinds,
    pub elbv2: Elbv2Kinds,
    pub ecs: EcsKinds,
    pub logs: LogsKinds,
}

impl WebKinds {
    pub fn new(clients: &Clients) -> Self {
        WebKinds {
            acm: AcmKinds::new(clients.acm.clone(), clients.route53.clone()),
            route53: Route53Kinds::new(clients.route53.clone()),
            elbv2: Elbv2Kinds::new(clients.elbv2.clone()),
            ecs: EcsKinds::new(clients.ecs.clone()),
            logs: LogsKinds::new(clients.logs.clone()),
        }
    }
    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        let mut all = self.acm.all();
        all.extend(self.route53.all());
        all.extend(self.elbv2.all());
        all.extend(self.ecs.all());
        all.extend(self.logs.all());
        all
    }
}

/// What the rest of the stack (and the user) reads from the web tier.
pub struct Web {
    pub app_domain: String,
    pub load_balancer: Ref<LoadBalancerOut>,
    pub cluster: Ref<ClusterOut>,
    pub service: Ref<ServiceOut>,
}

impl Web {
    pub fn outputs(&self) -> OutputsPart {
        let url = api_url(&self.app_domain);
        Derived::new(
            (
                self.cluster.ready(),
                self.service.ready(),
                self.load_balancer.ready(),
            ),
            move |(cluster, service, lb)| {
                BTreeMap::from([
                    ("api_url".to_string(), json!(url)),
                    ("cluster".to_string(), json!(cluster.cluster_name)),
                    ("service".to_string(), json!(service.service_name)),
                    ("load_balancer_dns".to_string(), json!(lb.dns_name)),
                ])
            },
        )
    }
}

/// The app's log group: `/ecs/<stack>/app`.
pub fn log_group_name(stack: &str) -> String {
    format!("/ecs/{stack}/app")
}

/// `https://<app domain>`.
pub fn api_url(app_domain: &str) -> String {
    format!("https://{app_domain}")
}

/// The seed's `prod.<domain>` CNAME, which only the prod environment has. (In other
/// environments the seed's CNAME would be `<domain>` itself, the zone apex, where DNS allows
/// no CNAME; the app is at `<environment>.<domain>` there anyway.)
pub fn prod_alias(environment: &str, domain_name: &str) -> Option<(String, String)> {
    (environment == "prod").then(|| (format!("prod.{domain_name}"), domain_name.to_string()))
}

/// Every name with a DNS record that leads to the load balancer: the app domain (its alias
/// records) and, in `prod`, the seed's `prod.<domain>` CNAME to it. A browser asks the load
/// balancer for exactly these names, so the certificate must cover each one.
pub fn served_names(environment: &str, domain_name: &str) -> Vec<String> {
    let mut names = vec![provision_config::app_domain(environment, domain_name)];
    names.extend(prod_alias(environment, domain_name).map(|(name, _)| name));
    names
}

/// The certificate's names: exactly the names served ([`served_names`]), the app domain first.
///
/// Not the bare domain outside `prod`, though the seed's certificate named it: ACM's DNS
/// validation record for a name is the same for every certificate of the account that names
/// it (ACM user guide, dns-validation.html: the CNAME stays valid for renewals and reuse; moto
/// derives it from the name alone), so a `dev` certificate naming the domain would share
/// `prod`'s validation record, and either environment's `down` would delete the record the
/// other's renewal needs.
pub fn certificate_spec(environment: &str, domain_name: &str) -> provision_acm::CertificateSpec {
    // The app domain, then the rest of `served_names` (a unit test holds the two equal).
    provision_acm::CertificateSpec::dns(
        &provision_config::app_domain(environment, domain_name),
        prod_alias(environment, domain_name).map(|(name, _)| name),
    )
}

/// The record types pointing the app domain at a load balancer: `A`, and `AAAA` only when it
/// answers on IPv6 too.
pub fn alias_record_types(ip_address_type: &str) -> Vec<&'static str> {
    if ip_address_type == "dualstack" {
        vec!["A", "AAAA"]
    } else {
        vec!["A"]
    }
}

/// The name of the target group: its fixed settings are part of it, so a change to them
/// makes a new group that takes over before the old one is deleted.
pub fn target_group_name(stack: &str, protocol: &str, port: i32, target_type: &str) -> String {
    let fixed = names::short_hash(format!("{protocol}:{port}:{target_type}").as_bytes(), 6);
    names::fit(stack, &format!("app-{fixed}"), names::limits::TARGET_GROUP)
}

/// The task role's permissions: invoke exactly the stack's endpoints and functions, plus the
/// config's extra statements. A statement with no resource (or no action) is left out, since
/// IAM refuses it; `None` when nothing is left.
pub fn task_policy(
    endpoint_arns: &[String],
    function_arns: &[String],
    extra: &[PolicyStatement],
) -> Option<Value> {
    let mut statements = Vec::new();
    if !endpoint_arns.is_empty() {
        statements.push(policy::allow(&["sagemaker:InvokeEndpoint"], endpoint_arns));
    }
    if !function_arns.is_empty() {
        statements.push(policy::allow(&["lambda:InvokeFunction"], function_arns));
    }
    for s in extra {
        if !s.actions.is_empty() && !s.resources.is_empty() {
            statements.push(policy::allow(&s.actions, &s.resources));
        }
    }
    (!statements.is_empty()).then(|| policy::document(statements))
}

/// Whether [`task_policy`] has anything to say, known before any ARN is.
fn has_task_policy(backends: &Backends, extra: &[PolicyStatement]) -> bool {
    !backends.endpoints.is_empty()
        || !backends.functions.is_empty()
        || extra
            .iter()
            .any(|s| !s.actions.is_empty() && !s.resources.is_empty())
}

/// The app's environment: the config's variables, and each backend's variable set to its name.
pub fn app_environment(project: &Project, backends: &Backends) -> BTreeMap<String, String> {
    let mut env = project.config.streamlit_environment_variables.clone();
    for f in &backends.functions {
        env.insert(f.environment_variable_name.clone(), f.function_name.clone());
    }
    for e in &backends.endpoints {
        env.insert(e.environment_variable_name.clone(), e.endpoint_name.clone());
    }
    env
}

/// Adds the web tier. Nodes, and what each waits for (`ready`, or only `exists`):
///
/// - `web/certificate` (the domain and every name served): nothing. Ready once ACM has made up
///   the validation records.
/// - `web/certificate/validation-record/<name>`: the certificate (ready).
/// - `web/certificate/validation`: the certificate (exists); every validation record, in order.
///   Ready once ISSUED.
/// - `web/log-group`, `web/cluster`, `web/role/execution`, `web/role/task`: nothing.
/// - `web/role/execution/policy`: its role, the app's repository. `web/role/task/policy`: its
///   role, and each backend (exists). `web/role/<role>/managed-policies` (none): its role; in
///   order, the role's policy.
/// - `web/task-definition`: the app image, both roles, the log group.
/// - `web/security-group/load-balancer`: the VPC. `web/security-group/service`: that group.
/// - `web/load-balancer`: its group, the public subnets; the internet gateway, in order.
/// - `web/target-group`: the VPC.
/// - `web/listener/http`: the load balancer (exists). `web/listener/http/attach-rule`: that
///   listener, the target group.
/// - `web/listener/https`: the load balancer (exists), the target group, the validation.
/// - `web/dns/app` and `web/dns/app-aaaa` (and `web/dns/prod` in prod): the load balancer
///   (exists).
/// - `web/service`: the cluster, task definition, target group, its group and the private
///   subnets; in order, the attach rule, the private subnets' NAT route and the roles'
///   permissions.
pub fn add(
    g: &mut Graph,
    project: &Project,
    kinds: &Kinds,
    net: &Network,
    images: &mut Images<'_>,
    backends: &Backends,
) -> Result<Web, GraphError> {
    let validation = certificate::add(g, project, &kinds.web)?;
    let app = service::add_task(g, project, kinds, images, backends)?;
    let lb = load_balancer::add(g, project, kinds, net, &validation)?;
    dns::add(g, project, &kinds.web, &lb.load_balancer)?;
    let service = service::add_service(g, project, kinds, net, &app, &lb)?;
    Ok(Web {
        app_domain: project.config.app_domain(),
        load_balancer: lb.load_balancer,
        cluster: app.cluster,
        service,
    })
}

#[cfg(test)]
mod tests;
