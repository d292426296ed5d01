//! The network layer end to end: `up` builds the seed's VPC, a rerun changes nothing,
//! `plan` agrees, and `down` leaves nothing behind.

use aws_sdk_ec2::types::Filter;

use crate::support::{Stack, mutating_calls, mutating_operations};

fn tag(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

fn stack_filter(stack: &Stack) -> Filter {
    tag("provision:stack", &stack.stack_name())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_network_is_built_as_the_seed_describes_kept_and_removed() {
    let stack = Stack::new().await;
    let first = stack.up().await;
    let ec2 = stack.ec2();

    // The VPC: 10.0.0.0/16, named after the environment, DNS on for private endpoints.
    let vpcs = ec2
        .describe_vpcs()
        .filters(stack_filter(&stack))
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1, "exactly one VPC");
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

    // Two public and two private subnets, spread over two zones.
    let subnets = ec2
        .describe_subnets()
        .filters(Filter::builder().name("vpc-id").values(&vpc_id).build())
        .send()
        .await
        .unwrap();
    let subnets = subnets.subnets();
    assert_eq!(subnets.len(), 4);
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
        let zones: std::collections::BTreeSet<_> = group
            .iter()
            .map(|s| s.availability_zone().unwrap())
            .collect();
        assert_eq!(zones.len(), 2, "one subnet of each kind per zone");
    }
    let mut cidrs: Vec<_> = subnets
        .iter()
        .map(|s| s.cidr_block().unwrap().to_string())
        .collect();
    cidrs.sort();
    assert_eq!(
        cidrs,
        [
            "10.0.0.0/18",
            "10.0.128.0/18",
            "10.0.192.0/18",
            "10.0.64.0/18"
        ]
    );

    // Internet gateway attached; NAT gateway with an Elastic IP in the first public subnet.
    let igws = ec2
        .describe_internet_gateways()
        .filters(
            Filter::builder()
                .name("attachment.vpc-id")
                .values(&vpc_id)
                .build(),
        )
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
        .filter(Filter::builder().name("vpc-id").values(&vpc_id).build())
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

    // Routes: public subnets out through the internet gateway, private ones through the NAT.
    let tables = ec2
        .describe_route_tables()
        .filters(Filter::builder().name("vpc-id").values(&vpc_id).build())
        .filters(stack_filter(&stack))
        .send()
        .await
        .unwrap();
    assert_eq!(tables.route_tables().len(), 2);
    for t in tables.route_tables() {
        let default = t
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .expect("a default route");
        let associated: Vec<_> = t
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
        }
    }

    // Endpoints: S3 on the private route table; ECR api and dkr in the private subnets with
    // private DNS, behind a group that allows HTTPS from the VPC.
    let endpoints = ec2
        .describe_vpc_endpoints()
        .filters(Filter::builder().name("vpc-id").values(&vpc_id).build())
        .send()
        .await
        .unwrap();
    let endpoints = endpoints.vpc_endpoints();
    assert_eq!(endpoints.len(), 3);
    let by_service = |s: &str| {
        endpoints
            .iter()
            .find(|e| e.service_name() == Some(s))
            .unwrap_or_else(|| panic!("no endpoint for {s}"))
    };
    let s3 = by_service("com.amazonaws.us-east-1.s3");
    assert_eq!(s3.vpc_endpoint_type().map(|t| t.as_str()), Some("Gateway"));
    assert_eq!(s3.route_table_ids().len(), 1);
    for svc in [
        "com.amazonaws.us-east-1.ecr.api",
        "com.amazonaws.us-east-1.ecr.dkr",
    ] {
        let e = by_service(svc);
        assert_eq!(e.vpc_endpoint_type().map(|t| t.as_str()), Some("Interface"));
        assert_eq!(e.private_dns_enabled(), Some(true));
        let mut ids: Vec<_> = e.subnet_ids().to_vec();
        ids.sort();
        let mut want: Vec<_> = private
            .iter()
            .map(|s| s.subnet_id().unwrap().to_string())
            .collect();
        want.sort();
        assert_eq!(ids, want);
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
    assert!(first["api_calls"]["mutating"].as_u64().unwrap() > 0);

    // A rerun reads and changes nothing; plan agrees.
    let second = stack.up().await;
    assert_eq!(
        mutating_calls(&second),
        0,
        "a rerun must not change anything: {:?}",
        mutating_operations(&second)
    );
    let (code, plan) = stack.plan().await;
    assert_eq!(code, 0, "plan must find nothing to do: {plan:#}");
    assert_eq!(plan["changes"], false);

    // down leaves no VPC, subnet, gateway, address or endpoint, and an empty state.
    stack.down().await;
    assert!(
        ec2.describe_vpcs()
            .vpc_ids(&vpc_id)
            .send()
            .await
            .map(|o| o.vpcs().is_empty())
            .unwrap_or(true)
    );
    assert!(
        ec2.describe_vpcs()
            .filters(stack_filter(&stack))
            .send()
            .await
            .unwrap()
            .vpcs()
            .is_empty()
    );
    assert!(
        ec2.describe_subnets()
            .filters(stack_filter(&stack))
            .send()
            .await
            .unwrap()
            .subnets()
            .is_empty()
    );
    assert!(
        ec2.describe_internet_gateways()
            .filters(stack_filter(&stack))
            .send()
            .await
            .unwrap()
            .internet_gateways()
            .is_empty()
    );
    assert!(
        ec2.describe_addresses()
            .filters(stack_filter(&stack))
            .send()
            .await
            .unwrap()
            .addresses()
            .is_empty()
    );
    assert!(
        ec2.describe_route_tables()
            .filters(stack_filter(&stack))
            .send()
            .await
            .unwrap()
            .route_tables()
            .is_empty()
    );
    assert!(
        ec2.describe_security_groups()
            .filters(stack_filter(&stack))
            .send()
            .await
            .unwrap()
            .security_groups()
            .is_empty()
    );
    let live_nats = ec2
        .describe_nat_gateways()
        .filter(stack_filter(&stack))
        .send()
        .await
        .unwrap();
    assert!(
        live_nats
            .nat_gateways()
            .iter()
            .all(|n| n.state().map(|s| s.as_str()) == Some("deleted")),
        "NAT gateways must be deleted"
    );
    let live_endpoints = ec2
        .describe_vpc_endpoints()
        .filters(stack_filter(&stack))
        .send()
        .await
        .unwrap();
    assert!(
        live_endpoints
            .vpc_endpoints()
            .iter()
            .all(|e| e.state().map(|s| s.as_str().to_ascii_lowercase()) == Some("deleted".into()))
    );
    let state = stack.state();
    assert!(
        state["resources"].as_object().unwrap().is_empty(),
        "down leaves an empty state: {state:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_removed_behind_the_tools_back_shows_in_plan_and_is_put_back() {
    let stack = Stack::new().await;
    stack.up().await;
    let ec2 = stack.ec2();
    let sg = ec2
        .describe_security_groups()
        .filters(stack_filter(&stack))
        .filters(tag("provision:id", "network/security-group/vpc-endpoints"))
        .send()
        .await
        .unwrap();
    let group = sg.security_groups()[0].group_id().unwrap().to_string();
    // Someone removes the endpoint group's HTTPS rule by hand.
    let rule = sg.security_groups()[0].ip_permissions()[0].clone();
    ec2.revoke_security_group_ingress()
        .group_id(&group)
        .ip_permissions(rule)
        .send()
        .await
        .unwrap();

    let (code, plan) = stack.plan().await;
    assert_eq!(code, 2, "the drift shows in the plan");
    let step = plan["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "network/security-group/vpc-endpoints")
        .unwrap();
    assert_eq!(step["action"], "update");
    assert_eq!(step["changes"][0]["setting"], "ingress");

    stack.up().await;
    let sg = ec2
        .describe_security_groups()
        .group_ids(&group)
        .send()
        .await
        .unwrap();
    assert_eq!(
        sg.security_groups()[0].ip_permissions().len(),
        1,
        "up puts the rule back"
    );
    let (code, _) = stack.plan().await;
    assert_eq!(code, 0);
}
