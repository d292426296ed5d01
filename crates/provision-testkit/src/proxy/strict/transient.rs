//! The transient errors real AWS gives and the emulator never does, each injected once per
//! resource: the first matching call for a given id or name gets the error, in the
//! service's own shape and words, and the retry goes through. Each is one AWS documents or
//! that terraform-provider-aws retries for the same operation:
//!
//! - EC2 eventual consistency: "a resource that you just created might not be visible to the
//!   next command yet" (<https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html>):
//!   `InvalidVpcID.NotFound` on `ModifyVpcAttribute`, `InvalidGroup.NotFound` on
//!   `AuthorizeSecurityGroupIngress`/`Egress`, `InvalidInternetGatewayID.NotFound` on
//!   `AttachInternetGateway` (terraform's `attachInternetGateway` retries it for
//!   `ec2PropagationTimeout`), `InvalidSubnetID.NotFound` on `ModifySubnetAttribute`,
//!   `InvalidRouteTableID.NotFound` on `CreateRoute` and `AssociateRouteTable` (terraform's
//!   route table association retries it), and the `.NotFound` of any new id on `CreateTags`
//!   (terraform's `createTags` retries every `.NotFound`).
//! - ECS on a fresh account: `InvalidParameterException` "Unable to assume the service linked
//!   role. Please verify that the ECS service linked role exists." on the first `CreateCluster`
//!   and the first `CreateService` (terraform's `retryClusterCreate`, `retryServiceCreate`);
//!   `CreateService` also gets `ClusterNotFoundException` for a cluster created moments ago
//!   and "The target group with targetGroupArn ... does not have an associated load
//!   balancer." for a target group just put behind a listener (both retried by
//!   `retryServiceCreate`).
//! - IAM propagation: Lambda `CreateFunction`/`UpdateFunctionConfiguration` "The role defined
//!   for the function cannot be assumed by Lambda." (terraform's `retryFunctionOp`); SageMaker
//!   `CreateModel` "Could not assume role ..." and, for a model with model data, "Could not
//!   access model data at ..." (`ValidationException`).
//! - ELBv2 `CreateListener` (and `ModifyListener`, `AddListenerCertificates`) with a
//!   certificate issued moments ago: `CertificateNotFound` (terraform's listener create
//!   retries it).
//!
//! Not injected, and why: ECS `RegisterTaskDefinition` does not check that its roles can be
//! assumed (a task that cannot assume them fails later, as a service event, not as an API
//! error); Lambda's "The provided execution role does not have permissions to call
//! CreateNetworkInterface on EC2" applies only to functions in a VPC, which provision does not
//! make.

use std::fmt;

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::super::wire::AwsError;
use super::Memory;
use super::request::Request;

/// One kind of transient error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Injection {
    /// `ModifyVpcAttribute` on a new VPC: `InvalidVpcID.NotFound`.
    Ec2VpcNotFound,
    /// `AuthorizeSecurityGroupIngress`/`Egress` on a new group: `InvalidGroup.NotFound`.
    Ec2SecurityGroupNotFound,
    /// `AttachInternetGateway` of a new gateway: `InvalidInternetGatewayID.NotFound`.
    Ec2InternetGatewayNotFound,
    /// `ModifySubnetAttribute` on a new subnet: `InvalidSubnetID.NotFound`.
    Ec2SubnetNotFound,
    /// `CreateRoute` or `AssociateRouteTable` on a new route table:
    /// `InvalidRouteTableID.NotFound`.
    Ec2RouteTableNotFound,
    /// `CreateTags` on a new resource: its `.NotFound`.
    Ec2TagsNotFound,
    /// The first `CreateCluster` and the first `CreateService`: the ECS service-linked role.
    EcsServiceLinkedRole,
    /// `CreateService` in a new cluster: `ClusterNotFoundException`.
    EcsClusterNotFound,
    /// `CreateService` behind a new target group: no associated load balancer yet.
    EcsTargetGroupNotAttached,
    /// Lambda with a new role: it cannot be assumed yet.
    LambdaRole,
    /// SageMaker `CreateModel` with a new role: it cannot be assumed yet.
    SageMakerRole,
    /// SageMaker `CreateModel` with model data and a new role: the data cannot be read yet.
    SageMakerModelData,
    /// An HTTPS listener given a new certificate: `CertificateNotFound`.
    ListenerCertificateNotFound,
}

