//! The seed's IPv6 intent, made real (issue 12.9), checked through the AWS API: the VPC has an
//! Amazon-provided IPv6 /56, each public subnet a /64 of it (assigned on creation) and no
//! private subnet any, the public route table a `::/0` route to the internet gateway, the load
//! balancer answers on both (`dualstack`) and the app domain has an AAAA alias to it beside
//! the A. A rerun reads each resource once and changes nothing. An IPv4-only deployment (what
//! earlier versions made and recorded) is upgraded in place: the plan shows updates and the
//! two new records, never a replacement, and `up` makes it dual stack.

#![allow(clippy::unwrap_used)]

use std::net::Ipv6Addr;

use serde_json::{Value, json};

use crate::support::{Stack, mutating_calls, mutating_operations, record};

const APP_DOMAIN: &str = "local.example.test";
const LOAD_BALANCER: &str = "streamlit-app-local-alb";

/// The web tier and the network alone: IPv6 touches nothing else.
fn no_backends(c: &mut Value) {
    c["lambda_functions"] = json!([]);
    c["sagemaker_endpoints"] = json!([]);
}

async fn vpc(stack: &Stack) -> aws_sdk_ec2::types::Vpc {
    let out = stack
        .ec2()
        .describe_vpcs()
        .filters(stack.tag_filter())
        .send()
        .await
        .unwrap();
    assert_eq!(out.vpcs().len(), 1, "one VPC of the stack");
    out.vpcs()[0].clone()
}

/// The VPC's associated IPv6 block, if any.
fn vpc_block(v: &aws_sdk_ec2::types::Vpc) -> Option<String> {
    v.ipv6_cidr_block_association_set()
        .iter()
        .find(|a| {
            a.ipv6_cidr_block_state()
                .and_then(|s| s.state())
                .is_some_and(|s| s.as_str() == "associated")
        })
        .and_then(|a| a.ipv6_cidr_block().map(str::to_string))
}

/// The subnet's associated IPv6 block and its association id, if any. moto renders a subnet's
/// association state as the text of a dict (`{'State': 'associated'}`), so any state but the
/// ones of a block on its way out or gone counts, as in `provision_ec2`'s own reading.
fn subnet_block(s: &aws_sdk_ec2::types::Subnet) -> Option<(String, String)> {
    s.ipv6_cidr_block_association_set()
        .iter()
        .find(|a| {
            a.ipv6_cidr_block_state()
                .and_then(|s| s.state())
                .is_some_and(|s| {
                    !matches!(
                        s.as_str(),
                        "disassociating" | "disassociated" | "failing" | "failed"
                    )
                })
        })
        .map(|a| {
            (
                a.ipv6_cidr_block().unwrap_or_default().to_string(),
                a.association_id().unwrap_or_default().to_string(),
            )
        })
}

/// Whether `inner` (an IPv6 CIDR) lies within `outer`.
fn within(inner: &str, outer: &str) -> bool {
    let parse = |c: &str| {
        let (addr, len) = c.split_once('/').unwrap();
        (
            u128::from(addr.parse::<Ipv6Addr>().unwrap()),
            len.parse::<u32>().unwrap(),
        )
    };
    let ((i, il), (o, ol)) = (parse(inner), parse(outer));
    let mask = if ol == 0 { 0 } else { !0u128 << (128 - ol) };
    il >= ol && (i & mask) == (o & mask)
}

async fn subnets(stack: &Stack) -> Vec<aws_sdk_ec2::types::Subnet> {
    stack
        .ec2()
        .describe_subnets()
        .filters(stack.tag_filter())
        .send()
        .await
        .unwrap()
        .subnets()
        .to_vec()
}

/// The stack's route tables, each with the subnets associated with it.
async fn route_tables(stack: &Stack) -> Vec<aws_sdk_ec2::types::RouteTable> {
    stack
        .ec2()
        .describe_route_tables()
        .filters(stack.tag_filter())
        .send()
        .await
        .unwrap()
        .route_tables()
        .to_vec()
}

async fn load_balancer(stack: &Stack) -> aws_sdk_elasticloadbalancingv2::types::LoadBalancer {
    let out = stack
        .elbv2()
        .describe_load_balancers()
        .names(LOAD_BALANCER)
        .send()
        .await
        .unwrap();
    out.load_balancers()[0].clone()
}

async fn alias(stack: &Stack, t: &str) -> Option<aws_sdk_route53::types::ResourceRecordSet> {
    record(&stack.records().await, APP_DOMAIN, t).cloned()
}

