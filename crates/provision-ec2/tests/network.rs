//! The EC2 kinds against the emulator (moto), where it can serve them: two environments side
//! by side in one account never find each other's resources, whatever the server does with
//! tag filters (moto ignores the one on `DescribeNatGateways`); the availability zones are
//! those offering the stack's endpoint services; a dual-stack network is made, read back in
//! one call per resource without a change to make, and switched on in place.

// The helpers are test code too (clippy only knows `#[test]` functions as such).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use provision_core::Kind;
use provision_core::resource::{Cx, Desired, Live, LogicalId, Lookup, Record, Stack, to_settings};
use provision_ec2::{
    AvailabilityZonesOut, AvailabilityZonesSpec, Ec2Kinds, ElasticIpSpec, IngressRule,
    InternetGatewaySpec, NatGatewaySpec, RouteSpec, RouteTableSpec, SecurityGroupSpec, SubnetSpec,
    VpcEndpointSpec, VpcOut, VpcSpec, ipv6_subnet,
};
use provision_testkit::Emulator;
use serde::Serialize;

fn client(url: &str) -> aws_sdk_ec2::Client {
    client_counted(url, &provision_aws::ApiCalls::default())
}

fn client_counted(url: &str, calls: &provision_aws::ApiCalls) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::Config::builder()
        .interceptor(calls.clone())
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

/// One environment's context for the resource `id`.
fn cx(environment: &str, id: &str) -> Cx {
    Cx::detached(
        id,
        Stack {
            name: format!("streamlit-app-{environment}"),
            account: "123456789012".into(),
            region: "us-east-1".into(),
        },
    )
}

fn desired<T: Serialize>(id: &str, spec: &T) -> Desired {
    Desired {
        id: LogicalId::new(id),
        name: None,
        // Unique per environment and resource, like the engine's tokens.
        token: format!("{:032x}", fxhash(id)),
        settings: to_settings(spec),
    }
}

fn fxhash(s: &str) -> u128 {
    s.bytes().fold(0xcbf29ce484222325u128, |h, b| {
        (h ^ b as u128).wrapping_mul(0x100000001b3)
    })
}

/// Reads `id` by its tags alone, as after a crash that lost the create's reply.
async fn find(kind: &dyn Kind, environment: &str, id: &str) -> Option<Live> {
    let logical = LogicalId::new(id);
    let lookup = Lookup {
        id: &logical,
        name: None,
        token: "",
        record: None,
    };
    kind.read(&cx(environment, id), &lookup)
        .await
        .unwrap_or_else(|e| panic!("{environment} {id}: {e}"))
}

