//! The network tier on LocalStack: `up --target network/` builds the seed's VPC, a rerun makes
//! no mutating call, `plan` agrees, and `down` leaves nothing, all checked through the EC2 API.

use std::collections::BTreeSet;

use crate::support::{
    Stack, filter, mutating_calls, mutating_operations, nat_gateway_turn, state_ids,
};

/// What `up --target network/` made.
pub struct Network {
    pub vpc_id: String,
}

/// Checks the network tier against the seed's description and returns its ids.
pub async fn check_network(stack: &Stack) -> Network {
    let ec2 = stack.ec2();

    // The VPC: 10.0.0.0/16, named after the environment, DNS on for private endpoints.
    let vpcs = ec2
        .describe_vpcs()
        .filters(stack.stack_filter())
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1, "exactly one VPC: {:?}", vpcs.vpcs());
    let vpc = &vpcs.vpcs()[0];
    let vpc_id = vpc.vpc_id().unwrap().to_string();
    assert_eq!(vpc.cidr_block(), Some("10.0.0.0/16"));
    let name = vpc
        .tags()
        .iter()
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value());
    assert_eq!(
        name,
        Some(format!("streamlit-app-vpc-{}", stack.environment()).as_str())
    );
    for attr in [
        aws_sdk_ec2::types::VpcAttributeName::EnableDnsSupport,
        aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames,
    ] {
        let out = ec2
            .describe_vpc_attribute()
            .vpc_id(&vpc_id)
            .attribute(attr.clone())
            .send()
            .await
            .unwrap();
        let on = out
            .enable_dns_support()
            .or(out.enable_dns_hostnames())
            .and_then(|a| a.value());
        assert_eq!(on, Some(true), "{attr:?}");
    }

    // Two public and two private subnets (CDK's four /18s), one of each kind per zone.
    let subnets = ec2
        .describe_subnets()
        .filters(filter("vpc-id", &vpc_id))
        .send()
        .await
        .unwrap();
    let subnets = subnets.subnets();
    assert_eq!(subnets.len(), 4, "{subnets:?}");
    let public: Vec<_> = subnets
        .iter()
        .filter(|s| s.map_public_ip_on_launch() == Some(true))
        .collect();
    let private: Vec<_> = subnets
        .iter()
        .filter(|s| s.map_public_ip_on_launch() != Some(true))
        .collect();
    assert_eq!((public.len(), private.len()), (2, 2));
    for group in [&public, &private] {
        let zones: BTreeSet<_> = group
            .iter()
            .map(|s| s.availability_zone().unwrap())
            .collect();
        assert_eq!(zones.len(), 2, "one subnet of each kind per zone");
    }
    let cidrs: BTreeSet<_> = subnets.iter().map(|s| s.cidr_block().unwrap()).collect();
    assert_eq!(
        cidrs,
        BTreeSet::from([
            "10.0.0.0/18",
            "10.0.64.0/18",
            "10.0.128.0/18",
            "10.0.192.0/18"
        ])
    );

    // Internet gateway attached; one NAT gateway with its Elastic IP in a public subnet.
    let igws = ec2
        .describe_internet_gateways()
        .filters(filter("attachment.vpc-id", &vpc_id))
        .send()
        .await
        .unwrap();
    assert_eq!(igws.internet_gateways().len(), 1);
    let igw_id = igws.internet_gateways()[0]
        .internet_gateway_id()
        .unwrap()
        .to_string();
    let nats = ec2
        .describe_nat_gateways()
        .filter(filter("vpc-id", &vpc_id))
        .send()
        .await
        .unwrap();
    let nats: Vec<_> = nats
        .nat_gateways()
        .iter()
        .filter(|n| n.state().map(|s| s.as_str()) == Some("available"))
        .collect();
    assert_eq!(nats.len(), 1, "one NAT gateway");
    let nat = nats[0];
    assert!(
        public.iter().any(|s| s.subnet_id() == nat.subnet_id()),
        "the NAT gateway is in a public subnet"
    );
    let eip = nat.nat_gateway_addresses()[0].allocation_id().unwrap();
    let addresses = ec2
        .describe_addresses()
        .allocation_ids(eip)
        .send()
        .await
        .unwrap();
    assert_eq!(addresses.addresses().len(), 1);
    assert!(
        addresses.addresses()[0]
            .tags()
            .iter()
            .any(|t| t.key() == Some("provision:stack")
                && t.value() == Some(stack.stack_name().as_str())),
        "the Elastic IP carries the stack's tag"
    );

    // Routes: public subnets out through the internet gateway, private ones through the NAT.
    let tables = ec2
        .describe_route_tables()
        .filters(filter("vpc-id", &vpc_id))
        .filters(stack.stack_filter())
        .send()
        .await
        .unwrap();
    assert_eq!(tables.route_tables().len(), 2);
    let mut private_table = None;
    for t in tables.route_tables() {
        let default = t
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .expect("a default route");
        let associated: BTreeSet<_> = t
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id())
            .collect();
        assert_eq!(associated.len(), 2);
        if default.gateway_id() == Some(igw_id.as_str()) {
            assert!(
                associated
                    .iter()
                    .all(|s| public.iter().any(|p| p.subnet_id() == Some(s)))
            );
        } else {
            assert_eq!(default.nat_gateway_id(), nat.nat_gateway_id());
            assert!(
                associated
                    .iter()
                    .all(|s| private.iter().any(|p| p.subnet_id() == Some(s)))
            );
            private_table = t.route_table_id().map(str::to_string);
        }
    }

    // Endpoints: S3 on the private route table; ECR api and dkr in the private subnets with
    // private DNS, behind a group that allows HTTPS from the VPC.
    let endpoints = ec2
        .describe_vpc_endpoints()
        .filters(filter("vpc-id", &vpc_id))
        .send()
        .await
        .unwrap();
    let endpoints: Vec<_> = endpoints
        .vpc_endpoints()
        .iter()
        .filter(|e| {
            e.state()
                .is_some_and(|s| s.as_str().eq_ignore_ascii_case("available"))
        })
        .collect();
    assert_eq!(endpoints.len(), 3, "{endpoints:?}");
    let by_service = |s: &str| {
        *endpoints
            .iter()
            .find(|e| e.service_name() == Some(s))
            .unwrap_or_else(|| panic!("no endpoint for {s}"))
    };
    let s3 = by_service("com.amazonaws.us-east-1.s3");
    assert_eq!(s3.vpc_endpoint_type().map(|t| t.as_str()), Some("Gateway"));
    assert_eq!(
        s3.route_table_ids(),
        [private_table.expect("a private route table")]
    );
    let private_ids: BTreeSet<String> = private
        .iter()
        .map(|s| s.subnet_id().unwrap().to_string())
        .collect();
    for svc in [
        "com.amazonaws.us-east-1.ecr.api",
        "com.amazonaws.us-east-1.ecr.dkr",
    ] {
        let e = by_service(svc);
        assert_eq!(e.vpc_endpoint_type().map(|t| t.as_str()), Some("Interface"));
        assert_eq!(e.private_dns_enabled(), Some(true));
        let ids: BTreeSet<String> = e.subnet_ids().iter().cloned().collect();
        assert_eq!(ids, private_ids);
        let group = e.groups()[0].group_id().unwrap();
        let sg = ec2
            .describe_security_groups()
            .group_ids(group)
            .send()
            .await
            .unwrap();
        let rules = sg.security_groups()[0].ip_permissions();
        assert!(rules.iter().any(|r| {
            r.from_port() == Some(443)
                && r.ip_ranges()
                    .iter()
                    .any(|ip| ip.cidr_ip() == Some("10.0.0.0/16"))
        }));
    }

    Network { vpc_id }
}

