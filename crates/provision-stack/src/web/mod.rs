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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use provision_acm::{
    AcmKinds, CertificateOut, CertificateSpec, CertificateValidationOut, CertificateValidationSpec,
    ValidationRecordSpec,
};
use provision_config::PolicyStatement;
use provision_core::graph::{Graph, GraphError};
use provision_core::names;
use provision_core::resource::{Kind, Node, Ref};
use provision_ec2::{IngressRule, SecurityGroupOut, SecurityGroupSpec};
use provision_ecs::{
    CircuitBreaker, ClusterOut, ClusterSpec, EcsKinds, ServiceOut, ServiceSpec, TaskDefinitionOut,
    TaskDefinitionSpec,
};
use provision_elbv2::{
    Elbv2Kinds, ListenerAction, ListenerRuleSpec, ListenerSpec, LoadBalancerOut, LoadBalancerSpec,
    RuleConditionSpec, TargetGroupOut, TargetGroupSpec,
};
use provision_iam::policy;
use provision_iam::{ManagedPoliciesSpec, RoleOut, RolePolicySpec, RoleSpec};
use provision_logs::{LogGroupOut, LogGroupSpec, LogsKinds};
use provision_route53::{RecordSpec, Route53Kinds};
use serde_json::{Value, json};

use crate::backends::Backends;
use crate::images::{APP_FOLDER, Consumer, ImageOut, Images};
use crate::network::Network;
use crate::{Clients, Kinds, OutputsPart, Project};

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
        let (lb, cluster, service) = (
            self.load_balancer.clone(),
            self.cluster.clone(),
            self.service.clone(),
        );
        let url = api_url(&self.app_domain);
        Box::new(move |inputs| {
            Ok(BTreeMap::from([
                ("api_url".to_string(), json!(url)),
                (
                    "cluster".to_string(),
                    json!(inputs.get(&cluster)?.cluster_name),
                ),
                (
                    "service".to_string(),
                    json!(inputs.get(&service)?.service_name),
                ),
                (
                    "load_balancer_dns".to_string(),
                    json!(inputs.get(&lb)?.dns_name),
                ),
            ]))
        })
    }
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
/// - `web/certificate`: nothing. Ready once ACM has made up the validation records.
/// - `web/certificate/validation-record/<name>`: the certificate (ready).
/// - `web/certificate/validation`: every validation record. Ready once ISSUED.
/// - `web/log-group`, `web/cluster`, `web/role/execution`, `web/role/task`: nothing.
/// - `web/role/execution/managed-policies`: its role. `web/role/task/policy`: its role, and each
///   backend (exists).
/// - `web/task-definition`: the app image, both roles, the log group.
/// - `web/security-group/load-balancer`: the VPC. `web/security-group/service`: that group.
/// - `web/load-balancer`: its group, the public subnets, the internet gateway.
/// - `web/target-group`: the VPC.
/// - `web/listener/http`: the load balancer (exists). `web/listener/http/attach-rule`: that
///   listener, the target group.
/// - `web/listener/https`: the load balancer (exists), the target group, the validation.
/// - `web/dns/app` (and `web/dns/prod` in prod): the load balancer (exists).
/// - `web/service`: the cluster, task definition, attach rule, private subnets, its group, the
///   private subnets' NAT route, and the roles' permissions.
pub fn add(
    g: &mut Graph,
    project: &Project,
    kinds: &Kinds,
    net: &Network,
    images: &mut Images<'_>,
    backends: &Backends,
) -> Result<Web, GraphError> {
    let config = &project.config;
    let k = &kinds.web;
    let stack = project.stack_name();
    let zone = config.hosted_zone_id.clone();
    let domain = config.domain_name.clone();
    let app_domain = config.app_domain();
    let region = config.region.clone();

    // --- Certificate -------------------------------------------------------------------------
    let cert_spec = CertificateSpec::dns(&domain, [app_domain.clone()]);
    let cert_names = cert_spec.names();
    let spec = cert_spec.clone();
    let certificate = Node::new("web/certificate", k.acm.certificate.clone())
        .named(domain.clone())
        .spec(move |_| Ok(spec.clone()));
    let certificate_ref: Ref<CertificateOut> = certificate.handle();
    g.add(certificate)?;

    let mut validation = Node::new("web/certificate/validation", k.acm.validation.clone())
        .after_exists(&certificate_ref);
    for name in &cert_names {
        let (c, z, name) = (certificate_ref.clone(), zone.clone(), name.clone());
        let record = Node::new(
            format!("web/certificate/validation-record/{name}"),
            k.acm.validation_record.clone(),
        )
        .after(&certificate_ref)
        .spec(move |inputs| {
            let cert = inputs.get(&c)?;
            // Ready means ACM has named a record for every name, so this one is there.
            let wanted = cert.validation_records.iter().find(|r| r.domain == name);
            Ok(match wanted {
                Some(r) => json!(ValidationRecordSpec::new(&z, &cert.certificate_arn, r)),
                None => json!({"missing": format!("ACM named no validation record for {name}")}),
            })
        });
        validation = validation.after(&record.handle::<Value>());
        g.add(record)?;
    }
    let (c, z, names_for_messages) = (certificate_ref.clone(), zone.clone(), cert_names.clone());
    let validation = validation.spec(move |inputs| {
        Ok(CertificateValidationSpec {
            certificate_arn: inputs.get(&c)?.certificate_arn,
            hosted_zone_id: z.clone(),
            names: names_for_messages.clone(),
        })
    });
    let validation_ref: Ref<CertificateValidationOut> = validation.handle();
    g.add(validation)?;

    // --- Logs, cluster, roles ----------------------------------------------------------------
    let log_group_name = format!("/ecs/{stack}/app");
    let log_group = Node::new("web/log-group", k.logs.log_group.clone())
        .named(log_group_name.clone())
        .spec(|_| {
            Ok(LogGroupSpec {
                retention_in_days: Some(LOG_RETENTION_DAYS),
            })
        });
    let log_group_ref: Ref<LogGroupOut> = log_group.handle();
    g.add(log_group)?;

    let cluster_name = names::fit(&stack, "cluster", names::limits::ECS_CLUSTER);
    let cluster = Node::new("web/cluster", k.ecs.cluster.clone())
        .named(cluster_name.clone())
        .spec(|_| Ok(ClusterSpec {}));
    let cluster_ref: Ref<ClusterOut> = cluster.handle();
    g.add(cluster)?;

    let role = |g: &mut Graph,
                id: &str,
                suffix: &str,
                description: &str|
     -> Result<Ref<RoleOut>, GraphError> {
        let description = description.to_string();
        let node = Node::new(id, kinds.iam.role.clone())
            .named(names::fit(&stack, suffix, names::limits::IAM_ROLE))
            .spec(move |_| {
                Ok(RoleSpec {
                    assume_role_policy: policy::trust("ecs-tasks.amazonaws.com"),
                    description: description.clone(),
                })
            });
        let r = node.handle();
        g.add(node)?;
        Ok(r)
    };
    let execution_role = role(
        g,
        "web/role/execution",
        "app-execution-role",
        "Lets ECS pull the app image and write its logs",
    )?;
    let task_role = role(
        g,
        "web/role/task",
        "app-task-role",
        "What the Streamlit app may call: the stack's endpoints and functions",
    )?;

    let (r, managed) = (
        execution_role.clone(),
        policy::aws_managed(&region, policy::ECS_TASK_EXECUTION),
    );
    let execution_policies = Node::new(
        "web/role/execution/managed-policies",
        kinds.iam.managed_policies.clone(),
    )
    .after(&execution_role)
    .spec(move |inputs| {
        Ok(ManagedPoliciesSpec {
            role_name: inputs.get(&r)?.role_name,
            policy_arns: BTreeSet::from([managed.clone()]),
        })
    });
    let execution_policies_ref: Ref<Value> = execution_policies.handle();
    g.add(execution_policies)?;

    let task_policy_ref: Option<Ref<Value>> =
        if has_task_policy(backends, &config.ecs_policy_statements) {
            let endpoints: Vec<_> = backends
                .endpoints
                .iter()
                .map(|e| e.endpoint.clone())
                .collect();
            let functions: Vec<_> = backends
                .functions
                .iter()
                .map(|f| f.function.clone())
                .collect();
            let extra = config.ecs_policy_statements.clone();
            let r = task_role.clone();
            // The app needs the backends' ARNs only, not the backends being ready.
            let mut node =
                Node::new("web/role/task/policy", kinds.iam.role_policy.clone()).after(&task_role);
            for e in &endpoints {
                node = node.after_exists(e);
            }
            for f in &functions {
                node = node.after_exists(f);
            }
            let node = node.spec(move |inputs| {
                let mut endpoint_arns = Vec::new();
                for e in &endpoints {
                    endpoint_arns.push(inputs.get(e)?.endpoint_arn);
                }
                let mut function_arns = Vec::new();
                for f in &functions {
                    function_arns.push(inputs.get(f)?.function_arn);
                }
                Ok(RolePolicySpec {
                    role_name: inputs.get(&r)?.role_name,
                    policy_name: "invoke-backends".into(),
                    document: task_policy(&endpoint_arns, &function_arns, &extra)
                        .unwrap_or(Value::Null),
                })
            });
            let r = node.handle();
            g.add(node)?;
            Some(r)
        } else {
            None
        };

    // --- Task definition ---------------------------------------------------------------------
    let image = images.build(g, APP_FOLDER, config.platform, Consumer::App)?;
    let environment = app_environment(project, backends);
    let architecture = config.platform.ecs_cpu_architecture().to_string();
    let (img, er, tr, lg, log_region) = (
        image.clone(),
        execution_role.clone(),
        task_role.clone(),
        log_group_ref.clone(),
        region.clone(),
    );
    let task_definition = Node::new("web/task-definition", k.ecs.task_definition.clone())
        .named(names::fit(&stack, "app", names::limits::ECS_FAMILY))
        .after(&image)
        .after(&execution_role)
        .after(&task_role)
        .after(&log_group_ref)
        .spec(move |inputs| {
            Ok(TaskDefinitionSpec {
                cpu: TASK_CPU.into(),
                memory: TASK_MEMORY.into(),
                cpu_architecture: architecture.clone(),
                operating_system_family: "LINUX".into(),
                network_mode: "awsvpc".into(),
                requires_compatibilities: vec!["FARGATE".into()],
                execution_role_arn: inputs.get(&er)?.role_arn,
                task_role_arn: inputs.get(&tr)?.role_arn,
                container_name: CONTAINER_NAME.into(),
                image: inputs.get::<ImageOut>(&img)?.image_uri,
                container_port: APP_PORT,
                environment: environment.clone(),
                log_group: inputs.get(&lg)?.log_group_name,
                log_region: log_region.clone(),
                log_stream_prefix: CONTAINER_NAME.into(),
            })
        });
    let task_definition_ref: Ref<TaskDefinitionOut> = task_definition.handle();
    g.add(task_definition)?;

    // --- Security groups ---------------------------------------------------------------------
    let v = net.vpc.clone();
    let group_name = names::fit(&stack, "alb", names::limits::SECURITY_GROUP);
    let lb_group = Node::new(
        "web/security-group/load-balancer",
        kinds.ec2.security_group.clone(),
    )
    .after(&net.vpc)
    .spec(move |inputs| {
        let mut ingress = BTreeSet::new();
        for cidr in ["0.0.0.0/0", "::/0"] {
            // 443 serves the app; 80 only answers with a redirect to 443.
            ingress.insert(IngressRule::tcp_from_cidr(443, cidr));
            ingress.insert(IngressRule::tcp_from_cidr(80, cidr));
        }
        Ok(SecurityGroupSpec {
            vpc_id: inputs.get(&v)?.vpc_id,
            group_name: group_name.clone(),
            description: "HTTPS to the app's load balancer, and HTTP to be redirected".into(),
            ingress,
        })
    });
    let lb_group_ref: Ref<SecurityGroupOut> = lb_group.handle();
    g.add(lb_group)?;

    let (v, lbg) = (net.vpc.clone(), lb_group_ref.clone());
    let group_name = names::fit(&stack, "app", names::limits::SECURITY_GROUP);
    let service_group = Node::new(
        "web/security-group/service",
        kinds.ec2.security_group.clone(),
    )
    .after(&net.vpc)
    .after(&lb_group_ref)
    .spec(move |inputs| {
        Ok(SecurityGroupSpec {
            vpc_id: inputs.get(&v)?.vpc_id,
            group_name: group_name.clone(),
            description: "The app's port, from its load balancer only".into(),
            ingress: BTreeSet::from([IngressRule::tcp_from_group(
                APP_PORT,
                &inputs.get(&lbg)?.group_id,
            )]),
        })
    });
    let service_group_ref: Ref<SecurityGroupOut> = service_group.handle();
    g.add(service_group)?;

    // --- Load balancer, target group, listeners ----------------------------------------------
    let (subnets, lbg) = (net.public_subnets.clone(), lb_group_ref.clone());
    let mut load_balancer = Node::new("web/load-balancer", k.elbv2.load_balancer.clone())
        .named(names::fit(&stack, "alb", names::limits::LOAD_BALANCER))
        .after(&lb_group_ref)
        // An internet-facing load balancer needs the VPC's internet gateway attached.
        .after(&net.internet_gateway);
    for s in &net.public_subnets {
        load_balancer = load_balancer.after(s);
    }
    let load_balancer = load_balancer.spec(move |inputs| {
        let mut subnet_ids = Vec::new();
        for s in &subnets {
            subnet_ids.push(inputs.get(s)?.subnet_id);
        }
        subnet_ids.sort();
        Ok(LoadBalancerSpec {
            scheme: "internet-facing".into(),
            load_balancer_type: "application".into(),
            ip_address_type: "ipv4".into(),
            subnet_ids,
            security_group_ids: vec![inputs.get(&lbg)?.group_id],
        })
    });
    let load_balancer_ref: Ref<LoadBalancerOut> = load_balancer.handle();
    g.add(load_balancer)?;

    let v = net.vpc.clone();
    let target_group = Node::new("web/target-group", k.elbv2.target_group.clone())
        .named(target_group_name(&stack, "HTTP", APP_PORT, "ip"))
        .after(&net.vpc)
        .spec(move |inputs| {
            Ok(TargetGroupSpec {
                protocol: "HTTP".into(),
                port: APP_PORT,
                vpc_id: inputs.get(&v)?.vpc_id,
                target_type: "ip".into(),
                health_check_path: HEALTH_CHECK_PATH.into(),
                health_check_interval_seconds: HEALTH_CHECK_INTERVAL_SECONDS,
                health_check_timeout_seconds: HEALTH_CHECK_TIMEOUT_SECONDS,
                healthy_threshold_count: HEALTHY_THRESHOLD,
                unhealthy_threshold_count: UNHEALTHY_THRESHOLD,
                healthy_http_codes: "200".into(),
                deregistration_delay_seconds: DEREGISTRATION_DELAY_SECONDS,
            })
        });
    let target_group_ref: Ref<TargetGroupOut> = target_group.handle();
    g.add(target_group)?;

    let lb = load_balancer_ref.clone();
    let http = Node::new("web/listener/http", k.elbv2.listener.clone())
        .after_exists(&load_balancer_ref)
        .spec(move |inputs| {
            Ok(ListenerSpec {
                load_balancer_arn: inputs.get(&lb)?.load_balancer_arn,
                protocol: "HTTP".into(),
                port: 80,
                ssl_policy: None,
                certificate_arn: None,
                default_action: ListenerAction::redirect_to_https(),
            })
        });
    let http_ref: Ref<provision_elbv2::ListenerOut> = http.handle();
    g.add(http)?;

    // What attaches the target group to the load balancer before there is an HTTPS listener,
    // so the service can start while ACM validates; it never matches a request (see
    // UNREACHABLE_SOURCE), so plain HTTP never reaches the app.
    let (l, tg) = (http_ref.clone(), target_group_ref.clone());
    let attach_rule = Node::new(
        "web/listener/http/attach-rule",
        k.elbv2.listener_rule.clone(),
    )
    .after(&http_ref)
    .after(&target_group_ref)
    .spec(move |inputs| {
        Ok(ListenerRuleSpec {
            listener_arn: inputs.get(&l)?.listener_arn,
            priority: ATTACH_RULE_PRIORITY,
            conditions: vec![RuleConditionSpec::source_ip(&[UNREACHABLE_SOURCE])],
            action: ListenerAction::Forward {
                target_group_arn: inputs.get(&tg)?.target_group_arn,
            },
        })
    });
    let attach_rule_ref: Ref<Value> = attach_rule.handle();
    g.add(attach_rule)?;

    let (lb, tg, cert) = (
        load_balancer_ref.clone(),
        target_group_ref.clone(),
        validation_ref.clone(),
    );
    let https = Node::new("web/listener/https", k.elbv2.listener.clone())
        .after_exists(&load_balancer_ref)
        .after(&target_group_ref)
        .after(&validation_ref)
        .spec(move |inputs| {
            Ok(ListenerSpec {
                load_balancer_arn: inputs.get(&lb)?.load_balancer_arn,
                protocol: "HTTPS".into(),
                port: 443,
                ssl_policy: Some(SSL_POLICY.into()),
                certificate_arn: Some(inputs.get(&cert)?.certificate_arn),
                default_action: ListenerAction::Forward {
                    target_group_arn: inputs.get(&tg)?.target_group_arn,
                },
            })
        });
    g.add(https)?;

    // --- DNS -----------------------------------------------------------------------------------
    // The load balancer is IPv4 only (see its spec), so the app domain gets an A record.
    for record_type in alias_record_types("ipv4") {
        let (lb, z, name) = (load_balancer_ref.clone(), zone.clone(), app_domain.clone());
        let id = if record_type == "A" {
            "web/dns/app".to_string()
        } else {
            format!("web/dns/app-{}", record_type.to_ascii_lowercase())
        };
        g.add(
            Node::new(id, k.route53.record.clone())
                .after_exists(&load_balancer_ref)
                .spec(move |inputs| {
                    let lb = inputs.get(&lb)?;
                    Ok(RecordSpec::alias(
                        &z,
                        &name,
                        record_type,
                        &lb.dns_name,
                        &lb.canonical_hosted_zone_id,
                    ))
                }),
        )?;
    }
    if let Some((name, target)) = prod_alias(&config.environment, &domain) {
        let spec = RecordSpec::values(&zone, &name, "CNAME", 300, [target]);
        g.add(Node::new("web/dns/prod", k.route53.record.clone()).spec(move |_| Ok(spec.clone())))?;
    }

    // --- Service -------------------------------------------------------------------------------
    let (c, td, tg, sg, private) = (
        cluster_ref.clone(),
        task_definition_ref.clone(),
        target_group_ref.clone(),
        service_group_ref.clone(),
        net.private_subnets.clone(),
    );
    let service_name = names::fit(&stack, "app", names::limits::ECS_SERVICE);
    let mut service = Node::new("web/service", k.ecs.service.clone())
        .named(provision_ecs::service_node_name(
            &cluster_name,
            &service_name,
        ))
        .after(&cluster_ref)
        .after(&task_definition_ref)
        .after(&target_group_ref)
        // ECS refuses a target group no listener uses; the HTTPS listener may still be
        // waiting for the certificate.
        .after(&attach_rule_ref)
        .after(&service_group_ref)
        // Tasks in the private subnets reach ECR and CloudWatch Logs through the NAT gateway.
        .after(&net.private_egress)
        .after(&execution_policies_ref);
    if let Some(p) = &task_policy_ref {
        service = service.after(p);
    }
    for s in &net.private_subnets {
        service = service.after(s);
    }
    let service = service.spec(move |inputs| {
        let mut subnet_ids = Vec::new();
        for s in &private {
            subnet_ids.push(inputs.get(s)?.subnet_id);
        }
        subnet_ids.sort();
        Ok(ServiceSpec {
            cluster_arn: inputs.get(&c)?.cluster_arn,
            launch_type: "FARGATE".into(),
            platform_version: "LATEST".into(),
            desired_count: 1,
            task_definition_arn: inputs.get(&td)?.task_definition_arn,
            subnet_ids,
            security_group_ids: vec![inputs.get(&sg)?.group_id],
            assign_public_ip: false,
            target_group_arn: inputs.get(&tg)?.target_group_arn,
            container_name: CONTAINER_NAME.into(),
            container_port: APP_PORT,
            health_check_grace_period_seconds: HEALTH_CHECK_GRACE_SECONDS,
            circuit_breaker: CircuitBreaker {
                enable: true,
                rollback: true,
            },
            minimum_healthy_percent: 100,
            maximum_percent: 200,
        })
    });
    let service_ref: Ref<ServiceOut> = service.handle();
    g.add(service)?;

    Ok(Web {
        app_domain,
        load_balancer: load_balancer_ref,
        cluster: cluster_ref,
        service: service_ref,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::{EndpointHandle, FunctionHandle};
    use provision_config::app_domain;

    #[test]
    fn the_app_domain_is_the_domain_in_prod_and_a_subdomain_elsewhere() {
        assert_eq!(app_domain("prod", "example.com"), "example.com");
        assert_eq!(app_domain("dev", "example.com"), "dev.example.com");
        assert_eq!(
            api_url(&app_domain("dev", "example.com")),
            "https://dev.example.com"
        );
        assert_eq!(
            api_url(&app_domain("prod", "example.com")),
            "https://example.com"
        );
    }

    #[test]
    fn only_prod_gets_the_seeds_cname_and_never_at_the_apex() {
        assert_eq!(
            prod_alias("prod", "example.com"),
            Some(("prod.example.com".into(), "example.com".into()))
        );
        assert_eq!(prod_alias("dev", "example.com"), None);
        assert_eq!(alias_record_types("ipv4"), ["A"]);
        assert_eq!(alias_record_types("dualstack"), ["A", "AAAA"]);
    }

    #[test]
    fn the_certificate_covers_the_domain_and_the_app_domain() {
        let dev = CertificateSpec::dns("example.com", [app_domain("dev", "example.com")]);
        assert_eq!(dev.names(), ["example.com", "dev.example.com"]);
        let prod = CertificateSpec::dns("example.com", [app_domain("prod", "example.com")]);
        assert_eq!(prod.names(), ["example.com"]);
    }

    #[test]
    fn names_fit_their_limits() {
        let long = "streamlit-app-a-very-long-environment-name";
        let tg = target_group_name(long, "HTTP", 8080, "ip");
        assert!(tg.len() <= names::limits::TARGET_GROUP, "{tg}");
        assert_ne!(
            target_group_name("s", "HTTP", 8080, "ip"),
            target_group_name("s", "HTTP", 8081, "ip")
        );
        assert!(names::fit(long, "alb", names::limits::LOAD_BALANCER).len() <= 32);
    }

    #[test]
    fn the_task_policy_names_exactly_the_stacks_backends() {
        let endpoints = vec![
            "arn:aws:sagemaker:us-east-1:1:endpoint/sentiment-unmasking".to_string(),
            "arn:aws:sagemaker:us-east-1:1:endpoint/sentiment-explanations".to_string(),
        ];
        let functions = vec![
            "arn:aws:lambda:us-east-1:1:function:streamlit-app-dev-counterfactuals".to_string(),
        ];
        let extra = vec![
            PolicyStatement {
                actions: vec!["s3:GetObject".into()],
                resources: vec!["arn:aws:s3:::bucket/*".into()],
            },
            // No resource: IAM would refuse the whole document.
            PolicyStatement {
                actions: vec!["s3:ListBucket".into()],
                resources: vec![],
            },
        ];
        let doc = task_policy(&endpoints, &functions, &extra).unwrap();
        assert_eq!(
            doc,
            json!({
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["sagemaker:InvokeEndpoint"], "Resource": [
                        "arn:aws:sagemaker:us-east-1:1:endpoint/sentiment-explanations",
                        "arn:aws:sagemaker:us-east-1:1:endpoint/sentiment-unmasking",
                    ]},
                    {"Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": [
                        "arn:aws:lambda:us-east-1:1:function:streamlit-app-dev-counterfactuals",
                    ]},
                    {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::bucket/*"]},
                ]
            })
        );
        // No wildcard and no foreign account anywhere (the seed granted ECR on another account).
        let text = doc.to_string();
        assert!(!text.contains("\"*\"") && !text.contains("ecr:"), "{text}");
        // Nothing to grant: no policy at all.
        assert_eq!(task_policy(&[], &[], &extra[1..]), None);
        let only_sagemaker = task_policy(&endpoints[..1], &[], &[]).unwrap();
        assert_eq!(
            only_sagemaker["Statement"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn backends_become_environment_variables() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(repo.join("config/local.json")).unwrap();
        let root = repo.join("examples/offline");
        let config =
            provision_config::parse(&text, std::path::Path::new("local.json"), &root).unwrap();
        let project = Project {
            config,
            root,
            builder: None,
        };
        let backends = Backends {
            functions: vec![FunctionHandle {
                environment_variable_name: "COUNTERFACTUAL_LAMBDA".into(),
                function_name: "streamlit-app-local-counterfactuals".into(),
                function: Ref::new("function/x"),
            }],
            endpoints: vec![EndpointHandle {
                environment_variable_name: "SENTIMENT_UNMASKING_MODEL".into(),
                endpoint_name: "sentiment-unmasking".into(),
                endpoint: Ref::new("endpoint/x"),
            }],
        };
        let env = app_environment(&project, &backends);
        assert_eq!(env["APP_TITLE"], "Explainable sentiment analysis");
        assert_eq!(
            env["COUNTERFACTUAL_LAMBDA"],
            "streamlit-app-local-counterfactuals"
        );
        assert_eq!(env["SENTIMENT_UNMASKING_MODEL"], "sentiment-unmasking");
        assert!(has_task_policy(&backends, &[]));
        assert!(!has_task_policy(&Backends::default(), &[]));
    }
}
