//! The web tier end to end, checked through the AWS API: the certificate validated through
//! records `provision` wrote, the load balancer with its HTTPS listener and a plain-HTTP
//! listener that only redirects, the Fargate service behind it, DNS, roles and logs; a rerun
//! that changes nothing; an environment change that is one new task definition revision and
//! one service update; `down` that leaves nothing; and the prod layout.

// The helpers below are test code too (clippy only knows `#[test]` functions as such): a
// failed call is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ecs::types::{ServiceField, TaskDefinitionField, TaskDefinitionStatus};
use aws_sdk_route53::types::RrType;
use serde_json::{Value, json};

use crate::support::{Stack, mutating_calls, mutating_operations, record};

const STACK: &str = "streamlit-app-local";
const DOMAIN: &str = "example.test";
const APP_DOMAIN: &str = "local.example.test";
const CLUSTER: &str = "streamlit-app-local-cluster";
const SERVICE: &str = "streamlit-app-local-app";
const FAMILY: &str = "streamlit-app-local-app";
const LOAD_BALANCER: &str = "streamlit-app-local-alb";
const LOG_GROUP: &str = "/ecs/streamlit-app-local/app";
const EXECUTION_ROLE: &str = "streamlit-app-local-app-execution-role";
const TASK_ROLE: &str = "streamlit-app-local-app-task-role";

fn zone(stack: &Stack) -> String {
    stack.config()["hosted_zone_id"]
        .as_str()
        .unwrap()
        .to_string()
}

use provision_iam::decode_document as document;

fn trusts_only_ecs_tasks(doc: &Value) {
    let statements = doc["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{doc}");
    assert_eq!(
        statements[0]["Principal"],
        json!({"Service": "ecs-tasks.amazonaws.com"}),
        "{doc}"
    );
    assert_eq!(statements[0]["Action"], "sts:AssumeRole");
}

/// The ECS service as AWS describes it.
async fn service(stack: &Stack) -> aws_sdk_ecs::types::Service {
    let out = stack
        .ecs()
        .describe_services()
        .cluster(CLUSTER)
        .services(SERVICE)
        .include(ServiceField::Tags)
        .send()
        .await
        .unwrap();
    out.services().first().cloned().expect("the service exists")
}

async fn task_definition(stack: &Stack, arn: &str) -> aws_sdk_ecs::types::TaskDefinition {
    let out = stack
        .ecs()
        .describe_task_definition()
        .task_definition(arn)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    out.task_definition().cloned().unwrap()
}

fn environment(td: &aws_sdk_ecs::types::TaskDefinition) -> BTreeMap<String, String> {
    td.container_definitions()[0]
        .environment()
        .iter()
        .map(|kv| {
            (
                kv.name().unwrap().to_string(),
                kv.value().unwrap().to_string(),
            )
        })
        .collect()
}