/// Asserts the network and the load balancer are dual stack exactly as designed.
async fn assert_dual_stack(stack: &Stack) {
    let v = vpc(stack).await;
    let block = vpc_block(&v).expect("the VPC has an Amazon-provided IPv6 block");
    assert!(block.ends_with("/56"), "{block}");

    let all = subnets(stack).await;
    assert_eq!(all.len(), 4);
    let mut public_blocks = Vec::new();
    for s in &all {
        let public = s.map_public_ip_on_launch() == Some(true);
        let v6 = subnet_block(s);
        if public {
            let (b, _) =
                v6.unwrap_or_else(|| panic!("public subnet {:?} has no /64", s.subnet_id()));
            assert!(b.ends_with("/64") && within(&b, &block), "{b} in {block}");
            assert_eq!(s.assign_ipv6_address_on_creation(), Some(true));
            public_blocks.push(b);
        } else {
            assert!(
                v6.is_none(),
                "private subnets stay IPv4: {:?}",
                s.subnet_id()
            );
            assert_ne!(s.assign_ipv6_address_on_creation(), Some(true));
        }
    }
    public_blocks.sort();
    public_blocks.dedup();
    assert_eq!(
        public_blocks.len(),
        2,
        "a /64 of its own for each public subnet"
    );

    // The public table routes ::/0 to the internet gateway; the private one has no IPv6 route.
    let public_ids: Vec<String> = all
        .iter()
        .filter(|s| s.map_public_ip_on_launch() == Some(true))
        .map(|s| s.subnet_id().unwrap().to_string())
        .collect();
    let mut seen_public_table = false;
    for t in route_tables(stack).await {
        let serves_public = t.associations().iter().any(|a| {
            a.subnet_id()
                .is_some_and(|s| public_ids.iter().any(|p| p == s))
        });
        let v6_default = t
            .routes()
            .iter()
            .find(|r| r.destination_ipv6_cidr_block() == Some("::/0"));
        if serves_public {
            seen_public_table = true;
            let r = v6_default.expect("a ::/0 route in the public route table");
            assert!(
                r.gateway_id().is_some_and(|g| g.starts_with("igw-")),
                "to the internet gateway: {r:?}"
            );
        } else {
            assert!(v6_default.is_none(), "no IPv6 route for private subnets");
        }
    }
    assert!(seen_public_table);

    let lb = load_balancer(stack).await;
    assert_eq!(lb.ip_address_type().map(|t| t.as_str()), Some("dualstack"));
    let lb_dns = lb.dns_name().unwrap().to_ascii_lowercase();
    for t in ["A", "AAAA"] {
        let r = alias(stack, t)
            .await
            .unwrap_or_else(|| panic!("no {t} record for {APP_DOMAIN}"));
        let target = r.alias_target().expect("an alias");
        assert_eq!(target.dns_name().trim_end_matches('.'), lb_dns, "{t}");
        assert_eq!(Some(target.hosted_zone_id()), lb.canonical_hosted_zone_id());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_answers_on_ipv6_as_designed_and_a_rerun_reads_once_and_changes_nothing() {
    let stack = Stack::new().await.with_config(no_backends);
    stack.up().await;
    assert_dual_stack(&stack).await;

    let rerun = stack.up().await;
    assert_eq!(
        mutating_calls(&rerun),
        0,
        "a rerun changes nothing: {:?}",
        mutating_operations(&rerun)
    );
    // One read per resource: the resources' reads, against the graph's nodes (the checks
    // before `up` add their own lookups, counted separately).
    let graph = stack.run(&["graph", "--json"]).await.success().json();
    let nodes = graph["nodes"].as_array().unwrap().len() as u64;
    let rerun_skipping_checks = stack
        .run(&["up", "--yes", "--json", "--skip-checks"])
        .await
        .success()
        .json();
    let calls = &rerun_skipping_checks["api_calls"];
    let account_checks = calls["operations"]["sts:GetCallerIdentity"]
        .as_u64()
        .unwrap_or(0);
    // The zones lookup is one node that reads the region's zones and, for each endpoint
    // service the zones must offer (ecr.api, ecr.dkr), where it is offered.
    let zone_offer_reads = calls["operations"]["ec2:DescribeVpcEndpointServices"]
        .as_u64()
        .unwrap_or(0);
    assert!(zone_offer_reads <= 2, "{:#}", calls["operations"]);
    let reads = calls["total"].as_u64().unwrap()
        - calls["mutating"].as_u64().unwrap()
        - account_checks
        - zone_offer_reads;
    assert!(
        reads <= nodes,
        "{reads} reads for {nodes} resources: {:#}",
        calls["operations"]
    );
    assert_eq!(calls["mutating"], 0);
}

/// Takes a dual-stack deployment back to what earlier versions made and recorded: no IPv6
/// anywhere in AWS, and a state without the IPv6 route and the AAAA record, whose VPC, public
/// subnets and load balancer records say IPv4.
async fn make_ipv4_only(stack: &Stack) {
    let ec2 = stack.ec2();
    let zone = stack.config()["hosted_zone_id"]
        .as_str()
        .unwrap()
        .to_string();
    let aaaa = alias(stack, "AAAA").await.unwrap();
    stack
        .route53()
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(
            aws_sdk_route53::types::ChangeBatch::builder()
                .changes(
                    aws_sdk_route53::types::Change::builder()
                        .action(aws_sdk_route53::types::ChangeAction::Delete)
                        .resource_record_set(aaaa)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    for t in route_tables(stack).await {
        if t.routes()
            .iter()
            .any(|r| r.destination_ipv6_cidr_block() == Some("::/0"))
        {
            ec2.delete_route()
                .route_table_id(t.route_table_id().unwrap())
                .destination_ipv6_cidr_block("::/0")
                .send()
                .await
                .unwrap();
        }
    }
    let lb = load_balancer(stack).await;
    stack
        .elbv2()
        .set_ip_address_type()
        .load_balancer_arn(lb.load_balancer_arn().unwrap())
        .ip_address_type(aws_sdk_elasticloadbalancingv2::types::IpAddressType::Ipv4)
        .send()
        .await
        .unwrap();
    for s in subnets(stack).await {
        if let Some((_, association)) = subnet_block(&s) {
            ec2.modify_subnet_attribute()
                .subnet_id(s.subnet_id().unwrap())
                .assign_ipv6_address_on_creation(
                    aws_sdk_ec2::types::AttributeBooleanValue::builder()
                        .value(false)
                        .build(),
                )
                .send()
                .await
                .unwrap();
            ec2.disassociate_subnet_cidr_block()
                .association_id(association)
                .send()
                .await
                .unwrap();
        }
    }
    let v = vpc(stack).await;
    for a in v.ipv6_cidr_block_association_set() {
        ec2.disassociate_vpc_cidr_block()
            .association_id(a.association_id().unwrap())
            .send()
            .await
            .unwrap();
    }

    let mut state = stack.state();
    let resources = state["resources"].as_object_mut().unwrap();
    resources.remove("network/route/public-default-ipv6");
    resources.remove("web/dns/app-aaaa");
    resources["network/vpc"]["settings"]["ipv6"] = json!(false);
    if let Some(outputs) = resources["network/vpc"]["outputs"].as_object_mut() {
        outputs.remove("ipv6_cidr_block");
    }
    for i in 0..2 {
        let settings = &mut resources[&format!("network/subnet/public-{i}")]["settings"];
        settings["ipv6_cidr_block"] = Value::Null;
        settings["assign_ipv6_address_on_creation"] = json!(false);
    }
    resources["web/load-balancer"]["settings"]["ip_address_type"] = json!("ipv4");
    resources["web/load-balancer"]["outputs"]["ip_address_type"] = json!("ipv4");
    stack.write_state(&state);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ipv4_only_deployment_becomes_dual_stack_in_place() {
    let stack = Stack::new().await.with_config(no_backends);
    stack.up().await;
    let vpc_id = vpc(&stack).await.vpc_id().unwrap().to_string();
    let lb_arn = load_balancer(&stack)
        .await
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let mut subnet_ids: Vec<String> = subnets(&stack)
        .await
        .iter()
        .map(|s| s.subnet_id().unwrap().to_string())
        .collect();
    subnet_ids.sort();
    make_ipv4_only(&stack).await;
    assert!(
        vpc_block(&vpc(&stack).await).is_none(),
        "the VPC is IPv4 only again"
    );

    let (code, plan) = stack.plan().await;
    assert_eq!(code, 2, "the upgrade is a change: {plan:#}");
    let steps = plan["plan"]["steps"].as_array().unwrap();
    let action = |id: &str| {
        steps
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["action"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no step {id}: {plan:#}"))
    };
    for id in [
        "network/vpc",
        "network/subnet/public-0",
        "network/subnet/public-1",
        "web/load-balancer",
    ] {
        assert_eq!(action(id), "update", "{id} changes in place");
    }
    assert_eq!(action("network/route/public-default-ipv6"), "create");
    assert_eq!(action("web/dns/app-aaaa"), "create");
    for s in steps {
        assert!(
            !matches!(s["action"].as_str(), Some("replace" | "delete")),
            "nothing is replaced or deleted: {s:#}"
        );
    }
    assert_eq!(
        action("network/subnet/private-0"),
        "noop",
        "private subnets stay IPv4"
    );

    let up = stack.up().await;
    let ops = mutating_operations(&up);
    for op in [
        "ec2:AssociateVpcCidrBlock",
        "ec2:AssociateSubnetCidrBlock",
        "elasticloadbalancing:SetIpAddressType",
    ] {
        assert!(ops.iter().any(|o| o.starts_with(op)), "{op} in {ops:?}");
    }
    assert_dual_stack(&stack).await;
    // The same resources, changed in place.
    assert_eq!(vpc(&stack).await.vpc_id(), Some(vpc_id.as_str()));
    assert_eq!(
        load_balancer(&stack).await.load_balancer_arn(),
        Some(lb_arn.as_str())
    );
    let mut after: Vec<String> = subnets(&stack)
        .await
        .iter()
        .map(|s| s.subnet_id().unwrap().to_string())
        .collect();
    after.sort();
    assert_eq!(after, subnet_ids);

    let rerun = stack.up().await;
    assert_eq!(
        mutating_calls(&rerun),
        0,
        "{:?}",
        mutating_operations(&rerun)
    );
}
