//! VPC endpoints: S3 as a gateway on the private route table, ECR's `api` and `dkr` as
//! interfaces in the private subnets behind a security group that admits HTTPS from the VPC.

use std::collections::BTreeSet;

use provision_core::graph::{Graph, GraphError};
use provision_core::input::Ref;
use provision_core::names;
use provision_core::resource::Node;
use provision_ec2::{
    Ec2Kinds, IngressRule, RouteTableOut, SecurityGroupOut, SecurityGroupSpec, SubnetOut,
    VpcEndpointOut, VpcEndpointSpec, VpcOut,
};

use super::Labels;
use crate::Project;

/// The interface endpoints' security group's description (in EC2's character set for group
/// descriptions; see `web::LOAD_BALANCER_GROUP_DESCRIPTION`).
pub const VPC_ENDPOINTS_GROUP_DESCRIPTION: &str = "HTTPS from the VPC to its interface endpoints";

/// `com.amazonaws.<region>.<service>`; China's regions prefix some services with `cn.`.
pub fn endpoint_service(region: &str, service: &str) -> String {
    if region.starts_with("cn-") && service != "s3" {
        format!("cn.com.amazonaws.{region}.{service}")
    } else {
        format!("com.amazonaws.{region}.{service}")
    }
}

pub(super) fn add(
    g: &mut Graph,
    project: &Project,
    k: &Ec2Kinds,
    labels: &Labels,
    vpc: &Ref<VpcOut>,
    private_table: &Ref<RouteTableOut>,
    private_subnets: &[Ref<SubnetOut>],
) -> Result<Vec<Ref<VpcEndpointOut>>, GraphError> {
    let region = &project.config.region;
    // Interface endpoints answer on 443 to anything in the VPC.
    let group_name = names::fit(
        &project.stack_name(),
        "vpc-endpoints",
        names::limits::SECURITY_GROUP,
    );
    let group: Ref<SecurityGroupOut> = g.insert(
        Node::new(
            "network/security-group/vpc-endpoints",
            k.security_group.clone(),
        )
        .spec(vpc.ready(), move |vpc| SecurityGroupSpec {
            vpc_id: vpc.vpc_id,
            group_name: group_name.clone(),
            description: VPC_ENDPOINTS_GROUP_DESCRIPTION.into(),
            ingress: BTreeSet::from([IngressRule::tcp_from_cidr(443, &vpc.cidr_block)]),
        }),
    )?;

    let service = endpoint_service(region, "s3");
    let name = labels.of("s3");
    let mut endpoints = vec![g.insert(
        Node::new("network/vpc-endpoint/s3", k.vpc_endpoint.clone()).spec(
            (vpc.ready(), private_table.ready()),
            move |(vpc, table)| VpcEndpointSpec {
                vpc_id: vpc.vpc_id,
                service_name: service.clone(),
                endpoint_type: "Gateway".into(),
                route_table_ids: BTreeSet::from([table.route_table_id]),
                subnet_ids: BTreeSet::new(),
                security_group_ids: BTreeSet::new(),
                private_dns_enabled: false,
                name: name.clone(),
            },
        ),
    )?];

    for (id, svc) in [("ecr-api", "ecr.api"), ("ecr-dkr", "ecr.dkr")] {
        let service = endpoint_service(region, svc);
        let name = labels.of(id);
        let subnets: Vec<_> = private_subnets.iter().map(Ref::ready).collect();
        endpoints.push(g.insert(
            Node::new(format!("network/vpc-endpoint/{id}"), k.vpc_endpoint.clone()).spec(
                (vpc.ready(), group.ready(), subnets),
                move |(vpc, group, subnets)| VpcEndpointSpec {
                    vpc_id: vpc.vpc_id,
                    service_name: service.clone(),
                    endpoint_type: "Interface".into(),
                    route_table_ids: BTreeSet::new(),
                    subnet_ids: subnets.into_iter().map(|s| s.subnet_id).collect(),
                    security_group_ids: BTreeSet::from([group.group_id]),
                    private_dns_enabled: true,
                    name: name.clone(),
                },
            ),
        )?);
    }
    Ok(endpoints)
}