impl Injection {
    pub const ALL: [Injection; 13] = [
        Injection::Ec2VpcNotFound,
        Injection::Ec2SecurityGroupNotFound,
        Injection::Ec2InternetGatewayNotFound,
        Injection::Ec2SubnetNotFound,
        Injection::Ec2RouteTableNotFound,
        Injection::Ec2TagsNotFound,
        Injection::EcsServiceLinkedRole,
        Injection::EcsClusterNotFound,
        Injection::EcsTargetGroupNotAttached,
        Injection::LambdaRole,
        Injection::SageMakerRole,
        Injection::SageMakerModelData,
        Injection::ListenerCertificateNotFound,
    ];

    /// The name injections are counted under in [`Stats`](crate::proxy::Stats).
    pub fn name(self) -> &'static str {
        match self {
            Injection::Ec2VpcNotFound => "ec2_vpc_not_found",
            Injection::Ec2SecurityGroupNotFound => "ec2_security_group_not_found",
            Injection::Ec2InternetGatewayNotFound => "ec2_internet_gateway_not_found",
            Injection::Ec2SubnetNotFound => "ec2_subnet_not_found",
            Injection::Ec2RouteTableNotFound => "ec2_route_table_not_found",
            Injection::Ec2TagsNotFound => "ec2_tags_not_found",
            Injection::EcsServiceLinkedRole => "ecs_service_linked_role",
            Injection::EcsClusterNotFound => "ecs_cluster_not_found",
            Injection::EcsTargetGroupNotAttached => "ecs_target_group_not_attached",
            Injection::LambdaRole => "lambda_role",
            Injection::SageMakerRole => "sagemaker_role",
            Injection::SageMakerModelData => "sagemaker_model_data",
            Injection::ListenerCertificateNotFound => "listener_certificate_not_found",
        }
    }
}

impl fmt::Display for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn error(code: &'static str, message: String) -> AwsError {
    AwsError {
        status: StatusCode::BAD_REQUEST,
        code,
        message,
    }
}

/// EC2's `.NotFound` for an id, by its prefix, in EC2's words.
pub(crate) fn ec2_not_found(id: &str) -> AwsError {
    let (code, message) = match id.split('-').next().unwrap_or("") {
        "vpc" => (
            "InvalidVpcID.NotFound",
            format!("The vpc ID '{id}' does not exist"),
        ),
        "subnet" => (
            "InvalidSubnetID.NotFound",
            format!("The subnet ID '{id}' does not exist"),
        ),
        "sg" => (
            "InvalidGroup.NotFound",
            format!("The security group '{id}' does not exist"),
        ),
        "igw" => (
            "InvalidInternetGatewayID.NotFound",
            format!("The internetGateway ID '{id}' does not exist"),
        ),
        "rtb" => (
            "InvalidRouteTableID.NotFound",
            format!("The routeTable ID '{id}' does not exist"),
        ),
        "nat" => (
            "NatGatewayNotFound",
            format!("The Nat Gateway {id} was not found"),
        ),
        "eipalloc" => (
            "InvalidAllocationID.NotFound",
            format!("The allocation ID '{id}' does not exist"),
        ),
        "vpce" => (
            "InvalidVpcEndpointId.NotFound",
            format!("The Vpc Endpoint Id '{id}' does not exist"),
        ),
        _ => ("InvalidID", format!("The ID '{id}' is not valid")),
    };
    error(code, message)
}

/// Lambda's refusal of a role IAM has not propagated yet.
pub(crate) fn lambda_role_error() -> AwsError {
    error(
        "InvalidParameterValueException",
        "The role defined for the function cannot be assumed by Lambda.".into(),
    )
}

/// SageMaker's refusal of a role IAM has not propagated yet.
pub(crate) fn sagemaker_role_error(role: &str) -> AwsError {
    error(
        "ValidationException",
        format!(
            "Could not assume role {role}. Please ensure that the role exists and allows principal 'sagemaker.amazonaws.com' to assume the role."
        ),
    )
}

fn sagemaker_model_data_error(url: &str, role: &str) -> AwsError {
    error(
        "ValidationException",
        format!(
            "Could not access model data at {url}. Please ensure that the role \"{role}\" exists and that its trust relationship policy allows the action \"sts:AssumeRole\" for the service principal \"sagemaker.amazonaws.com\". Also ensure that the role has \"s3:GetObject\" permissions and that the object is located in us-east-1."
        ),
    )
}

