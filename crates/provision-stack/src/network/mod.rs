//! The VPC: `10.0.0.0/16` over two availability zones, a public and a private subnet in
//! each, an internet gateway, one NAT gateway (with its Elastic IP) in the first public
//! subnet, public and private route tables, an S3 gateway endpoint on the private route table
//! and ECR `api` and `dkr` interface endpoints in the private subnets.
//!
//! Subnet sizes follow CDK's defaults for this layout (four /18s), so a CDK user's address
//! plan carries over.
//!
//! The VPC is dual stack (12.9): it has an Amazon-provided IPv6 /56, each public subnet a /64
//! of it (addresses assigned on creation), and the public route table a `::/0` route to the
//! internet gateway, so the load balancer in the public subnets answers on IPv6 too. The
//! private subnets, and everything in them, stay IPv4 only.
//!
//! The zones are the first two that offer the ECR interface endpoints the private subnets get
//! (`DescribeVpcEndpointServices`), not just the first two names (12.8).
//!
//! What each node waits for (all until ready) is what it reads: a subnet its VPC and the
//! zones, a route its table and its gateway, and so on. The ordering-only dependencies are the
//! NAT gateway's on the internet gateway, and the IPv6 route's on the VPC's IPv6 block (see
//! [`routing`]).

use std::collections::BTreeMap;

use provision_core::graph::{Graph, GraphError};
use provision_core::input::{Dep, Derived, Input, Outputs, Ref, Unresolved};
use provision_core::resource::Node;
use provision_ec2::{
    AvailabilityZonesOut, AvailabilityZonesSpec, Ec2Kinds, InternetGatewayOut, RouteOut, SubnetOut,
    SubnetSpec, VpcEndpointOut, VpcOut, VpcSpec,
};
use serde_json::json;

use crate::{OutputsPart, Project};

mod endpoints;
mod routing;

pub use endpoints::{VPC_ENDPOINTS_GROUP_DESCRIPTION, endpoint_service};

pub const VPC_CIDR: &str = "10.0.0.0/16";
const PUBLIC_CIDRS: [&str; 2] = ["10.0.0.0/18", "10.0.64.0/18"];
const PRIVATE_CIDRS: [&str; 2] = ["10.0.128.0/18", "10.0.192.0/18"];

/// The interface-endpoint services the private subnets get (see [`endpoints`]): every zone the
/// stack uses must offer both.
pub const INTERFACE_ENDPOINT_SERVICES: [&str; 2] = ["ecr.api", "ecr.dkr"];

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
            .fixed(&zones_spec(&config.region)),
    )?;
    let vpc: Ref<VpcOut> = g.insert(Node::new("network/vpc", k.vpc.clone()).fixed(&VpcSpec {
        cidr_block: VPC_CIDR.to_string(),
        name: labels.0.clone(),
        dns: true,
        ipv6: true,
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

/// The zones to choose from: those offering every interface endpoint the stack makes.
pub fn zones_spec(region: &str) -> AvailabilityZonesSpec {
    AvailabilityZonesSpec {
        endpoint_services: INTERFACE_ENDPOINT_SERVICES
            .iter()
            .map(|s| endpoint_service(region, s))
            .collect(),
    }
}

/// The VPC's IPv6 /56, as an input: known once EC2 has associated it. A VPC found without one
/// (an IPv4-only deployment, about to be upgraded in place) leaves what reads it unresolved
/// until the VPC's update has associated it, so the plan shows those readers as updates whose
/// new settings are known after it, and the apply computes them from the associated block.
pub struct VpcIpv6Block(pub Ref<VpcOut>);

impl Input for VpcIpv6Block {
    type Value = String;
    fn deps(&self, into: &mut Vec<Dep>) {
        self.0.ready().deps(into);
    }
    fn read(&self, outputs: &Outputs<'_>) -> Result<String, Unresolved> {
        let vpc: VpcOut = self.0.ready().read(outputs)?;
        vpc.ipv6_cidr_block
            .ok_or_else(|| Unresolved(self.0.id().clone()))
    }
}

/// `network/subnet/<kind>-<i>`: the `i`-th zone's subnet of a kind (`public`, `private`).
/// Public subnets are dual stack: the `i`-th /64 of the VPC's /56, assigned to what is made in
/// them. Private subnets are IPv4 only.
fn subnet(
    g: &mut Graph,
    k: &Ec2Kinds,
    labels: &Labels,
    (vpc, zones): (&Ref<VpcOut>, &Ref<AvailabilityZonesOut>),
    (kind, i, cidr): (&str, usize, &'static str),
) -> Result<Ref<SubnetOut>, GraphError> {
    let public = kind == "public";
    let name = labels.of(&format!("{kind}-{}", i + 1));
    let id = format!("network/subnet/{kind}-{i}");
    let subnet = move |vpc: VpcOut, zones: AvailabilityZonesOut, v6: Option<String>| SubnetSpec {
        vpc_id: vpc.vpc_id,
        cidr_block: cidr.to_string(),
        availability_zone: zones.names.get(i).cloned().unwrap_or_default(),
        map_public_ip_on_launch: public,
        assign_ipv6_address_on_creation: v6.is_some(),
        ipv6_cidr_block: v6,
        name: name.clone(),
    };
    let node = Node::new(id, k.subnet.clone());
    if !public {
        return g.insert(
            node.spec((vpc.ready(), zones.ready()), move |(vpc, zones)| {
                subnet(vpc, zones, None)
            }),
        );
    }
    let index = u8::try_from(i).map_err(|_| GraphError::Invalid {
        node: node.id.clone(),
        message: format!("a /56 holds 256 subnets of /64, not {}", i + 1),
    })?;
    g.insert(node.spec(
        (vpc.ready(), zones.ready(), VpcIpv6Block(vpc.clone())),
        move |(vpc, zones, block)| {
            // A block that is not a /56 gives no /64: the subnet then stays IPv4, and the
            // dual-stack load balancer's create names the subnet that lacks one.
            let v6 = provision_ec2::ipv6_subnet(&block, index);
            subnet(vpc, zones, v6)
        },
    ))
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
    fn zones_must_offer_both_ecr_endpoints() {
        assert_eq!(
            zones_spec("eu-west-1").endpoint_services,
            [
                "com.amazonaws.eu-west-1.ecr.api",
                "com.amazonaws.eu-west-1.ecr.dkr"
            ]
        );
    }

    #[test]
    fn subnets_split_the_vpc_like_cdk() {
        assert_eq!(PUBLIC_CIDRS, ["10.0.0.0/18", "10.0.64.0/18"]);
        assert_eq!(PRIVATE_CIDRS, ["10.0.128.0/18", "10.0.192.0/18"]);
        assert_eq!(vpc_name("dev"), "streamlit-app-vpc-dev");
    }
}
