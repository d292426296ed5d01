//! What the emulator holds, read through the AWS API (never through the state file), counted by
//! the resource kind that makes each thing (the `kind` of `provision graph --json`), so a test
//! can say "exactly one of every resource" and "nothing left".
//!
//! Everything counts, tagged or not: a duplicate made by a lost reply or a crash may lack what
//! the first one has. Only what the emulator makes for itself is left out (the default VPC and
//! what is in it, each VPC's main route table and default security group, the zone's NS and SOA
//! records, AWS service-linked roles). Deleted-but-listed things (NAT gateways, VPC endpoints,
//! inactive ECS services and task definitions) do not count.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::Filter;
use serde_json::Value;

use crate::support::Stack;

/// Live things by kind: `ec2.vpc` → their ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory(pub BTreeMap<String, Vec<String>>);

/// Kinds whose nodes make no AWS resource of their own (a lookup, a wait).
const NOTHING_LIVE: &[&str] = &["ec2.availability-zones", "acm.certificate-validation"];

impl Inventory {
    fn add(&mut self, kind: &str, id: impl Into<String>) {
        self.0.entry(kind.to_string()).or_default().push(id.into());
    }

    /// How many of each kind.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.0
            .iter()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(k, ids)| (k.clone(), ids.len()))
            .collect()
    }

    pub fn total(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// Reads everything the emulator holds.
    pub async fn read(stack: &Stack) -> Inventory {
        let mut inv = Inventory::default();
        ec2(stack, &mut inv).await;
        iam(stack, &mut inv).await;
        ecr(stack, &mut inv).await;
        elbv2(stack, &mut inv).await;
        ecs(stack, &mut inv).await;
        lambda(stack, &mut inv).await;
        sagemaker(stack, &mut inv).await;
        acm_and_dns(stack, &mut inv).await;
        logs(stack, &mut inv).await;
        inv
    }
}

/// The count of each kind `up` should leave: the nodes of `provision graph --json`, per kind,
/// leaving out the kinds that make nothing live.
pub async fn expected(stack: &Stack) -> BTreeMap<String, usize> {
    let graph = stack.run(&["graph", "--json"]).await.success().json();
    let mut counts = BTreeMap::new();
    for node in graph["nodes"].as_array().expect("graph nodes") {
        let kind = node["kind"].as_str().expect("a kind").to_string();
        if !NOTHING_LIVE.contains(&kind.as_str()) {
            *counts.entry(kind).or_insert(0) += 1;
        }
    }
    counts
}

/// Asserts the emulator holds exactly one live thing per node of the graph.
#[track_caller]
pub fn assert_exact(inventory: &Inventory, expected: &BTreeMap<String, usize>, context: &str) {
    let counts = inventory.counts();
    if &counts != expected {
        let kinds: BTreeSet<&String> = counts.keys().chain(expected.keys()).collect();
        let mut diff = String::new();
        for k in kinds {
            let have = counts.get(k).copied().unwrap_or(0);
            let want = expected.get(k).copied().unwrap_or(0);
            if have != want {
                diff.push_str(&format!(
                    "\n  {k}: {have} live, {want} expected: {:?}",
                    inventory.0.get(k).cloned().unwrap_or_default()
                ));
            }
        }
        panic!("{context}: not exactly one of every resource:{diff}");
    }
}

/// Asserts the emulator holds nothing the stack made.
#[track_caller]
pub fn assert_empty(inventory: &Inventory, context: &str) {
    assert!(
        inventory.is_empty(),
        "{context}: left behind: {:#?}",
        inventory.0
    );
}

fn lower(s: Option<impl AsRef<str>>) -> String {
    s.map(|s| s.as_ref().to_ascii_lowercase())
        .unwrap_or_default()
}