/// Asserts nothing of the network tier is left: no VPC, subnet, gateway, address, route table,
/// security group, live NAT gateway or live endpoint of the stack, and the VPC itself is gone.
pub async fn assert_network_gone(stack: &Stack, vpc_id: &str) {
    let ec2 = stack.ec2();
    let vpc = ec2.describe_vpcs().vpc_ids(vpc_id).send().await;
    assert!(
        vpc.as_ref().map(|o| o.vpcs().is_empty()).unwrap_or(true),
        "the VPC {vpc_id} is still there: {vpc:?}"
    );
    let f = Stack::stack_filter;
    let left = [
        (
            "VPCs",
            ec2.describe_vpcs()
                .filters(f(stack))
                .send()
                .await
                .unwrap()
                .vpcs()
                .len(),
        ),
        (
            "subnets",
            ec2.describe_subnets()
                .filters(f(stack))
                .send()
                .await
                .unwrap()
                .subnets()
                .len(),
        ),
        (
            "internet gateways",
            ec2.describe_internet_gateways()
                .filters(f(stack))
                .send()
                .await
                .unwrap()
                .internet_gateways()
                .len(),
        ),
        (
            "Elastic IPs",
            ec2.describe_addresses()
                .filters(f(stack))
                .send()
                .await
                .unwrap()
                .addresses()
                .len(),
        ),
        (
            "route tables",
            ec2.describe_route_tables()
                .filters(f(stack))
                .send()
                .await
                .unwrap()
                .route_tables()
                .len(),
        ),
        (
            "security groups",
            ec2.describe_security_groups()
                .filters(f(stack))
                .send()
                .await
                .unwrap()
                .security_groups()
                .len(),
        ),
        (
            "NAT gateways",
            // Tag filters on DescribeNatGateways are ignored by LocalStack and moto (see
            // `nat_gateway_turn`): check the tags here.
            ec2.describe_nat_gateways()
                .filter(f(stack))
                .send()
                .await
                .unwrap()
                .nat_gateways()
                .iter()
                .filter(|n| {
                    n.tags().iter().any(|t| {
                        t.key() == Some("provision:stack")
                            && t.value() == Some(stack.stack_name().as_str())
                    })
                })
                .filter(|n| n.state().map(|s| s.as_str()) != Some("deleted"))
                .count(),
        ),
        (
            "VPC endpoints",
            ec2.describe_vpc_endpoints()
                .filters(f(stack))
                .send()
                .await
                .unwrap()
                .vpc_endpoints()
                .iter()
                .filter(|e| {
                    !e.state()
                        .is_some_and(|s| s.as_str().eq_ignore_ascii_case("deleted"))
                })
                .count(),
        ),
    ];
    let left: Vec<_> = left.iter().filter(|(_, n)| *n > 0).collect();
    assert!(left.is_empty(), "left behind after `down`: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_network_tier_is_built_as_the_seed_describes_kept_and_removed() {
    let _turn = nat_gateway_turn().await;
    let stack = Stack::new().await;
    let first = stack.up(&["network/"]).await;
    assert!(mutating_calls(&first) > 0, "the first run creates things");
    // Only the network tier was touched: the state records network nodes and nothing else.
    let ids = state_ids(&stack.state());
    assert!(!ids.is_empty());
    assert!(
        ids.iter().all(|id| id.starts_with("network/")),
        "--target network/ reached beyond the network: {ids:?}"
    );
    let network = check_network(&stack).await;

    // A rerun reads and changes nothing; plan agrees.
    let second = stack.up(&["network/"]).await;
    assert_eq!(
        mutating_calls(&second),
        0,
        "a rerun must not change anything: {:?}",
        mutating_operations(&second)
    );
    let (code, plan) = stack.plan(&["network/"]).await;
    assert_eq!(code, 0, "plan must find nothing to do: {plan:#}");
    assert_eq!(plan["changes"], false);

    stack.down().await;
    assert_network_gone(&stack, &network.vpc_id).await;
    let state = stack.state();
    assert!(
        state_ids(&state).is_empty(),
        "down leaves an empty state: {state:#}"
    );
}
