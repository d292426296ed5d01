//! The ways in and out: the internet gateway, the route tables and their subnets, the NAT
//! gateway with its Elastic IP, and the default routes: IPv4 and IPv6 (`::/0`) from the public
//! subnets to the internet gateway, IPv4 from the private subnets to the NAT gateway.

use provision_core::graph::{Graph, GraphError};
use provision_core::input::{Ref, Until};
use provision_core::resource::Node;
use provision_ec2::{
    Ec2Kinds, ElasticIpOut, ElasticIpSpec, InternetGatewayOut, InternetGatewaySpec, NatGatewayOut,
    NatGatewaySpec, RouteOut, RouteSpec, RouteTableAssociationSpec, RouteTableOut, RouteTableSpec,
    SubnetOut, VpcOut,
};

use super::Labels;

/// What the rest of the network and the stack use.
pub(super) struct Routes {
    pub internet_gateway: Ref<InternetGatewayOut>,
    pub private_table: Ref<RouteTableOut>,
    pub private_egress: Ref<RouteOut>,
}

pub(super) fn add(
    g: &mut Graph,
    k: &Ec2Kinds,
    labels: &Labels,
    vpc: &Ref<VpcOut>,
    public_subnets: &[Ref<SubnetOut>],
    private_subnets: &[Ref<SubnetOut>],
) -> Result<Routes, GraphError> {
    let name = labels.of("igw");
    let internet_gateway: Ref<InternetGatewayOut> = g.insert(
        Node::new("network/internet-gateway", k.internet_gateway.clone()).spec(
            vpc.ready(),
            move |vpc| InternetGatewaySpec {
                vpc_id: vpc.vpc_id,
                name: name.clone(),
            },
        ),
    )?;
    let public_table = route_table(g, k, labels, vpc, "public")?;
    let private_table = route_table(g, k, labels, vpc, "private")?;
    for (kind, table, subnets) in [
        ("public", &public_table, public_subnets),
        ("private", &private_table, private_subnets),
    ] {
        for (i, subnet) in subnets.iter().enumerate() {
            g.add(
                Node::new(
                    format!("network/route-table-association/{kind}-{i}"),
                    k.route_table_association.clone(),
                )
                .spec((table.ready(), subnet.ready()), |(table, subnet)| {
                    RouteTableAssociationSpec {
                        route_table_id: table.route_table_id,
                        subnet_id: subnet.subnet_id,
                    }
                }),
            )?;
        }
    }
    g.add(
        Node::new("network/route/public-default", k.route.clone()).spec(
            (public_table.ready(), internet_gateway.ready()),
            |(table, gateway)| RouteSpec {
                route_table_id: table.route_table_id,
                destination_cidr_block: "0.0.0.0/0".into(),
                gateway_id: Some(gateway.internet_gateway_id),
                nat_gateway_id: None,
            },
        ),
    )?;
    // The public subnets are dual stack: IPv6 clients reach the load balancer through the
    // internet gateway, which routes IPv6 itself (no NAT for IPv6). EC2 takes `::/0` as
    // `DestinationIpv6CidrBlock` (API_CreateRoute). The table waits for the VPC to be ready,
    // IPv6 block included (on an IPv4-only VPC being upgraded, its update associates it first).
    g.add(
        Node::new("network/route/public-default-ipv6", k.route.clone()).spec(
            (public_table.ready(), internet_gateway.ready()),
            |(table, gateway)| RouteSpec {
                route_table_id: table.route_table_id,
                destination_cidr_block: "::/0".into(),
                gateway_id: Some(gateway.internet_gateway_id),
                nat_gateway_id: None,
            },
        ),
    )?;
    let nat = nat_gateway(g, k, labels, &public_subnets[0], &internet_gateway)?;
    let private_egress: Ref<RouteOut> = g.insert(
        Node::new("network/route/private-default", k.route.clone()).spec(
            (private_table.ready(), nat.ready()),
            |(table, nat)| RouteSpec {
                route_table_id: table.route_table_id,
                destination_cidr_block: "0.0.0.0/0".into(),
                gateway_id: None,
                nat_gateway_id: Some(nat.nat_gateway_id),
            },
        ),
    )?;
    Ok(Routes {
        internet_gateway,
        private_table,
        private_egress,
    })
}

/// `network/route-table/<kind>`.
fn route_table(
    g: &mut Graph,
    k: &Ec2Kinds,
    labels: &Labels,
    vpc: &Ref<VpcOut>,
    kind: &str,
) -> Result<Ref<RouteTableOut>, GraphError> {
    let name = labels.of(kind);
    g.insert(
        Node::new(format!("network/route-table/{kind}"), k.route_table.clone()).spec(
            vpc.ready(),
            move |vpc| RouteTableSpec {
                vpc_id: vpc.vpc_id,
                name: name.clone(),
            },
        ),
    )
}

/// The NAT gateway in `subnet`, with its Elastic IP.
fn nat_gateway(
    g: &mut Graph,
    k: &Ec2Kinds,
    labels: &Labels,
    subnet: &Ref<SubnetOut>,
    internet_gateway: &Ref<InternetGatewayOut>,
) -> Result<Ref<NatGatewayOut>, GraphError> {
    let eip: Ref<ElasticIpOut> = g.insert(
        Node::new("network/elastic-ip", k.elastic_ip.clone()).fixed(&ElasticIpSpec {
            name: labels.of("nat-eip"),
        }),
    )?;
    let name = labels.of("nat");
    g.insert(
        Node::new("network/nat-gateway", k.nat_gateway.clone())
            .spec((subnet.ready(), eip.ready()), move |(subnet, eip)| {
                NatGatewaySpec {
                    subnet_id: subnet.subnet_id,
                    allocation_id: eip.allocation_id,
                    name: name.clone(),
                }
            })
            // A NAT gateway in a VPC without an attached internet gateway cannot reach anything.
            .ordered_after(internet_gateway, Until::Ready),
    )
}