/// The network resources of one environment, created through the kinds.
struct Network {
    ids: Vec<(&'static str, String)>,
}

async fn network(k: &Ec2Kinds, env: &str, cidr_second_octet: u8) -> Network {
    let make = |id: &'static str| (id, cx(env, id));
    let token_id = |id: &str| format!("{env}/{id}");
    let mut ids = Vec::new();

    let (id, c) = make("network/vpc");
    let vpc = k
        .vpc
        .create(
            &c,
            &desired(
                &token_id(id),
                &VpcSpec {
                    cidr_block: format!("10.{cidr_second_octet}.0.0/16"),
                    name: format!("vpc-{env}"),
                    dns: true,
                    ipv6: false,
                },
            ),
        )
        .await
        .unwrap();
    let vpc_id = vpc.physical_id.clone();
    ids.push((id, vpc_id.clone()));

    let (id, c) = make("network/subnet/public-0");
    let subnet = k
        .subnet
        .create(
            &c,
            &desired(
                &token_id(id),
                &SubnetSpec {
                    vpc_id: vpc_id.clone(),
                    cidr_block: format!("10.{cidr_second_octet}.0.0/18"),
                    availability_zone: "us-east-1a".into(),
                    map_public_ip_on_launch: true,
                    name: format!("public-{env}"),
                    ipv6_cidr_block: None,
                    assign_ipv6_address_on_creation: false,
                },
            ),
        )
        .await
        .unwrap();
    ids.push((id, subnet.physical_id.clone()));

    let (id, c) = make("network/internet-gateway");
    let igw = k
        .internet_gateway
        .create(
            &c,
            &desired(
                &token_id(id),
                &InternetGatewaySpec {
                    vpc_id: vpc_id.clone(),
                    name: format!("igw-{env}"),
                },
            ),
        )
        .await
        .unwrap();
    ids.push((id, igw.physical_id.clone()));

    let (id, c) = make("network/elastic-ip");
    let eip = k
        .elastic_ip
        .create(
            &c,
            &desired(
                &token_id(id),
                &ElasticIpSpec {
                    name: format!("eip-{env}"),
                },
            ),
        )
        .await
        .unwrap();
    ids.push((id, eip.physical_id.clone()));

    let (id, c) = make("network/nat-gateway");
    let nat = k
        .nat_gateway
        .create(
            &c,
            &desired(
                &token_id(id),
                &NatGatewaySpec {
                    subnet_id: subnet.physical_id.clone(),
                    allocation_id: eip.physical_id.clone(),
                    name: format!("nat-{env}"),
                },
            ),
        )
        .await
        .unwrap();
    ids.push((id, nat.physical_id.clone()));

    let (id, c) = make("network/route-table/private");
    let rt = k
        .route_table
        .create(
            &c,
            &desired(
                &token_id(id),
                &RouteTableSpec {
                    vpc_id: vpc_id.clone(),
                    name: format!("private-{env}"),
                },
            ),
        )
        .await
        .unwrap();
    ids.push((id, rt.physical_id.clone()));

    let (id, c) = make("network/security-group/vpc-endpoints");
    let sg = k
        .security_group
        .create(
            &c,
            &desired(
                &token_id(id),
                &SecurityGroupSpec {
                    vpc_id: vpc_id.clone(),
                    group_name: format!("streamlit-app-{env}-vpc-endpoints"),
                    description: "HTTPS from the VPC to its interface endpoints".into(),
                    ingress: BTreeSet::from([IngressRule::tcp_from_cidr(
                        443,
                        &format!("10.{cidr_second_octet}.0.0/16"),
                    )]),
                },
            ),
        )
        .await
        .unwrap();
    ids.push((id, sg.physical_id.clone()));

    let (id, c) = make("network/vpc-endpoint/s3");
    let endpoint = k
        .vpc_endpoint
        .create(
            &c,
            &desired(
                &token_id(id),
                &VpcEndpointSpec {
                    vpc_id: vpc_id.clone(),
                    service_name: "com.amazonaws.us-east-1.s3".into(),
                    endpoint_type: "Gateway".into(),
                    route_table_ids: BTreeSet::from([rt.physical_id.clone()]),
                    subnet_ids: BTreeSet::new(),
                    security_group_ids: BTreeSet::new(),
                    private_dns_enabled: false,
                    name: format!("s3-{env}"),
                },
            ),
        )
        .await
        .unwrap();
    ids.push((id, endpoint.physical_id.clone()));

    Network { ids }
}

fn kind<'a>(k: &'a Ec2Kinds, id: &str) -> &'a dyn Kind {
    match id {
        "network/vpc" => k.vpc.as_ref(),
        "network/subnet/public-0" => k.subnet.as_ref(),
        "network/internet-gateway" => k.internet_gateway.as_ref(),
        "network/elastic-ip" => k.elastic_ip.as_ref(),
        "network/nat-gateway" => k.nat_gateway.as_ref(),
        "network/route-table/private" => k.route_table.as_ref(),
        "network/security-group/vpc-endpoints" => k.security_group.as_ref(),
        "network/vpc-endpoint/s3" => k.vpc_endpoint.as_ref(),
        other => panic!("no kind for {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_environments_in_one_account_never_find_each_others_resources() {
    let emulator = Emulator::start().expect("moto starts");
    let k = Ec2Kinds::new(client(emulator.url()));

    let dev = network(&k, "dev", 1).await;
    // Before prod has anything, a lookup by tags (a lost reply, a crash) must find nothing,
    // not dev's resource, and must not take dev's for a foreign one either.
    for (id, _) in &dev.ids {
        assert_eq!(
            find(kind(&k, id), "prod", id).await.map(|l| l.physical_id),
            None,
            "prod's {id} found one of dev's"
        );
    }

    let prod = network(&k, "prod", 2).await;
    for ((id, dev_id), (_, prod_id)) in dev.ids.iter().zip(&prod.ids) {
        assert_ne!(dev_id, prod_id, "{id}");
        for (env, want) in [("dev", dev_id), ("prod", prod_id)] {
            assert_eq!(
                find(kind(&k, id), env, id)
                    .await
                    .map(|l| l.physical_id)
                    .as_ref(),
                Some(want),
                "{env}'s {id}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn zones_are_those_offering_the_endpoint_services_and_a_service_not_offered_is_named() {
    let emulator = Emulator::start().expect("moto starts");
    let k = Ec2Kinds::new(client(emulator.url()));
    let id = "network/availability-zones";
    let c = cx("dev", id);

    let any = k
        .availability_zones
        .create(&c, &desired(id, &AvailabilityZonesSpec::default()))
        .await
        .unwrap();
    let any: AvailabilityZonesOut = any.outputs().unwrap();
    assert!(any.names.len() >= 2);
    assert!(any.names.windows(2).all(|w| w[0] < w[1]), "sorted");

    // The zones EC2 says offer both ECR endpoint services, asked of it the same way.
    let ec2 = client(emulator.url());
    let mut offered: Option<BTreeSet<String>> = None;
    for service in ["ecr.api", "ecr.dkr"] {
        let name = format!("com.amazonaws.us-east-1.{service}");
        let out = ec2
            .describe_vpc_endpoint_services()
            .service_names(&name)
            .send()
            .await
            .unwrap();
        let zones: BTreeSet<String> = out
            .service_details()
            .iter()
            .find(|d| d.service_name() == Some(name.as_str()))
            .unwrap()
            .availability_zones()
            .iter()
            .cloned()
            .collect();
        offered = Some(match offered {
            None => zones,
            Some(o) => o.intersection(&zones).cloned().collect(),
        });
    }
    let spec = AvailabilityZonesSpec {
        endpoint_services: vec![
            "com.amazonaws.us-east-1.ecr.api".into(),
            "com.amazonaws.us-east-1.ecr.dkr".into(),
        ],
    };
    let chosen: AvailabilityZonesOut = k
        .availability_zones
        .create(&c, &desired(id, &spec))
        .await
        .unwrap()
        .outputs()
        .unwrap();
    let offered = offered.unwrap();
    assert!(chosen.names.len() >= 2);
    assert!(
        chosen
            .names
            .iter()
            .all(|z| offered.contains(z) && any.names.contains(z)),
        "{chosen:?} offered in {offered:?}"
    );

    let err = k
        .availability_zones
        .create(
            &c,
            &desired(
                id,
                &AvailabilityZonesSpec {
                    endpoint_services: vec!["com.amazonaws.us-east-1.no-such-service".into()],
                },
            ),
        )
        .await
        .unwrap_err();
    // AWS (and moto) answer InvalidServiceName; the error names the service and what to do.
    assert!(
        err.message
            .contains("com.amazonaws.us-east-1.no-such-service"),
        "{}",
        err.message
    );
    assert!(
        err.hint.as_deref().is_some_and(|h| h.contains("region")),
        "{:?}",
        err.hint
    );
}

/// Reads `id` by its recorded physical id, as every rerun does.
async fn read_by_id(kind: &dyn Kind, environment: &str, id: &str, physical_id: &str) -> Live {
    let logical = LogicalId::new(id);
    let record = Record {
        kind: kind.name().to_string(),
        status: provision_core::state::Status::Ready,
        physical_id: Some(physical_id.to_string()),
        name: None,
        token: String::new(),
        generation: 0,
        deps: Vec::new(),
        fingerprint: None,
        settings: serde_json::Map::new(),
        outputs: serde_json::Value::Null,
        updated_at: String::new(),
    };
    let lookup = Lookup {
        id: &logical,
        name: None,
        token: "",
        record: Some(&record),
    };
    kind.read(&cx(environment, id), &lookup)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{id} {physical_id} is gone"))
}

fn changed(desired: &Desired, live: &Live) -> Vec<String> {
    desired
        .settings
        .iter()
        .filter(|(k, v)| live.settings.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dual_stack_network_is_made_read_back_unchanged_and_switched_on_in_place() {
    let emulator = Emulator::start().expect("moto starts");
    let calls = provision_aws::ApiCalls::default();
    let k = Ec2Kinds::new(client_counted(emulator.url(), &calls));

    // A new VPC with an Amazon-provided /56.
    let vpc_spec = VpcSpec {
        cidr_block: "10.0.0.0/16".into(),
        name: "dual".into(),
        dns: true,
        ipv6: true,
    };
    let vpc = k
        .vpc
        .create(&cx("dev", "network/vpc"), &desired("vpc", &vpc_spec))
        .await
        .unwrap();
    let out: VpcOut = vpc.outputs().unwrap();
    let block = out.ipv6_cidr_block.clone().expect("an IPv6 /56");
    assert!(block.ends_with("/56"), "{block}");

    // A subnet with the first /64, giving addresses from it.
    let subnet_spec = SubnetSpec {
        vpc_id: out.vpc_id.clone(),
        cidr_block: "10.0.0.0/18".into(),
        availability_zone: "us-east-1a".into(),
        map_public_ip_on_launch: true,
        name: "public-1".into(),
        ipv6_cidr_block: ipv6_subnet(&block, 0),
        assign_ipv6_address_on_creation: true,
    };
    let id = "network/subnet/public-0";
    let subnet_desired = desired(id, &subnet_spec);
    let subnet = k
        .subnet
        .create(&cx("dev", id), &subnet_desired)
        .await
        .unwrap();

    // A rerun reads each back in one call, and finds nothing to change.
    let before = calls.snapshot();
    let vpc_live = read_by_id(k.vpc.as_ref(), "dev", "network/vpc", &vpc.physical_id).await;
    let subnet_live = read_by_id(k.subnet.as_ref(), "dev", id, &subnet.physical_id).await;
    let after = calls.snapshot();
    assert_eq!(after.total - before.total, 2, "one read per resource");
    assert_eq!(
        changed(&desired("vpc", &vpc_spec), &vpc_live),
        ["dns"],
        "only DNS, which EC2 does not report in DescribeVpcs"
    );
    assert_eq!(changed(&subnet_desired, &subnet_live), Vec::<String>::new());

    // The default route for IPv6 through the internet gateway.
    let igw = k
        .internet_gateway
        .create(
            &cx("dev", "network/internet-gateway"),
            &desired(
                "igw",
                &InternetGatewaySpec {
                    vpc_id: out.vpc_id.clone(),
                    name: "igw".into(),
                },
            ),
        )
        .await
        .unwrap();
    let rt = k
        .route_table
        .create(
            &cx("dev", "network/route-table/public"),
            &desired(
                "rt",
                &RouteTableSpec {
                    vpc_id: out.vpc_id.clone(),
                    name: "public".into(),
                },
            ),
        )
        .await
        .unwrap();
    let route_spec = RouteSpec {
        route_table_id: rt.physical_id.clone(),
        destination_cidr_block: "::/0".into(),
        gateway_id: Some(igw.physical_id.clone()),
        nat_gateway_id: None,
    };
    let route_id = "network/route/public-default-ipv6";
    let route_desired = desired(route_id, &route_spec);
    k.route
        .create(&cx("dev", route_id), &route_desired)
        .await
        .unwrap();
    let logical = LogicalId::new(route_id);
    let intent = Record {
        kind: "ec2.route".into(),
        status: provision_core::state::Status::Ready,
        physical_id: None,
        name: None,
        token: String::new(),
        generation: 0,
        deps: Vec::new(),
        fingerprint: None,
        settings: route_desired.settings.clone(),
        outputs: serde_json::Value::Null,
        updated_at: String::new(),
    };
    let lookup = Lookup {
        id: &logical,
        name: None,
        token: "",
        record: Some(&intent),
    };
    let route = k
        .route
        .read(&cx("dev", route_id), &lookup)
        .await
        .unwrap()
        .expect("the ::/0 route");
    assert_eq!(changed(&route_desired, &route), Vec::<String>::new());
    k.route.delete(&cx("dev", route_id), &intent).await.unwrap();
    assert!(
        k.route
            .read(&cx("dev", route_id), &lookup)
            .await
            .unwrap()
            .is_none()
    );

    // An IPv4-only VPC and subnet switched to dual stack in place.
    let v4 = VpcSpec {
        cidr_block: "10.1.0.0/16".into(),
        name: "v4".into(),
        dns: false,
        ipv6: false,
    };
    let old_vpc = k
        .vpc
        .create(&cx("prod", "network/vpc"), &desired("vpc", &v4))
        .await
        .unwrap();
    assert_eq!(old_vpc.outputs::<VpcOut>().unwrap().ipv6_cidr_block, None);
    let dual = VpcSpec { ipv6: true, ..v4 };
    let dual_desired = desired("vpc", &dual);
    let switched = k
        .vpc
        .update(
            &cx("prod", "network/vpc"),
            &dual_desired,
            &old_vpc,
            &changed(&dual_desired, &old_vpc),
        )
        .await
        .unwrap();
    let block = switched
        .outputs::<VpcOut>()
        .unwrap()
        .ipv6_cidr_block
        .expect("associated in place");
    let v4_subnet = SubnetSpec {
        vpc_id: old_vpc.physical_id.clone(),
        cidr_block: "10.1.0.0/18".into(),
        availability_zone: "us-east-1b".into(),
        map_public_ip_on_launch: false,
        name: "v4".into(),
        ipv6_cidr_block: None,
        assign_ipv6_address_on_creation: false,
    };
    let sid = "network/subnet/public-1";
    let old_subnet = k
        .subnet
        .create(&cx("prod", sid), &desired(sid, &v4_subnet))
        .await
        .unwrap();
    let dual_subnet = SubnetSpec {
        ipv6_cidr_block: ipv6_subnet(&block, 1),
        assign_ipv6_address_on_creation: true,
        ..v4_subnet
    };
    let dual_subnet_desired = desired(sid, &dual_subnet);
    k.subnet
        .update(
            &cx("prod", sid),
            &dual_subnet_desired,
            &old_subnet,
            &changed(&dual_subnet_desired, &old_subnet),
        )
        .await
        .unwrap();
    let now = read_by_id(k.subnet.as_ref(), "prod", sid, &old_subnet.physical_id).await;
    assert_eq!(old_subnet.physical_id, now.physical_id, "not replaced");
    assert_eq!(changed(&dual_subnet_desired, &now), Vec::<String>::new());
}