fn plan_step<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {plan:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_tier_is_served_over_https_kept_updated_and_removed() {
    let stack = Stack::new().await;
    let first = stack.up().await;

    // Outputs.
    let outputs = &first["outputs"];
    assert_eq!(outputs["api_url"], format!("https://{APP_DOMAIN}"));
    assert_eq!(outputs["cluster"], CLUSTER);
    assert_eq!(outputs["service"], SERVICE);

    // --- Certificate: the domain and the app domain, DNS-validated through records in the zone.
    let acm = stack.acm();
    let certs = acm.list_certificates().send().await.unwrap();
    assert_eq!(
        certs.certificate_summary_list().len(),
        1,
        "exactly one certificate"
    );
    let cert_arn = certs.certificate_summary_list()[0]
        .certificate_arn()
        .unwrap()
        .to_string();
    let cert = acm
        .describe_certificate()
        .certificate_arn(&cert_arn)
        .send()
        .await
        .unwrap();
    let cert = cert.certificate().unwrap();
    // Exactly the name served: not the bare domain, whose validation record prod's
    // certificate would share.
    assert_eq!(cert.domain_name(), Some(APP_DOMAIN));
    let sans: BTreeSet<&str> = cert
        .subject_alternative_names()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(sans, BTreeSet::from([APP_DOMAIN]), "{sans:?}");
    assert_eq!(cert.status().map(|s| s.as_str()), Some("ISSUED"));
    let tags = acm
        .list_tags_for_certificate()
        .certificate_arn(&cert_arn)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags()
            .iter()
            .any(|t| t.key() == "provision:stack" && t.value() == Some(STACK))
    );
    let all = stack.records().await;
    for option in cert.domain_validation_options() {
        assert_eq!(option.validation_method().map(|m| m.as_str()), Some("DNS"));
        let rr = option.resource_record().unwrap();
        let written = record(&all, rr.name(), "CNAME")
            .unwrap_or_else(|| panic!("no validation record {}", rr.name()));
        assert_eq!(written.resource_records()[0].value(), rr.value());
    }

    // --- Load balancer: internet-facing, in the public subnets, behind its own group.
    let elb = stack.elbv2();
    let lbs = elb
        .describe_load_balancers()
        .names(LOAD_BALANCER)
        .send()
        .await
        .unwrap();
    let lb = &lbs.load_balancers()[0];
    let lb_arn = lb.load_balancer_arn().unwrap().to_string();
    assert_eq!(outputs["load_balancer_dns"], lb.dns_name().unwrap());
    assert_eq!(lb.scheme().map(|s| s.as_str()), Some("internet-facing"));
    assert_eq!(lb.r#type().map(|s| s.as_str()), Some("application"));
    assert_eq!(lb.ip_address_type().map(|s| s.as_str()), Some("dualstack"));
    let ec2 = stack.ec2();
    let lb_subnets: Vec<String> = lb
        .availability_zones()
        .iter()
        .map(|z| z.subnet_id().unwrap().to_string())
        .collect();
    let subnets = ec2
        .describe_subnets()
        .set_subnet_ids(Some(lb_subnets.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(subnets.subnets().len(), 2);
    assert!(
        subnets
            .subnets()
            .iter()
            .all(|s| s.map_public_ip_on_launch() == Some(true)),
        "the load balancer is in the public subnets"
    );
    let lb_group = lb.security_groups()[0].clone();
    let groups = ec2
        .describe_security_groups()
        .group_ids(&lb_group)
        .send()
        .await
        .unwrap();
    let mut open: BTreeSet<(i32, String)> = BTreeSet::new();
    for p in groups.security_groups()[0].ip_permissions() {
        for r in p.ip_ranges() {
            open.insert((p.from_port().unwrap(), r.cidr_ip().unwrap().to_string()));
        }
        for r in p.ipv6_ranges() {
            open.insert((p.from_port().unwrap(), r.cidr_ipv6().unwrap().to_string()));
        }
    }
    let want: BTreeSet<(i32, String)> = [
        (443, "0.0.0.0/0"),
        (443, "::/0"),
        (80, "0.0.0.0/0"),
        (80, "::/0"),
    ]
    .iter()
    .map(|(p, c)| (*p, c.to_string()))
    .collect();
    assert_eq!(open, want);

    // Target group: Fargate tasks by IP on 8080, checked at /healthz every minute.
    let tgs = elb.describe_target_groups().send().await.unwrap();
    assert_eq!(tgs.target_groups().len(), 1);
    let tg = &tgs.target_groups()[0];
    let tg_arn = tg.target_group_arn().unwrap().to_string();
    assert!(tg.target_group_name().unwrap().len() <= 32);
    assert_eq!(tg.target_type().map(|t| t.as_str()), Some("ip"));
    assert_eq!(tg.port(), Some(8080));
    assert_eq!(tg.protocol().map(|p| p.as_str()), Some("HTTP"));
    assert_eq!(tg.health_check_path(), Some("/healthz"));
    assert_eq!(tg.health_check_interval_seconds(), Some(60));
    assert_eq!(tg.unhealthy_threshold_count(), Some(5));
    let attrs = elb
        .describe_target_group_attributes()
        .target_group_arn(&tg_arn)
        .send()
        .await
        .unwrap();
    let delay = attrs
        .attributes()
        .iter()
        .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
        .and_then(|a| a.value());
    assert_eq!(
        delay,
        Some("30"),
        "a short deregistration delay keeps rollouts quick"
    );

    // Listeners: 443 serves the app with the certificate; 80 only redirects to HTTPS.
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(&lb_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(listeners.listeners().len(), 2);
    let https = listeners
        .listeners()
        .iter()
        .find(|l| l.port() == Some(443))
        .expect("an HTTPS listener");
    assert_eq!(https.protocol().map(|p| p.as_str()), Some("HTTPS"));
    assert_eq!(
        https.ssl_policy(),
        Some("ELBSecurityPolicy-FS-1-2-Res-2019-08")
    );
    assert_eq!(
        https.certificates()[0].certificate_arn(),
        Some(cert_arn.as_str())
    );
    let forward = &https.default_actions()[0];
    assert_eq!(forward.r#type().map(|t| t.as_str()), Some("forward"));
    let forwarded_to = forward.target_group_arn().or_else(|| {
        forward
            .forward_config()
            .and_then(|f| f.target_groups().first())
            .and_then(|t| t.target_group_arn())
    });
    assert_eq!(forwarded_to, Some(tg_arn.as_str()));
    let http = listeners
        .listeners()
        .iter()
        .find(|l| l.port() == Some(80))
        .expect("an HTTP listener");
    assert_eq!(http.protocol().map(|p| p.as_str()), Some("HTTP"));
    let redirect = http.default_actions()[0]
        .redirect_config()
        .expect("HTTP redirects");
    assert_eq!(redirect.protocol(), Some("HTTPS"));
    assert_eq!(redirect.port(), Some("443"));
    assert_eq!(redirect.status_code().map(|s| s.as_str()), Some("HTTP_301"));
    // The rule that attaches the target group early matches only a source address no client
    // on the internet can connect from: plain HTTP never reaches the app.
    let rules = elb
        .describe_rules()
        .listener_arn(http.listener_arn().unwrap())
        .send()
        .await
        .unwrap();
    let custom: Vec<_> = rules
        .rules()
        .iter()
        .filter(|r| r.is_default() != Some(true))
        .collect();
    assert_eq!(custom.len(), 1, "{custom:#?}");
    let conditions = custom[0].conditions();
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].field(), Some("source-ip"));
    assert_eq!(
        conditions[0].source_ip_config().unwrap().values(),
        ["192.0.2.1/32"]
    );

    // --- DNS: the app domain is an alias of the load balancer; no CNAME at the zone apex.
    let all = stack.records().await;
    let a = record(&all, APP_DOMAIN, "A").expect("an A record for the app domain");
    let alias = a.alias_target().expect("an alias");
    assert_eq!(
        alias.dns_name().trim_end_matches('.'),
        lb.dns_name().unwrap().to_ascii_lowercase()
    );
    assert_eq!(
        alias.hosted_zone_id(),
        lb.canonical_hosted_zone_id().unwrap()
    );
    let aaaa =
        record(&all, APP_DOMAIN, "AAAA").expect("an AAAA alias: the load balancer is dual stack");
    assert_eq!(
        aaaa.alias_target().map(|a| a.dns_name()),
        Some(alias.dns_name())
    );
    assert!(
        record(&all, DOMAIN, "CNAME").is_none(),
        "no CNAME at the apex"
    );
    assert!(
        record(&all, &format!("prod.{DOMAIN}"), "CNAME").is_none(),
        "prod's CNAME only in prod"
    );

    // --- ECS: cluster, service, task definition.
    let ecs = stack.ecs();
    let clusters = ecs
        .describe_clusters()
        .clusters(CLUSTER)
        .include(aws_sdk_ecs::types::ClusterField::Tags)
        .send()
        .await
        .unwrap();
    let cluster = &clusters.clusters()[0];
    assert_eq!(cluster.status(), Some("ACTIVE"));
    assert!(
        cluster
            .tags()
            .iter()
            .any(|t| t.key() == Some("provision:stack") && t.value() == Some(STACK))
    );
    let svc = service(&stack).await;
    assert_eq!(svc.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    assert_eq!(svc.desired_count(), 1);
    assert_eq!(svc.running_count(), 1);
    assert!(
        svc.tags()
            .iter()
            .any(|t| t.key() == Some("provision:id") && t.value() == Some("web/service"))
    );
    let vpc = svc
        .network_configuration()
        .unwrap()
        .awsvpc_configuration()
        .unwrap();
    assert_eq!(vpc.assign_public_ip().map(|a| a.as_str()), Some("DISABLED"));
    let subnets = ec2
        .describe_subnets()
        .set_subnet_ids(Some(vpc.subnets().to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(subnets.subnets().len(), 2);
    assert!(
        subnets
            .subnets()
            .iter()
            .all(|s| s.map_public_ip_on_launch() != Some(true)),
        "tasks run in the private subnets"
    );
    let task_group = ec2
        .describe_security_groups()
        .group_ids(&vpc.security_groups()[0])
        .send()
        .await
        .unwrap();
    let rules = task_group.security_groups()[0].ip_permissions();
    assert_eq!(rules.len(), 1, "{rules:#?}");
    assert_eq!(
        (rules[0].from_port(), rules[0].to_port()),
        (Some(8080), Some(8080))
    );
    assert!(
        rules[0].ip_ranges().is_empty() && rules[0].ipv6_ranges().is_empty(),
        "no address range, only the load balancer"
    );
    assert_eq!(
        rules[0].user_id_group_pairs()[0].group_id(),
        Some(lb_group.as_str())
    );
    let lbc = &svc.load_balancers()[0];
    assert_eq!(lbc.target_group_arn(), Some(tg_arn.as_str()));
    assert_eq!(lbc.container_port(), Some(8080));

    let first_revision = svc.task_definition().unwrap().to_string();
    let td = task_definition(&stack, &first_revision).await;
    assert_eq!(td.family(), Some(FAMILY));
    assert_eq!(td.cpu(), Some("256"));
    assert_eq!(td.memory(), Some("2048"));
    assert_eq!(
        td.requires_compatibilities()
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
        ["FARGATE"]
    );
    let platform = td.runtime_platform().unwrap();
    assert_eq!(
        platform.cpu_architecture().map(|a| a.as_str()),
        Some("X86_64"),
        "platform amd64"
    );
    assert_eq!(
        platform.operating_system_family().map(|o| o.as_str()),
        Some("LINUX")
    );
    let container = &td.container_definitions()[0];
    let image = container.image().unwrap();
    assert!(
        image.contains("streamlit_app@sha256:"),
        "the app image, by digest: {image}"
    );
    assert_eq!(container.port_mappings()[0].container_port(), Some(8080));
    let log = container.log_configuration().unwrap();
    assert_eq!(log.log_driver().as_str(), "awslogs");
    assert_eq!(log.options().unwrap()["awslogs-group"], LOG_GROUP);
    let env = environment(&td);
    assert_eq!(env["APP_TITLE"], "Explainable sentiment analysis");
    let iam = stack.iam();
    let execution = iam
        .get_role()
        .role_name(EXECUTION_ROLE)
        .send()
        .await
        .unwrap();
    let execution = execution.role().unwrap();
    assert_eq!(td.execution_role_arn(), Some(execution.arn()));
    trusts_only_ecs_tasks(&document(execution.assume_role_policy_document().unwrap()));
    let attached = iam
        .list_attached_role_policies()
        .role_name(EXECUTION_ROLE)
        .send()
        .await
        .unwrap();
    let attached: Vec<&str> = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn())
        .collect();
    assert!(
        attached.is_empty(),
        "no managed policy: the execution role's grants are scoped to the app: {attached:?}"
    );
    let pull_and_log = iam
        .get_role_policy()
        .role_name(EXECUTION_ROLE)
        .policy_name("pull-and-log")
        .send()
        .await
        .unwrap();
    let pull_and_log = document(pull_and_log.policy_document());
    let statements = pull_and_log["Statement"].as_array().unwrap();
    assert!(
        statements.iter().any(|s| s["Resource"][0]
            .as_str()
            .is_some_and(|r| r.ends_with(&format!("repository/{STACK}/streamlit_app")))),
        "{pull_and_log}"
    );
    assert!(
        statements.iter().any(|s| s["Resource"][0]
            .as_str()
            .is_some_and(|r| r.ends_with(&format!("log-group:{LOG_GROUP}")))),
        "{pull_and_log}"
    );
    let task = iam.get_role().role_name(TASK_ROLE).send().await.unwrap();
    let task = task.role().unwrap();
    assert_eq!(td.task_role_arn(), Some(task.arn()));
    trusts_only_ecs_tasks(&document(task.assume_role_policy_document().unwrap()));

    // The task role may invoke exactly the stack's functions and endpoints, each of which the
    // app finds through its variable.
    let functions = stack.lambda().list_functions().send().await.unwrap();
    let function_arns: BTreeSet<String> = functions
        .functions()
        .iter()
        .filter(|f| f.function_name().is_some_and(|n| n.starts_with(STACK)))
        .map(|f| f.function_arn().unwrap().to_string())
        .collect();
    let endpoints = stack.sagemaker().list_endpoints().send().await.unwrap();
    let endpoint_arns: BTreeSet<String> = endpoints
        .endpoints()
        .iter()
        .filter_map(|e| e.endpoint_arn().map(str::to_string))
        .collect();
    let inline = iam
        .list_role_policies()
        .role_name(TASK_ROLE)
        .send()
        .await
        .unwrap();
    if function_arns.is_empty() && endpoint_arns.is_empty() {
        assert!(
            inline.policy_names().is_empty(),
            "nothing to invoke, nothing granted"
        );
    } else {
        let policy = iam
            .get_role_policy()
            .role_name(TASK_ROLE)
            .policy_name(&inline.policy_names()[0])
            .send()
            .await
            .unwrap();
        let doc = document(policy.policy_document());
        let granted = |action: &str| -> BTreeSet<String> {
            doc["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["Action"].as_array().unwrap().iter().any(|a| a == action))
                .flat_map(|s| {
                    s["Resource"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap().to_string())
                })
                .collect()
        };
        assert_eq!(granted("lambda:InvokeFunction"), function_arns, "{doc:#}");
        assert_eq!(
            granted("sagemaker:InvokeEndpoint"),
            endpoint_arns,
            "{doc:#}"
        );
        assert!(
            !doc.to_string().contains("ecr:"),
            "no ECR grant on a foreign account: {doc}"
        );
        for f in functions
            .functions()
            .iter()
            .filter(|f| f.function_name().is_some_and(|n| n.starts_with(STACK)))
        {
            assert!(
                env.values().any(|v| Some(v.as_str()) == f.function_name()),
                "{env:?}"
            );
        }
        for e in endpoints.endpoints() {
            assert!(
                env.values().any(|v| Some(v.as_str()) == e.endpoint_name()),
                "{env:?}"
            );
        }
    }

    // --- Logs: the app's log group, with a retention.
    let groups = stack
        .logs()
        .describe_log_groups()
        .log_group_name_prefix(LOG_GROUP)
        .send()
        .await
        .unwrap();
    assert_eq!(groups.log_groups().len(), 1);
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(30));

    // --- A rerun reads and changes nothing; plan agrees.
    let second = stack.up().await;
    assert_eq!(
        mutating_calls(&second),
        0,
        "a rerun must not change anything: {:?}",
        mutating_operations(&second)
    );
    let (code, plan) = stack.plan().await;
    assert_eq!(code, 0, "plan must find nothing to do: {plan:#}");

    // --- A new environment variable: the plan says which setting, old and new; `up` registers
    // one revision and updates the service, nothing more.
    let mut stack = stack;
    stack.edit_config(|c| c["streamlit_environment_variables"]["GREETING"] = json!("hello"));
    let (code, plan) = stack.plan().await;
    assert_eq!(code, 2, "{plan:#}");
    let step = plan_step(&plan, "web/task-definition");
    assert_eq!(step["action"], "update");
    let change = &step["changes"][0];
    assert_eq!(change["setting"], "environment");
    assert!(change["old"].get("GREETING").is_none());
    assert_eq!(change["new"]["GREETING"], "hello");
    let changed: Vec<&str> = plan["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] != "noop")
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["web/task-definition", "web/service"], "{plan:#}");
    // The service moves to the new revision, whose ARN is known only once it is registered.
    let step = plan_step(&plan, "web/service");
    assert_eq!(step["action"], "update");
    assert!(
        step["reason"]
            .as_str()
            .unwrap()
            .contains("web/task-definition, which will be updated"),
        "{step:#}"
    );

    let third = stack.up().await;
    assert_eq!(
        mutating_operations(&third),
        ["ecs:RegisterTaskDefinition x1", "ecs:UpdateService x1"],
        "an environment change is one new revision and one service update"
    );
    let svc = service(&stack).await;
    let second_revision = svc.task_definition().unwrap().to_string();
    assert_ne!(second_revision, first_revision);
    assert_eq!(
        environment(&task_definition(&stack, &second_revision).await)["GREETING"],
        "hello"
    );
    let old = task_definition(&stack, &first_revision).await;
    assert_eq!(
        old.status(),
        Some(&TaskDefinitionStatus::Active),
        "an update deregisters nothing"
    );
    let fourth = stack.up().await;
    assert_eq!(
        mutating_calls(&fourth),
        0,
        "{:?}",
        mutating_operations(&fourth)
    );

    // --- down leaves no certificate, record, load balancer, target group, cluster, task
    // definition, role or log group.
    stack.down().await;
    assert!(
        acm.list_certificates()
            .send()
            .await
            .unwrap()
            .certificate_summary_list()
            .is_empty(),
        "no certificate"
    );
    let left: Vec<String> = stack
        .records()
        .await
        .iter()
        .filter(|r| !matches!(r.r#type(), RrType::Ns | RrType::Soa))
        .map(|r| format!("{} {}", r.name(), r.r#type().as_str()))
        .collect();
    assert!(left.is_empty(), "records left: {left:?}");
    assert!(
        elb.describe_load_balancers()
            .send()
            .await
            .unwrap()
            .load_balancers()
            .is_empty(),
        "no load balancer"
    );
    assert!(
        elb.describe_target_groups()
            .send()
            .await
            .unwrap()
            .target_groups()
            .is_empty(),
        "no target group"
    );
    let clusters = ecs
        .describe_clusters()
        .clusters(CLUSTER)
        .send()
        .await
        .unwrap();
    assert!(
        clusters
            .clusters()
            .iter()
            .all(|c| c.status() == Some("INACTIVE")),
        "no active cluster"
    );
    let svcs = ecs
        .describe_services()
        .cluster(CLUSTER)
        .services(SERVICE)
        .send()
        .await;
    assert!(
        svcs.map(|o| o.services().iter().all(|s| s.status() == Some("INACTIVE")))
            .unwrap_or(true)
    );
    for status in [TaskDefinitionStatus::Active, TaskDefinitionStatus::Inactive] {
        let tds = ecs
            .list_task_definitions()
            .family_prefix(FAMILY)
            .status(status.clone())
            .send()
            .await
            .unwrap();
        assert!(
            tds.task_definition_arns().is_empty(),
            "{status:?} revisions left: {:?}",
            tds.task_definition_arns()
        );
    }
    for role in [EXECUTION_ROLE, TASK_ROLE] {
        assert!(
            iam.get_role().role_name(role).send().await.is_err(),
            "role {role} is gone"
        );
    }
    let groups = stack
        .logs()
        .describe_log_groups()
        .log_group_name_prefix(LOG_GROUP)
        .send()
        .await
        .unwrap();
    assert!(groups.log_groups().is_empty(), "no log group");
    let state = stack.state();
    assert!(
        state["resources"].as_object().unwrap().is_empty(),
        "down leaves an empty state: {state:#}"
    );
}

/// The app alone: prod's layout, and a config with no backends (so no task policy at all).
fn prod_without_backends(c: &mut Value) {
    c["environment"] = json!("prod");
    c["lambda_functions"] = json!([]);
    c["sagemaker_endpoints"] = json!([]);
}

#[tokio::test(flavor = "multi_thread")]
async fn prod_serves_the_domain_itself_and_keeps_the_seeds_cname() {
    let stack = Stack::new().await.with_config(prod_without_backends);
    let result = stack.up().await;
    assert_eq!(result["outputs"]["api_url"], format!("https://{DOMAIN}"));

    let acm = stack.acm();
    let certs = acm.list_certificates().send().await.unwrap();
    let arn = certs.certificate_summary_list()[0]
        .certificate_arn()
        .unwrap();
    let cert = acm
        .describe_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .unwrap();
    let names: BTreeSet<&str> = cert
        .certificate()
        .unwrap()
        .subject_alternative_names()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([DOMAIN, "prod.example.test"]),
        "prod's certificate covers the domain and prod.<domain>, whose CNAME leads to the load balancer"
    );

    let all = stack.records().await;
    let apex = record(&all, DOMAIN, "A").expect("the domain itself points at the load balancer");
    assert!(apex.alias_target().is_some());
    let cname =
        record(&all, &format!("prod.{DOMAIN}"), "CNAME").expect("prod.<domain> as the seed had it");
    assert_eq!(
        cname.resource_records()[0].value().trim_end_matches('.'),
        DOMAIN
    );

    let iam = stack.iam();
    let inline = iam
        .list_role_policies()
        .role_name("streamlit-app-prod-app-task-role")
        .send()
        .await
        .unwrap();
    assert!(
        inline.policy_names().is_empty(),
        "no backend and no extra statement: nothing granted"
    );

    let rerun = stack.up().await;
    assert_eq!(
        mutating_calls(&rerun),
        0,
        "{:?}",
        mutating_operations(&rerun)
    );
    stack.down().await;
    let left: Vec<String> = stack
        .records()
        .await
        .iter()
        .filter(|r| !matches!(r.r#type(), RrType::Ns | RrType::Soa))
        .map(|r| format!("{} {}", r.name(), r.r#type().as_str()))
        .collect();
    assert!(left.is_empty(), "records left: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_someone_else_made_is_neither_overwritten_nor_deleted() {
    let stack = Stack::new().await.with_config(|c| {
        c["lambda_functions"] = json!([]);
        c["sagemaker_endpoints"] = json!([]);
    });
    // Someone already points the app domain elsewhere.
    let theirs = aws_sdk_route53::types::ResourceRecordSet::builder()
        .name(format!("{APP_DOMAIN}."))
        .r#type(RrType::A)
        .ttl(60)
        .resource_records(
            aws_sdk_route53::types::ResourceRecord::builder()
                .value("198.51.100.7")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let change = aws_sdk_route53::types::Change::builder()
        .action(aws_sdk_route53::types::ChangeAction::Create)
        .resource_record_set(theirs)
        .build()
        .unwrap();
    stack
        .route53()
        .change_resource_record_sets()
        .hosted_zone_id(zone(&stack))
        .change_batch(
            aws_sdk_route53::types::ChangeBatch::builder()
                .changes(change)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // The checks before `up` find it, before anything is created.
    let run = stack.run(&["up", "--yes"]).await;
    assert_eq!(run.code, 1, "up must refuse:\n{}", run.stderr);
    assert!(
        run.stderr.contains(APP_DOMAIN) && run.stderr.contains("198.51.100.7"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("refuse to overwrite"), "{}", run.stderr);
    assert!(
        !stack.state_path().exists()
            || stack.state()["resources"]
                .as_object()
                .is_none_or(|r| r.is_empty()),
        "nothing was created"
    );

    // Without the checks, the record's own create refuses it, after the rest is made.
    let run = stack.run(&["up", "--yes", "--skip-checks"]).await;
    assert_eq!(run.code, 1, "up must refuse:\n{}", run.stderr);
    assert!(
        run.stderr.contains(APP_DOMAIN) && run.stderr.contains("198.51.100.7"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("will not overwrite"), "{}", run.stderr);

    stack.down().await;
    let all = stack.records().await;
    let kept = record(&all, APP_DOMAIN, "A").expect("their record is still there");
    assert_eq!(kept.resource_records()[0].value(), "198.51.100.7");
}
