//! The VPC: `10.0.0.0/16` over two availability zones, a public and a private subnet in
//! each, an internet gateway, one NAT gateway (with its Elastic IP) in the first public
//! subnet, public and private route tables, an S3 gateway endpoint on the private route table
//! and ECR `api` and `dkr` interface endpoints in the private subnets.
//!
//! Subnet sizes follow CDK's defaults for this layout (four /18s), so a CDK user's address
//! plan carries over.
//!
//! What each node waits for (all until ready) is what it reads: a subnet its VPC and the
//! zones, a route its table and its gateway, and so on. The one ordering-only dependency is
//! the NAT gateway's on the internet gateway (see [`routing`]).

use std::collections::BTreeMap;

use provision_core::graph::{Graph, GraphError};
use provision_core::input::{Derived, Ref};
use provision_core::resource::Node;
use provision_ec2::{
    AvailabilityZonesOut, AvailabilityZonesSpec, Ec2Kinds, InternetGatewayOut, RouteOut, SubnetOut,
    SubnetSpec, VpcEndpointOut, VpcOut, VpcSpec,
};
use serde_json::json;

use crate::{OutputsPart, Project};

mod endpoints;
mod routing;

pub use endpoints::endpoint_service;

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
        Derived::new(self.vpc.ready(), |vpc| {
            BTreeMap::from([("vpc_id".to_string(), json!(vpc.vpc_id))])
        })
    }
}

pub fn vpc_name(environment: &str) -> String {
    format!("streamlit-app-vpc-{environment}")
}

/// Names the VPC's parts after it, as CDK does: `<vpc name>/<part>`.
struct Labels(String);

impl Labels {
    fn of(&self, part: &str) -> String {
        format!("{}/{part}", self.0)
    }
}

pub fn add(g: &mut Graph, project: &Project, k: &Ec2Kinds) -> Result<Network, GraphError> {
    let config = &project.config;
    let labels = Labels(vpc_name(&config.environment));

    let zones: Ref<AvailabilityZonesOut> = g.insert(
        Node::new("network/availability-zones", k.availability_zones.clone())
            .fixed(&AvailabilityZonesSpec::default()),
    )?;
    let vpc: Ref<VpcOut> = g.insert(Node::new("network/vpc", k.vpc.clone()).fixed(&VpcSpec {
        cidr_block: VPC_CIDR.to_string(),
        name: labels.0.clone(),
        dns: true,
        ipv6: false,
    }))?;
    let mut subnets = |kind: &str, cidrs: [&'static str; 2]| -> Result<Vec<_>, GraphError> {
        (0..cidrs.len())
            .map(|i| subnet(g, k, &labels, (&vpc, &zones), (kind, i, cidrs[i])))
            .collect()
    };
    let public_subnets = subnets("public", PUBLIC_CIDRS)?;
    let private_subnets = subnets("private", PRIVATE_CIDRS)?;

    let routes = routing::add(g, k, &labels, &vpc, &public_subnets, &private_subnets)?;
    let vpc_endpoints = endpoints::add(
        g,
        project,
        k,
        &labels,
        &vpc,
        &routes.private_table,
        &private_subnets,
    )?;
    Ok(Network {
        vpc,
        public_subnets,
        private_subnets,
        internet_gateway: routes.internet_gateway,
        private_egress: routes.private_egress,
        vpc_endpoints,
    })
}

/// `network/subnet/<kind>-<i>`: the `i`-th zone's subnet of a kind (`public`, `private`).
fn subnet(
    g: &mut Graph,
    k: &Ec2Kinds,
    labels: &Labels,
    (vpc, zones): (&Ref<VpcOut>, &Ref<AvailabilityZonesOut>),
    (kind, i, cidr): (&str, usize, &'static str),
) -> Result<Ref<SubnetOut>, GraphError> {
    let public = kind == "public";
    let name = labels.of(&format!("{kind}-{}", i + 1));
    g.insert(
        Node::new(format!("network/subnet/{kind}-{i}"), k.subnet.clone()).spec(
            (vpc.ready(), zones.ready()),
            move |(vpc, zones)| SubnetSpec {
                vpc_id: vpc.vpc_id,
                cidr_block: cidr.to_string(),
                availability_zone: zones.names.get(i).cloned().unwrap_or_default(),
                map_public_ip_on_launch: public,
                ipv6_cidr_block: None,
                assign_ipv6_address_on_creation: false,
                name: name.clone(),
            },
        ),
    )
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