async fn ec2(stack: &Stack, inv: &mut Inventory) {
    let ec2 = stack.ec2();
    let vpcs = ec2.describe_vpcs().send().await.unwrap();
    let ours: Vec<String> = vpcs
        .vpcs()
        .iter()
        .filter(|v| v.is_default() != Some(true))
        .filter_map(|v| v.vpc_id().map(str::to_string))
        .collect();
    for v in &ours {
        inv.add("ec2.vpc", v);
    }
    let in_ours = |vpc: Option<&str>| vpc.is_some_and(|v| ours.iter().any(|o| o == v));

    let subnets = ec2.describe_subnets().send().await.unwrap();
    for s in subnets.subnets() {
        if in_ours(s.vpc_id()) {
            inv.add("ec2.subnet", s.subnet_id().unwrap_or("?"));
        }
    }
    // A gateway counts unless it is the default VPC's: a detached duplicate counts too.
    let default_vpcs: Vec<String> = vpcs
        .vpcs()
        .iter()
        .filter(|v| v.is_default() == Some(true))
        .filter_map(|v| v.vpc_id().map(str::to_string))
        .collect();
    let igws = ec2.describe_internet_gateways().send().await.unwrap();
    for g in igws.internet_gateways() {
        let default = g.attachments().iter().any(|a| {
            a.vpc_id()
                .is_some_and(|v| default_vpcs.iter().any(|d| d == v))
        });
        if !default {
            inv.add(
                "ec2.internet-gateway",
                g.internet_gateway_id().unwrap_or("?"),
            );
        }
    }
    let addresses = ec2.describe_addresses().send().await.unwrap();
    for a in addresses.addresses() {
        inv.add(
            "ec2.elastic-ip",
            a.allocation_id().or(a.public_ip()).unwrap_or("?"),
        );
    }
    let nats = ec2.describe_nat_gateways().send().await.unwrap();
    for n in nats.nat_gateways() {
        if lower(n.state().map(|s| s.as_str())) != "deleted" {
            inv.add("ec2.nat-gateway", n.nat_gateway_id().unwrap_or("?"));
        }
    }
    let tables = ec2.describe_route_tables().send().await.unwrap();
    for t in tables.route_tables() {
        if !in_ours(t.vpc_id()) {
            continue;
        }
        let main = t.associations().iter().any(|a| a.main() == Some(true));
        if !main {
            inv.add("ec2.route-table", t.route_table_id().unwrap_or("?"));
        }
        for a in t.associations() {
            if a.main() != Some(true) && a.subnet_id().is_some() {
                inv.add(
                    "ec2.route-table-association",
                    a.route_table_association_id().unwrap_or("?"),
                );
            }
        }
        for r in t.routes() {
            let target = r
                .nat_gateway_id()
                .or(r.gateway_id().filter(|g| g.starts_with("igw-")));
            if let Some(target) = target {
                inv.add(
                    "ec2.route",
                    format!(
                        "{} {} -> {target}",
                        t.route_table_id().unwrap_or("?"),
                        r.destination_cidr_block().unwrap_or("?")
                    ),
                );
            }
        }
    }
    let groups = ec2.describe_security_groups().send().await.unwrap();
    for g in groups.security_groups() {
        if in_ours(g.vpc_id()) && g.group_name() != Some("default") {
            inv.add("ec2.security-group", g.group_id().unwrap_or("?"));
        }
    }
    let endpoints = ec2
        .describe_vpc_endpoints()
        .filters(
            Filter::builder()
                .name("vpc-id")
                .set_values(Some(ours.clone()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    for e in endpoints.vpc_endpoints() {
        let state = lower(e.state().map(|s| s.as_str()));
        if in_ours(e.vpc_id()) && state != "deleted" && state != "deleting" {
            inv.add("ec2.vpc-endpoint", e.vpc_endpoint_id().unwrap_or("?"));
        }
    }
}

async fn iam(stack: &Stack, inv: &mut Inventory) {
    let iam = stack.iam();
    let roles = iam.list_roles().max_items(1000).send().await.unwrap();
    for r in roles.roles() {
        if r.path().starts_with("/aws-service-role/") {
            continue;
        }
        let name = r.role_name();
        inv.add("iam.role", name);
        // Every role of the stack declares its attachments (none, for most), so the set of
        // them counts once per role, empty or not.
        inv.add("iam.managed-policies", name);
        let inline = iam
            .list_role_policies()
            .role_name(name)
            .send()
            .await
            .unwrap();
        for p in inline.policy_names() {
            inv.add("iam.role-policy", format!("{name}/{p}"));
        }
    }
}

async fn ecr(stack: &Stack, inv: &mut Inventory) {
    let ecr = stack.ecr();
    let repos = ecr.describe_repositories().send().await.unwrap();
    for r in repos.repositories() {
        let name = r.repository_name().unwrap_or("?");
        inv.add("ecr.repository", name);
        let images = ecr
            .list_images()
            .repository_name(name)
            .send()
            .await
            .unwrap();
        let digests: BTreeSet<&str> = images
            .image_ids()
            .iter()
            .filter_map(|i| i.image_digest())
            .collect();
        for d in digests {
            inv.add("ecr.built-image", format!("{name}@{d}"));
        }
    }
}

async fn elbv2(stack: &Stack, inv: &mut Inventory) {
    let elb = stack.elbv2();
    let lbs = elb.describe_load_balancers().send().await.unwrap();
    for lb in lbs.load_balancers() {
        let arn = lb.load_balancer_arn().unwrap_or("?");
        inv.add("elbv2.load-balancer", arn);
        let listeners = elb
            .describe_listeners()
            .load_balancer_arn(arn)
            .send()
            .await
            .unwrap();
        for l in listeners.listeners() {
            let larn = l.listener_arn().unwrap_or("?");
            inv.add("elbv2.listener", larn);
            let rules = elb
                .describe_rules()
                .listener_arn(larn)
                .send()
                .await
                .unwrap();
            for r in rules.rules() {
                if r.is_default() != Some(true) {
                    inv.add("elbv2.listener-rule", r.rule_arn().unwrap_or("?"));
                }
            }
        }
    }
    let tgs = elb.describe_target_groups().send().await.unwrap();
    for tg in tgs.target_groups() {
        inv.add("elbv2.target-group", tg.target_group_arn().unwrap_or("?"));
    }
}

async fn ecs(stack: &Stack, inv: &mut Inventory) {
    let ecs = stack.ecs();
    let clusters = ecs.list_clusters().send().await.unwrap();
    if !clusters.cluster_arns().is_empty() {
        let described = ecs
            .describe_clusters()
            .set_clusters(Some(clusters.cluster_arns().to_vec()))
            .send()
            .await
            .unwrap();
        for c in described.clusters() {
            if c.status() != Some("ACTIVE") {
                continue;
            }
            let arn = c.cluster_arn().unwrap_or("?");
            inv.add("ecs.cluster", arn);
            let services = ecs.list_services().cluster(arn).send().await.unwrap();
            if services.service_arns().is_empty() {
                continue;
            }
            let described = ecs
                .describe_services()
                .cluster(arn)
                .set_services(Some(services.service_arns().to_vec()))
                .send()
                .await
                .unwrap();
            for s in described.services() {
                if s.status() != Some("INACTIVE") {
                    inv.add("ecs.service", s.service_arn().unwrap_or("?"));
                }
            }
        }
    }
    let defs = ecs
        .list_task_definitions()
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    // A family is the resource; its revisions are versions of it (an update registers a new
    // one and keeps the old for running tasks, and `down` deletes them all).
    let families: BTreeSet<&str> = defs
        .task_definition_arns()
        .iter()
        .filter_map(|arn| arn.rsplit_once(':').map(|(family, _)| family))
        .collect();
    for f in families {
        inv.add("ecs.task-definition", f);
    }
}

async fn lambda(stack: &Stack, inv: &mut Inventory) {
    let functions = stack.lambda().list_functions().send().await.unwrap();
    for f in functions.functions() {
        inv.add("lambda.function", f.function_name().unwrap_or("?"));
    }
}

async fn sagemaker(stack: &Stack, inv: &mut Inventory) {
    let sm = stack.sagemaker();
    let models = sm.list_models().send().await.unwrap();
    for m in models.models() {
        inv.add("sagemaker.model", m.model_name().unwrap_or("?"));
    }
    let configs = sm.list_endpoint_configs().send().await.unwrap();
    for c in configs.endpoint_configs() {
        inv.add(
            "sagemaker.endpoint-config",
            c.endpoint_config_name().unwrap_or("?"),
        );
    }
    let endpoints = sm.list_endpoints().send().await.unwrap();
    for e in endpoints.endpoints() {
        inv.add("sagemaker.endpoint", e.endpoint_name().unwrap_or("?"));
    }
}

async fn acm_and_dns(stack: &Stack, inv: &mut Inventory) {
    let certs = stack.acm().list_certificates().send().await.unwrap();
    for c in certs.certificate_summary_list() {
        inv.add("acm.certificate", c.certificate_arn().unwrap_or("?"));
    }
    let zone = stack.config()["hosted_zone_id"]
        .as_str()
        .expect("the config's hosted zone")
        .to_string();
    let records = stack
        .route53()
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap();
    for r in records.resource_record_sets() {
        let t = r.r#type().as_str();
        if t == "NS" || t == "SOA" {
            continue;
        }
        // ACM's validation records are CNAMEs named `_<hash>.<domain>`.
        let kind = if t == "CNAME" && r.name().starts_with('_') {
            "acm.validation-record"
        } else {
            "route53.record"
        };
        inv.add(kind, format!("{} {t}", r.name()));
    }
}

async fn logs(stack: &Stack, inv: &mut Inventory) {
    let groups = stack.logs().describe_log_groups().send().await.unwrap();
    for g in groups.log_groups() {
        inv.add("logs.log-group", g.log_group_name().unwrap_or("?"));
    }
}

/// The JSON value of the state file's resources (an empty object when there is no state).
pub fn state_resources(stack: &Stack) -> Value {
    match std::fs::read_to_string(stack.state_path()) {
        Ok(text) => serde_json::from_str::<Value>(&text).unwrap()["resources"].clone(),
        Err(_) => Value::Object(Default::default()),
    }
}
