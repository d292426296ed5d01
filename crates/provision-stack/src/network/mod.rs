//! The VPC: `10.0.0.0/16` over two availability zones, a public and a private subnet in
//! each, an internet gateway, one NAT gateway (with its Elastic IP) in the first public
//! subnet, public and private route tables, an S3 gateway endpoint on the private route table
//! and ECR `api` and `dkr` interface endpoints in the private subnets.
//!
//! Subnet sizes follow CDK's defaults for this layout (four /18s), so a CDK user's address
//! plan carries over.

use std::collections::{BTreeMap, BTreeSet};

use provision_core::graph::{Graph, GraphError};
use provision_core::names;
use provision_core::resource::{Node, Ref};
use provision_ec2::{
    AvailabilityZonesOut, AvailabilityZonesSpec, Ec2Kinds, ElasticIpOut, ElasticIpSpec,
    IngressRule, InternetGatewayOut, InternetGatewaySpec, NatGatewayOut, NatGatewaySpec, RouteOut,
    RouteSpec, RouteTableAssociationSpec, RouteTableOut, RouteTableSpec, SecurityGroupOut,
    SecurityGroupSpec, SubnetOut, SubnetSpec, VpcEndpointOut, VpcEndpointSpec, VpcOut, VpcSpec,
};
use serde_json::json;

use crate::{OutputsPart, Project};

pub const VPC_CIDR: &str = "10.0.0.0/16";
const PUBLIC_CIDRS: [&str; 2] = ["10.0.0.0/18", "10.0.64.0/18"];
const PRIVATE_CIDRS: [&str; 2] = ["10.0.128.0/18", "10.0.192.0/18"];

/// What the rest of the stack needs from the network.
pub struct Network {
    pub vpc: Ref<VpcOut>,
    pub public_subnets: Vec<Ref<SubnetOut>>,
    pub private_subnets: Vec<Ref<SubnetOut>>,
    /// Internet-facing load balancers need the gateway attached before they can be created.
    pub internet_gateway: Ref<InternetGatewayOut>,
    /// The private subnets' default route through the NAT gateway: what gives tasks in the
    /// private subnets a way out (logs, model hubs).
    pub private_egress: Ref<RouteOut>,
    pub vpc_endpoints: Vec<Ref<VpcEndpointOut>>,
}

impl Network {
    pub fn outputs(&self) -> OutputsPart {
        let vpc = self.vpc.clone();
        Box::new(move |inputs| {
            Ok(BTreeMap::from([(
                "vpc_id".to_string(),
                json!(inputs.get(&vpc)?.vpc_id),
            )]))
        })
    }
}

/// `com.amazonaws.<region>.<service>`; China's regions prefix some services with `cn.`.
pub fn endpoint_service(region: &str, service: &str) -> String {
    if region.starts_with("cn-") && service != "s3" {
        format!("cn.com.amazonaws.{region}.{service}")
    } else {
        format!("com.amazonaws.{region}.{service}")
    }
}

pub fn vpc_name(environment: &str) -> String {
    format!("streamlit-app-vpc-{environment}")
}