/// The injection due for `req`, if any; it is spent as it is returned.
pub(super) fn due(memory: &mut Memory, req: &Request<'_>) -> Option<(Injection, AwsError)> {
    let param = |k: &str| req.param(k).map(str::to_string);
    match (req.signing_name(), req.operation()) {
        ("ec2", op) => {
            let (injection, ids): (Injection, Vec<String>) = match op {
                "ModifyVpcAttribute" => (
                    Injection::Ec2VpcNotFound,
                    param("VpcId").into_iter().collect(),
                ),
                "AuthorizeSecurityGroupIngress" | "AuthorizeSecurityGroupEgress" => (
                    Injection::Ec2SecurityGroupNotFound,
                    param("GroupId").into_iter().collect(),
                ),
                "AttachInternetGateway" => (
                    Injection::Ec2InternetGatewayNotFound,
                    param("InternetGatewayId").into_iter().collect(),
                ),
                "ModifySubnetAttribute" => (
                    Injection::Ec2SubnetNotFound,
                    param("SubnetId").into_iter().collect(),
                ),
                "CreateRoute" | "AssociateRouteTable" => (
                    Injection::Ec2RouteTableNotFound,
                    param("RouteTableId").into_iter().collect(),
                ),
                "CreateTags" => (
                    Injection::Ec2TagsNotFound,
                    req.params(|k| k.starts_with("ResourceId."))
                        .map(|(_, v)| v.to_string())
                        .collect(),
                ),
                _ => return None,
            };
            let id = ids.into_iter().find(|id| memory.fresh_ec2.contains(id))?;
            memory
                .spend(injection, &id)
                .then(|| (injection, ec2_not_found(&id)))
        }
        ("ecs", "CreateCluster") => memory
            .spend(Injection::EcsServiceLinkedRole, "CreateCluster")
            .then(|| (Injection::EcsServiceLinkedRole, ecs_service_linked_role())),
        ("ecs", "CreateService") => {
            if memory.spend(Injection::EcsServiceLinkedRole, "CreateService") {
                return Some((Injection::EcsServiceLinkedRole, ecs_service_linked_role()));
            }
            let cluster = req.str("cluster").unwrap_or("default");
            let cluster = cluster.rsplit('/').next().unwrap_or(cluster).to_string();
            if memory.fresh_clusters.contains(&cluster)
                && memory.spend(Injection::EcsClusterNotFound, &cluster)
            {
                return Some((
                    Injection::EcsClusterNotFound,
                    error("ClusterNotFoundException", "Cluster not found.".into()),
                ));
            }
            let target_groups: Vec<String> = req
                .at("/loadBalancers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|lb| lb.get("targetGroupArn").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            let arn = target_groups
                .into_iter()
                .find(|arn| memory.fresh_target_groups.contains(arn))?;
            memory.spend(Injection::EcsTargetGroupNotAttached, &arn).then(|| {
                (
                    Injection::EcsTargetGroupNotAttached,
                    error(
                        "InvalidParameterException",
                        format!("The target group with targetGroupArn {arn} does not have an associated load balancer."),
                    ),
                )
            })
        }
        ("lambda", "CreateFunction" | "UpdateFunctionConfiguration") => {
            let role = req.str("Role")?.to_string();
            (memory.fresh_roles.contains(&role) && memory.spend(Injection::LambdaRole, &role))
                .then(|| (Injection::LambdaRole, lambda_role_error()))
        }
        ("sagemaker", "CreateModel") => {
            let role = req.str("ExecutionRoleArn")?.to_string();
            if !memory.fresh_roles.contains(&role) {
                return None;
            }
            if memory.spend(Injection::SageMakerRole, &role) {
                return Some((Injection::SageMakerRole, sagemaker_role_error(&role)));
            }
            let url = req
                .at("/PrimaryContainer/ModelDataUrl")
                .or_else(|| req.at("/Containers/0/ModelDataUrl"))
                .and_then(Value::as_str)?
                .to_string();
            memory.spend(Injection::SageMakerModelData, &role).then(|| {
                (
                    Injection::SageMakerModelData,
                    sagemaker_model_data_error(&url, &role),
                )
            })
        }
        (
            "elasticloadbalancing",
            "CreateListener" | "ModifyListener" | "AddListenerCertificates",
        ) => {
            let arn = req
                .params(|k| k.starts_with("Certificates.member.") && k.ends_with(".CertificateArn"))
                .map(|(_, v)| v.to_string())
                .find(|arn| memory.fresh_certificates.contains(arn))?;
            memory
                .spend(Injection::ListenerCertificateNotFound, &arn)
                .then(|| {
                    (
                        Injection::ListenerCertificateNotFound,
                        error(
                            "CertificateNotFound",
                            format!("Certificate '{arn}' not found"),
                        ),
                    )
                })
        }
        _ => None,
    }
}

fn ecs_service_linked_role() -> AwsError {
    error(
        "InvalidParameterException",
        "Unable to assume the service linked role. Please verify that the ECS service linked role exists.".into(),
    )
}