pub fn add(g: &mut Graph, project: &Project, k: &Ec2Kinds) -> Result<Network, GraphError> {
    let config = &project.config;
    let region = config.region.clone();
    let vpc_name = vpc_name(&config.environment);
    let label = |suffix: &str| format!("{vpc_name}/{suffix}");

    let zones = Node::new("network/availability-zones", k.availability_zones.clone())
        .spec(|_| Ok(AvailabilityZonesSpec {}));
    let zones_ref: Ref<AvailabilityZonesOut> = zones.handle();
    g.add(zones)?;

    let name = vpc_name.clone();
    let vpc = Node::new("network/vpc", k.vpc.clone()).spec(move |_| {
        Ok(VpcSpec {
            cidr_block: VPC_CIDR.to_string(),
            name: name.clone(),
            dns: true,
        })
    });
    let vpc_ref: Ref<VpcOut> = vpc.handle();
    g.add(vpc)?;

    let subnet = |g: &mut Graph,
                  kind: &str,
                  i: usize,
                  cidr: &'static str|
     -> Result<Ref<SubnetOut>, GraphError> {
        let (v, z) = (vpc_ref.clone(), zones_ref.clone());
        let public = kind == "public";
        let name = label(&format!("{kind}-{}", i + 1));
        let node = Node::new(format!("network/subnet/{kind}-{i}"), k.subnet.clone())
            .after(&vpc_ref)
            .after(&zones_ref)
            .spec(move |inputs| {
                let zones = inputs.get(&z)?.names;
                Ok(SubnetSpec {
                    vpc_id: inputs.get(&v)?.vpc_id,
                    cidr_block: cidr.to_string(),
                    availability_zone: zones.get(i).cloned().unwrap_or_default(),
                    map_public_ip_on_launch: public,
                    name: name.clone(),
                })
            });
        let r = node.handle();
        g.add(node)?;
        Ok(r)
    };
    let public_subnets = vec![
        subnet(g, "public", 0, PUBLIC_CIDRS[0])?,
        subnet(g, "public", 1, PUBLIC_CIDRS[1])?,
    ];
    let private_subnets = vec![
        subnet(g, "private", 0, PRIVATE_CIDRS[0])?,
        subnet(g, "private", 1, PRIVATE_CIDRS[1])?,
    ];

    let v = vpc_ref.clone();
    let name = label("igw");
    let igw = Node::new("network/internet-gateway", k.internet_gateway.clone())
        .after(&vpc_ref)
        .spec(move |inputs| {
            Ok(InternetGatewaySpec {
                vpc_id: inputs.get(&v)?.vpc_id,
                name: name.clone(),
            })
        });
    let igw_ref: Ref<InternetGatewayOut> = igw.handle();
    g.add(igw)?;

    let route_table = |g: &mut Graph, kind: &str| -> Result<Ref<RouteTableOut>, GraphError> {
        let v = vpc_ref.clone();
        let name = label(kind);
        let node = Node::new(format!("network/route-table/{kind}"), k.route_table.clone())
            .after(&vpc_ref)
            .spec(move |inputs| {
                Ok(RouteTableSpec {
                    vpc_id: inputs.get(&v)?.vpc_id,
                    name: name.clone(),
                })
            });
        let r = node.handle();
        g.add(node)?;
        Ok(r)
    };
    let public_rt = route_table(g, "public")?;
    let private_rt = route_table(g, "private")?;

    for (kind, rt, subnets) in [
        ("public", &public_rt, &public_subnets),
        ("private", &private_rt, &private_subnets),
    ] {
        for (i, s) in subnets.iter().enumerate() {
            let (rt2, s2) = (rt.clone(), s.clone());
            g.add(
                Node::new(
                    format!("network/route-table-association/{kind}-{i}"),
                    k.route_table_association.clone(),
                )
                .after(rt)
                .after(s)
                .spec(move |inputs| {
                    Ok(RouteTableAssociationSpec {
                        route_table_id: inputs.get(&rt2)?.route_table_id,
                        subnet_id: inputs.get(&s2)?.subnet_id,
                    })
                }),
            )?;
        }
    }

    let (rt, gw) = (public_rt.clone(), igw_ref.clone());
    g.add(
        Node::new("network/route/public-default", k.route.clone())
            .after(&public_rt)
            .after(&igw_ref)
            .spec(move |inputs| {
                Ok(RouteSpec {
                    route_table_id: inputs.get(&rt)?.route_table_id,
                    destination_cidr_block: "0.0.0.0/0".into(),
                    gateway_id: Some(inputs.get(&gw)?.internet_gateway_id),
                    nat_gateway_id: None,
                })
            }),
    )?;

    let name = label("nat-eip");
    let eip = Node::new("network/elastic-ip", k.elastic_ip.clone())
        .spec(move |_| Ok(ElasticIpSpec { name: name.clone() }));
    let eip_ref: Ref<ElasticIpOut> = eip.handle();
    g.add(eip)?;

    let (s, e) = (public_subnets[0].clone(), eip_ref.clone());
    let name = label("nat");
    // A NAT gateway in a VPC without an attached internet gateway cannot reach anything.
    let nat = Node::new("network/nat-gateway", k.nat_gateway.clone())
        .after(&public_subnets[0])
        .after(&eip_ref)
        .after(&igw_ref)
        .spec(move |inputs| {
            Ok(NatGatewaySpec {
                subnet_id: inputs.get(&s)?.subnet_id,
                allocation_id: inputs.get(&e)?.allocation_id,
                name: name.clone(),
            })
        });
    let nat_ref: Ref<NatGatewayOut> = nat.handle();
    g.add(nat)?;

    let (rt, n) = (private_rt.clone(), nat_ref.clone());
    let private_route = Node::new("network/route/private-default", k.route.clone())
        .after(&private_rt)
        .after(&nat_ref)
        .spec(move |inputs| {
            Ok(RouteSpec {
                route_table_id: inputs.get(&rt)?.route_table_id,
                destination_cidr_block: "0.0.0.0/0".into(),
                gateway_id: None,
                nat_gateway_id: Some(inputs.get(&n)?.nat_gateway_id),
            })
        });
    let private_egress: Ref<RouteOut> = private_route.handle();
    g.add(private_route)?;

    // Interface endpoints answer on 443 to anything in the VPC.
    let v = vpc_ref.clone();
    let group_name = names::fit(
        &project.stack_name(),
        "vpc-endpoints",
        names::limits::SECURITY_GROUP,
    );
    let sg = Node::new(
        "network/security-group/vpc-endpoints",
        k.security_group.clone(),
    )
    .after(&vpc_ref)
    .spec(move |inputs| {
        let vpc = inputs.get(&v)?;
        Ok(SecurityGroupSpec {
            vpc_id: vpc.vpc_id,
            group_name: group_name.clone(),
            description: "HTTPS from the VPC to its interface endpoints".into(),
            ingress: BTreeSet::from([IngressRule::tcp_from_cidr(443, &vpc.cidr_block)]),
        })
    });
    let sg_ref: Ref<SecurityGroupOut> = sg.handle();
    g.add(sg)?;

    let mut vpc_endpoints = Vec::new();
    let (v, rt) = (vpc_ref.clone(), private_rt.clone());
    let service = endpoint_service(&region, "s3");
    let name = label("s3");
    let s3 = Node::new("network/vpc-endpoint/s3", k.vpc_endpoint.clone())
        .after(&vpc_ref)
        .after(&private_rt)
        .spec(move |inputs| {
            Ok(VpcEndpointSpec {
                vpc_id: inputs.get(&v)?.vpc_id,
                service_name: service.clone(),
                endpoint_type: "Gateway".into(),
                route_table_ids: BTreeSet::from([inputs.get(&rt)?.route_table_id]),
                subnet_ids: BTreeSet::new(),
                security_group_ids: BTreeSet::new(),
                private_dns_enabled: false,
                name: name.clone(),
            })
        });
    vpc_endpoints.push(s3.handle());
    g.add(s3)?;

    for (id, svc) in [("ecr-api", "ecr.api"), ("ecr-dkr", "ecr.dkr")] {
        let (v, sg, subnets) = (vpc_ref.clone(), sg_ref.clone(), private_subnets.clone());
        let service = endpoint_service(&region, svc);
        let name = label(id);
        let mut node = Node::new(format!("network/vpc-endpoint/{id}"), k.vpc_endpoint.clone())
            .after(&vpc_ref)
            .after(&sg_ref);
        for s in &private_subnets {
            node = node.after(s);
        }
        let node = node.spec(move |inputs| {
            let mut subnet_ids = BTreeSet::new();
            for s in &subnets {
                subnet_ids.insert(inputs.get(s)?.subnet_id);
            }
            Ok(VpcEndpointSpec {
                vpc_id: inputs.get(&v)?.vpc_id,
                service_name: service.clone(),
                endpoint_type: "Interface".into(),
                route_table_ids: BTreeSet::new(),
                subnet_ids,
                security_group_ids: BTreeSet::from([inputs.get(&sg)?.group_id]),
                private_dns_enabled: true,
                name: name.clone(),
            })
        });
        vpc_endpoints.push(node.handle());
        g.add(node)?;
    }

    Ok(Network {
        vpc: vpc_ref,
        public_subnets,
        private_subnets,
        internet_gateway: igw_ref,
        private_egress,
        vpc_endpoints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_services_follow_the_partition() {
        assert_eq!(
            endpoint_service("us-east-1", "ecr.api"),
            "com.amazonaws.us-east-1.ecr.api"
        );
        assert_eq!(
            endpoint_service("cn-north-1", "ecr.dkr"),
            "cn.com.amazonaws.cn-north-1.ecr.dkr"
        );
        assert_eq!(
            endpoint_service("cn-north-1", "s3"),
            "com.amazonaws.cn-north-1.s3"
        );
    }

    #[test]
    fn subnets_split_the_vpc_like_cdk() {
        assert_eq!(PUBLIC_CIDRS, ["10.0.0.0/18", "10.0.64.0/18"]);
        assert_eq!(PRIVATE_CIDRS, ["10.0.128.0/18", "10.0.192.0/18"]);
        assert_eq!(vpc_name("dev"), "streamlit-app-vpc-dev");
    }
}
