//! The named retry policies: which AWS errors are transient, for which operations, and for
//! how long. Each mirrors what terraform-provider-aws retries for the same call (cited per
//! policy); the mechanism is [`provision_core::retry::retry`].
//!
//! A call site names the policies that apply to it, for example
//! `retry(cx, &[&EC2_PROPAGATION], || ...)` around `CreateRoute` with a route table created a
//! moment ago. Policies never apply to reads that decide whether a resource exists: there a
//! `NotFound` means "gone", not "not propagated yet".

use std::time::Duration;

use provision_core::resource::ErrorClass;
use provision_core::wait::Backoff;

pub use provision_core::retry::{Match, Policy, TRANSIENT, retry};

use crate::timeouts::{self, Timeout};

/// Polls for propagation: short first, capped at a few seconds.
const PROPAGATION: Backoff = Backoff {
    first: Duration::ZERO,
    initial: Duration::from_millis(500),
    max: Duration::from_secs(5),
    factor: 1.5,
};

/// EC2 is eventually consistent: an id returned by a create may be unknown to the next call
/// for a while, which answers `Invalid<Thing>ID.NotFound` (AWS: "Eventual consistency in the
/// Amazon EC2 API", https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html).
/// terraform-provider-aws rides it out for `ec2PropagationTimeout`, 5 minutes
/// (internal/service/ec2/consts.go), on the same calls:
/// - `AttachInternetGateway`: `attachInternetGateway` retries `InvalidInternetGatewayID.NotFound`
///   (vpc_internet_gateway.go);
/// - `AssociateRouteTable`: `resourceRouteTableAssociationCreate` retries
///   `InvalidRouteTableID.NotFound` (vpc_route_table_association.go);
/// - `CreateRoute`: `resourceRouteCreate` retries for the create timeout and reads the new
///   route with `RetryWhenNewResourceNotFound` (vpc_route.go);
/// - `ModifyVpcAttribute`, `ModifySubnetAttribute`, `AuthorizeSecurityGroupIngress`/`Egress`:
///   `resourceVPCCreate`, `resourceSubnetCreate` and `resourceSecurityGroupCreate` first wait
///   out the new id's `NotFound` (`waitVPCCreated`, `waitSubnetAvailable`,
///   `waitSecurityGroupCreated`), then modify (vpc_.go, vpc_subnet.go, vpc_security_group.go);
///   provision does not wait, so it retries the modify itself;
/// - `CreateTags`: `createTags` retries every `.NotFound` (tags.go);
/// - creates that name a parent created a moment ago (a subnet, route table or security group
///   in a new VPC, a NAT gateway in a new subnet with a new address, an endpoint in new
///   subnets): terraform waits for the parent first (the waiters above); provision retries the
///   create, which is safe because a `NotFound` answer created nothing.
///
/// `NatGatewayNotFound` is EC2's one `NotFound` code without the dot (internal/service/ec2/errors.go),
/// for `CreateRoute` through a NAT gateway created a moment ago.
pub const EC2_PROPAGATION: Policy = Policy {
    name: "ec2-propagation",
    why: "EC2 has not propagated a new id yet",
    operations: &[
        "ec2:ModifyVpcAttribute",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:AttachInternetGateway",
        "ec2:ModifySubnetAttribute",
        "ec2:CreateRoute",
        "ec2:ReplaceRoute",
        "ec2:AssociateRouteTable",
        "ec2:CreateNatGateway",
        "ec2:CreateVpcEndpoint",
        "ec2:ModifyVpcEndpoint",
        "ec2:CreateSubnet",
        "ec2:CreateRouteTable",
        "ec2:CreateSecurityGroup",
        "ec2:CreateTags",
        "ec2:AssociateVpcCidrBlock",
        "ec2:AssociateSubnetCidrBlock",
    ],
    matches: &[
        Match::CodeSuffix(".NotFound"),
        Match::Code("NatGatewayNotFound"),
    ],
    timeout: timeouts::EC2_PROPAGATION,
    backoff: PROPAGATION,
};

/// A fresh account has no ECS service-linked role until ECS creates it on first use, and the
/// first `CreateCluster`/`CreateService` can fail while it propagates: `InvalidParameterException`
/// "Unable to assume the service linked role. Please verify that the ECS service linked role
/// exists." terraform-provider-aws retries exactly this message in `retryClusterCreate`
/// (internal/service/ecs/cluster.go, for `propagationTimeout`, 2 minutes) and in
/// `retryServiceCreate` (internal/service/ecs/service.go, for `propagationTimeout +
/// serviceCreateTimeout`, 4 minutes); the deadline is the longer one.
pub const ECS_SERVICE_LINKED_ROLE: Policy = Policy {
    name: "service-linked-role",
    why: "the account's ECS service-linked role is still being created",
    operations: &["ecs:CreateCluster", "ecs:CreateService"],
    matches: &[Match::Message {
        code: Some("InvalidParameterException"),
        contains: "Unable to assume the service linked role",
    }],
    timeout: timeouts::SERVICE_LINKED_ROLE,
    backoff: PROPAGATION,
};

/// What a new ECS service names but ECS cannot see yet. terraform-provider-aws's
/// `retryServiceCreate` (internal/service/ecs/service.go) retries, for 4 minutes:
/// `ClusterNotFoundException` (a cluster created moments ago), `InvalidParameterException`
/// "The target group with targetGroupArn ... does not have an associated load balancer." (a
/// target group just put behind a listener: ELB has not told ECS yet), and
/// `InvalidParameterException` "Unable to assume role and validate the specified
/// targetGroupArn. Please verify that the ECS service role being passed has the proper
/// permissions." (IAM propagation). A change of target group on `UpdateService` meets the same
/// delay, so the policy covers that call too.
pub const ECS_SERVICE_DEPENDENCIES: Policy = Policy {
    name: "ecs-service-dependencies",
    why: "ECS cannot see the new cluster, target group or role yet",
    operations: &["ecs:CreateService", "ecs:UpdateService"],
    matches: &[
        Match::Code("ClusterNotFoundException"),
        Match::Message {
            code: Some("InvalidParameterException"),
            contains: "does not have an associated load balancer",
        },
        Match::Message {
            code: Some("InvalidParameterException"),
            contains: "verify that the ECS service role being passed has the proper permissions",
        },
    ],
    timeout: timeouts::ECS_SERVICE_DEPENDENCIES,
    backoff: PROPAGATION,
};

/// A new IAM role (or a new policy on it) is not usable at once (AWS: "Changes that I make are
/// not always immediately visible",
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
/// terraform-provider-aws's `iamPropagationTimeout` is 2 minutes (internal/service/iam/consts.go).
/// - SageMaker `CreateModel`: `resourceModelCreate` (internal/service/sagemaker/model.go)
///   retries any `ValidationException` for 2 minutes; provision retries only the two messages
///   that mean propagation: "Could not assume role ..." and, with model data, "Could not access
///   model data at s3://... Please ensure that the role ... exists".
/// - IAM itself: a role created a moment ago can be unknown to `PutRolePolicy` and
///   `AttachRolePolicy` (`NoSuchEntity` "The role with name ... cannot be found."); terraform's role policy create waits out the same
///   with `RetryWhenNotFound` for `propagationTimeout` (internal/service/iam/role_policy.go).
pub const IAM_PROPAGATION: Policy = Policy {
    name: "iam-propagation",
    why: "a new IAM role is not usable by the service yet",
    operations: &[
        "sagemaker:CreateModel",
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
    ],
    matches: &[
        Match::Message {
            code: Some("ValidationException"),
            contains: "Could not assume role",
        },
        Match::Message {
            code: Some("ValidationException"),
            contains: "Could not access model data",
        },
        // Only the role: "The role with name r cannot be found." A managed policy that does not
        // exist ("Policy arn:... does not exist or is not attachable.") is the user's mistake.
        Match::Message {
            code: Some("NoSuchEntity"),
            contains: "The role with name",
        },
    ],
    timeout: timeouts::IAM_PROPAGATION,
    backoff: PROPAGATION,
};

/// Lambda's words for a role IAM has not propagated yet. terraform-provider-aws's
/// `retryFunctionOp` (internal/service/lambda/function.go) retries both messages on
/// `CreateFunction` and `UpdateFunctionConfiguration` for `lambdaPropagationTimeout`, 5 minutes
/// (internal/service/lambda/consts.go): "The role defined for the function cannot be assumed by
/// Lambda." and "The provided execution role does not have permissions to call ...".
pub const LAMBDA_ROLE_PROPAGATION: Policy = Policy {
    name: "lambda-role-propagation",
    why: "Lambda cannot use the new IAM role yet",
    operations: &[
        "lambda:CreateFunction",
        "lambda:UpdateFunctionConfiguration",
    ],
    matches: &[
        Match::Message {
            code: Some("InvalidParameterValueException"),
            contains: "The role defined for the function cannot be assumed by Lambda",
        },
        Match::Message {
            code: Some("InvalidParameterValueException"),
            contains: "The provided execution role does not have permissions",
        },
    ],
    timeout: timeouts::LAMBDA_ROLE_PROPAGATION,
    backoff: PROPAGATION,
};

/// A new SageMaker endpoint fails (status `Failed`, after minutes of `Creating`) when the
/// execution role of its model is new: "The execution role ARN \"...\" is invalid. Please
/// ensure that the role exists and that its trust relationship policy allows the action
/// \"sts:AssumeRole\" for the service principal \"sagemaker.amazonaws.com\"". SageMaker
/// allows nothing but a delete then; terraform-provider-aws's `resourceEndpointCreate`
/// (internal/service/sagemaker/endpoint.go) deletes the endpoint and creates it again within
/// `propagationTimeout` (2 minutes, counted from the first failure, so one more try). The
/// failure is an endpoint status, not an API error: the endpoint kind reports it as the
/// failure of its `CreateEndpoint`.
pub const SAGEMAKER_ENDPOINT_ROLE: Policy = Policy {
    name: "sagemaker-endpoint-role",
    why: "the endpoint failed because SageMaker could not use its new role yet; creating it again",
    operations: &["sagemaker:CreateEndpoint"],
    matches: &[Match::Message {
        code: None,
        contains: "Please ensure that the role exists and that its trust relationship policy allows the action",
    }],
    timeout: timeouts::IAM_PROPAGATION,
    backoff: PROPAGATION,
};

/// An HTTPS listener given a certificate issued moments ago can be refused with
/// `CertificateNotFound` until ACM's change reaches ELB. terraform-provider-aws retries it on
/// `CreateListener` (`retryListenerCreate`, internal/service/elbv2/listener.go, for the create
/// timeout, 5 minutes), on `ModifyListener` (`resourceListenerUpdate`, the update timeout, 5
/// minutes) and on `AddListenerCertificates` (listener_certificate.go, 1 minute).
pub const CERTIFICATE_PROPAGATION: Policy = Policy {
    name: "certificate-propagation",
    why: "the new certificate has not reached the load balancer service yet",
    operations: &[
        "elasticloadbalancing:CreateListener",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:AddListenerCertificates",
    ],
    matches: &[Match::Code("CertificateNotFound")],
    timeout: timeouts::CERTIFICATE_PROPAGATION,
    backoff: PROPAGATION,
};

/// Something still uses the EC2 resource being deleted or detached: network interfaces being
/// released, a NAT gateway still deleting, a rule of another group. terraform-provider-aws
/// retries the same codes for each resource's delete timeout: `DependencyViolation` on
/// `DeleteVpc` (`resourceVPCDelete`, vpc_.go), `DeleteInternetGateway` and
/// `DetachInternetGateway` (vpc_internet_gateway.go), `DeleteSubnet` (vpc_subnet.go) and
/// `DeleteRouteTable` (vpc_route_table.go); `DependencyViolation` and `InvalidGroup.InUse` on
/// `DeleteSecurityGroup` (`resourceSecurityGroupDelete`, vpc_security_group.go). An Elastic IP
/// a deleting NAT gateway still holds answers `InvalidIPAddress.InUse` to `ReleaseAddress`.
/// The deadline is the resource's own (`in_use`); this constant carries the longest.
pub const EC2_IN_USE: Policy = Policy {
    name: "ec2-in-use",
    why: "something still uses it",
    operations: &[
        "ec2:DeleteVpc",
        "ec2:DeleteSubnet",
        "ec2:DeleteSecurityGroup",
        "ec2:DetachInternetGateway",
        "ec2:DeleteInternetGateway",
        "ec2:DeleteRouteTable",
        "ec2:ReleaseAddress",
    ],
    matches: &[
        Match::Code("DependencyViolation"),
        Match::Code("InvalidGroup.InUse"),
        Match::Code("InvalidIPAddress.InUse"),
    ],
    timeout: timeouts::VPC_DELETE,
    backoff: Backoff {
        first: Duration::ZERO,
        initial: Duration::from_secs(2),
        max: Duration::from_secs(15),
        factor: 1.5,
    },
};

/// [`EC2_IN_USE`] with the deadline of one resource's delete (`subnet-delete`, ...).
pub fn in_use(timeout: Timeout) -> Policy {
    Policy {
        timeout,
        ..EC2_IN_USE
    }
}

/// An ECS cluster cannot be deleted while the tasks of a service deleted a moment ago are still
/// stopping. terraform-provider-aws's `resourceClusterDelete` (internal/service/ecs/cluster.go)
/// retries `ClusterContainsContainerInstancesException`, `ClusterContainsServicesException`,
/// `ClusterContainsTasksException` and `UpdateInProgressException` for `clusterDeleteTimeout`,
/// 10 minutes.
pub const ECS_CLUSTER_IN_USE: Policy = Policy {
    name: "ecs-cluster-in-use",
    why: "the cluster's services and tasks are still stopping",
    operations: &["ecs:DeleteCluster"],
    matches: &[
        Match::Code("ClusterContainsContainerInstancesException"),
        Match::Code("ClusterContainsServicesException"),
        Match::Code("ClusterContainsTasksException"),
        Match::Code("UpdateInProgressException"),
    ],
    timeout: timeouts::CLUSTER_DELETE,
    backoff: Backoff {
        first: Duration::ZERO,
        initial: Duration::from_millis(500),
        max: Duration::from_secs(10),
        factor: 1.6,
    },
};

/// A target group cannot be deleted while a listener or rule deleted a moment ago still
/// forwards to it: `ResourceInUse` "Target group '...' is currently in use by a listener or a
/// rule". terraform-provider-aws's `resourceTargetGroupDelete`
/// (internal/service/elbv2/target_group.go) retries it for 2 minutes; provision allows the
/// `target-group-delete` deadline.
pub const TARGET_GROUP_IN_USE: Policy = Policy {
    name: "target-group-in-use",
    why: "a listener or rule deleted a moment ago still uses the target group",
    operations: &["elasticloadbalancing:DeleteTargetGroup"],
    matches: &[Match::Code("ResourceInUse")],
    timeout: timeouts::TARGET_GROUP_DELETE,
    backoff: PROPAGATION,
};

/// A certificate cannot be deleted while a load balancer listener still holds it, and ELB
/// lets go of it a while after the listener is deleted: `ResourceInUseException`.
/// terraform-provider-aws's `resourceCertificateDelete` (internal/service/acm/certificate.go)
/// retries it for `certificateCrossServicePropagationTimeout`, 20 minutes.
pub const CERTIFICATE_IN_USE: Policy = Policy {
    name: "certificate-in-use",
    why: "the load balancer has not released the certificate yet",
    operations: &["acm:DeleteCertificate"],
    matches: &[Match::Code("ResourceInUseException")],
    timeout: timeouts::CERTIFICATE_DELETE,
    backoff: Backoff {
        first: Duration::ZERO,
        initial: Duration::from_secs(2),
        max: Duration::from_secs(15),
        factor: 1.5,
    },
};

/// Another change to the same resource is in progress: Lambda's `ResourceConflictException`
/// ("The operation cannot be performed at this time. An update is in progress for resource"),
/// IAM's `ConcurrentModification`. terraform-provider-aws retries the first in
/// `retryFunctionOp` (internal/service/lambda/function.go, 5 minutes) and the second in
/// `attachPolicyToRole` (internal/service/iam/role_policy_attachment.go, 2 minutes).
pub const CONFLICT: Policy = Policy {
    name: "conflict",
    why: "another change to the same resource is in progress",
    operations: &[],
    matches: &[Match::Class(ErrorClass::Conflict)],
    timeout: timeouts::CONFLICT,
    backoff: Backoff {
        first: Duration::ZERO,
        initial: Duration::from_secs(1),
        max: Duration::from_secs(10),
        factor: 1.6,
    },
};

/// An ECR layer upload that cannot go on: a part or a completion whose reply was lost is
/// retried by the SDK, and ECR refuses the repeat (`InvalidLayerPartException`: the part is
/// there already; `UploadNotFoundException`: the upload is closed). The upload starts over
/// (after checking whether the layer is stored by then). Not an AWS delay but the protocol's
/// answer to a repeat (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_UploadLayerPart.html).
pub const ECR_UPLOAD_RESTART: Policy = Policy {
    name: "layer-upload-restart",
    why: "the layer upload broke off and starts again",
    operations: &["ecr:UploadLayerPart", "ecr:CompleteLayerUpload"],
    matches: &[
        Match::Code("InvalidLayerPartException"),
        Match::Code("UploadNotFoundException"),
    ],
    timeout: timeouts::LAYER_UPLOAD,
    backoff: Backoff {
        first: Duration::ZERO,
        initial: Duration::from_secs(1),
        max: Duration::from_secs(10),
        factor: 2.0,
    },
};

/// Every named policy, for the README's list and the tests. Route 53's
/// `PriorRequestNotComplete` and every service's throttling codes are [`TRANSIENT`]: the SDK's
/// standard retry classifies them as throttling (smithy's `THROTTLING_ERROR_CODES`) and
/// retries them first; `TRANSIENT` takes over when they outlast it.
pub const ALL: &[&Policy] = &[
    &TRANSIENT,
    &EC2_PROPAGATION,
    &ECS_SERVICE_LINKED_ROLE,
    &ECS_SERVICE_DEPENDENCIES,
    &IAM_PROPAGATION,
    &LAMBDA_ROLE_PROPAGATION,
    &SAGEMAKER_ENDPOINT_ROLE,
    &CERTIFICATE_PROPAGATION,
    &CERTIFICATE_IN_USE,
    &EC2_IN_USE,
    &ECS_CLUSTER_IN_USE,
    &TARGET_GROUP_IN_USE,
    &CONFLICT,
    &ECR_UPLOAD_RESTART,
];

#[cfg(test)]
mod tests {
    use super::*;
    use provision_core::resource::ResourceError;

    fn aws_error(operation: &str, code: &str, message: &str) -> ResourceError {
        ResourceError::fatal(format!("{operation}: {code}: {message}"))
            .with_code(code)
            .with_operation(operation)
    }

    #[test]
    fn every_policy_deadline_is_a_timeout_key() {
        for p in ALL {
            assert!(
                timeouts::find(p.timeout.key).is_some(),
                "{} uses {} which --timeout does not know",
                p.name,
                p.timeout.key
            );
        }
    }

    /// For each policy, errors in AWS's own words that it must retry and errors it must not
    /// (another code, another message, or the same code on a read where it means "gone").
    #[test]
    fn each_policy_matches_what_aws_says_and_nothing_else() {
        let cases: &[(&Policy, ResourceError, bool)] = &[
            (
                &EC2_PROPAGATION,
                aws_error(
                    "ec2:CreateRoute",
                    "InvalidRouteTableID.NotFound",
                    "The routeTable ID 'rtb-1' does not exist",
                ),
                true,
            ),
            (
                &EC2_PROPAGATION,
                aws_error(
                    "ec2:CreateRoute",
                    "NatGatewayNotFound",
                    "The Nat Gateway nat-1 was not found",
                ),
                true,
            ),
            (
                &EC2_PROPAGATION,
                aws_error(
                    "ec2:ModifyVpcAttribute",
                    "InvalidVpcID.NotFound",
                    "The vpc ID 'vpc-1' does not exist",
                ),
                true,
            ),
            // A describe's NotFound means gone, never "wait".
            (
                &EC2_PROPAGATION,
                aws_error(
                    "ec2:DescribeRouteTables",
                    "InvalidRouteTableID.NotFound",
                    "gone",
                ),
                false,
            ),
            (
                &EC2_PROPAGATION,
                aws_error(
                    "ec2:AuthorizeSecurityGroupIngress",
                    "InvalidParameterValue",
                    "Invalid IPv6 CIDR",
                ),
                false,
            ),
            (
                &ECS_SERVICE_LINKED_ROLE,
                aws_error(
                    "ecs:CreateCluster",
                    "InvalidParameterException",
                    "Unable to assume the service linked role. Please verify that the ECS service linked role exists.",
                ),
                true,
            ),
            (
                &ECS_SERVICE_LINKED_ROLE,
                aws_error(
                    "ecs:CreateCluster",
                    "InvalidParameterException",
                    "Cluster name is invalid",
                ),
                false,
            ),
            (
                &ECS_SERVICE_DEPENDENCIES,
                aws_error(
                    "ecs:CreateService",
                    "InvalidParameterException",
                    "The target group with targetGroupArn arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/t/1 does not have an associated load balancer.",
                ),
                true,
            ),
            (
                &ECS_SERVICE_DEPENDENCIES,
                aws_error("ecs:CreateService", "ClusterNotFoundException", "Cluster not found."),
                true,
            ),
            (
                &ECS_SERVICE_DEPENDENCIES,
                aws_error("ecs:DescribeServices", "ClusterNotFoundException", "Cluster not found."),
                false,
            ),
            (
                &ECS_SERVICE_DEPENDENCIES,
                aws_error(
                    "ecs:CreateService",
                    "InvalidParameterException",
                    "Task definition does not support launch_type FARGATE.",
                ),
                false,
            ),
            (
                &IAM_PROPAGATION,
                aws_error(
                    "sagemaker:CreateModel",
                    "ValidationException",
                    "Could not access model data at s3://bucket/model.tar.gz. Please ensure that the role exists",
                ),
                true,
            ),
            (
                &IAM_PROPAGATION,
                aws_error(
                    "sagemaker:CreateModel",
                    "ValidationException",
                    "Could not assume role arn:aws:iam::1:role/r. Please ensure that the role exists and allows principal 'sagemaker.amazonaws.com' to assume the role.",
                ),
                true,
            ),
            (
                &IAM_PROPAGATION,
                aws_error(
                    "iam:PutRolePolicy",
                    "NoSuchEntity",
                    "The role with name r cannot be found.",
                ),
                true,
            ),
            (
                &IAM_PROPAGATION,
                aws_error(
                    "sagemaker:CreateModel",
                    "ValidationException",
                    "1 validation error detected",
                ),
                false,
            ),
            (
                &IAM_PROPAGATION,
                aws_error(
                    "iam:AttachRolePolicy",
                    "NoSuchEntity",
                    "Policy arn:aws:iam::aws:policy/Nope does not exist or is not attachable.",
                ),
                false,
            ),
            // GetRole's NoSuchEntity means the role is gone.
            (
                &IAM_PROPAGATION,
                aws_error("iam:GetRole", "NoSuchEntity", "The role with name r cannot be found."),
                false,
            ),
            (
                &LAMBDA_ROLE_PROPAGATION,
                aws_error(
                    "lambda:CreateFunction",
                    "InvalidParameterValueException",
                    "The role defined for the function cannot be assumed by Lambda.",
                ),
                true,
            ),
            (
                &LAMBDA_ROLE_PROPAGATION,
                aws_error(
                    "lambda:UpdateFunctionConfiguration",
                    "InvalidParameterValueException",
                    "The provided execution role does not have permissions to call CreateNetworkInterface on EC2",
                ),
                true,
            ),
            (
                &LAMBDA_ROLE_PROPAGATION,
                aws_error(
                    "lambda:CreateFunction",
                    "InvalidParameterValueException",
                    "Unsupported architecture",
                ),
                false,
            ),
            (
                &SAGEMAKER_ENDPOINT_ROLE,
                ResourceError::fatal(
                    "endpoint e failed: The execution role ARN \"arn:aws:iam::1:role/r\" is invalid. Please ensure that the role exists and that its trust relationship policy allows the action \"sts:AssumeRole\" for the service principal \"sagemaker.amazonaws.com\".",
                )
                .with_operation("sagemaker:CreateEndpoint"),
                true,
            ),
            (
                &SAGEMAKER_ENDPOINT_ROLE,
                ResourceError::fatal(
                    "endpoint e failed: The primary container for production variant AllTraffic did not pass the ping health check.",
                )
                .with_operation("sagemaker:CreateEndpoint"),
                false,
            ),
            (
                &CERTIFICATE_PROPAGATION,
                aws_error(
                    "elasticloadbalancing:CreateListener",
                    "CertificateNotFound",
                    "Certificate 'arn:...' not found",
                ),
                true,
            ),
            (
                &CERTIFICATE_PROPAGATION,
                aws_error(
                    "elasticloadbalancing:CreateListener",
                    "DuplicateListener",
                    "A listener already exists on this port for this load balancer",
                ),
                false,
            ),
            (
                &EC2_IN_USE,
                aws_error(
                    "ec2:DeleteSubnet",
                    "DependencyViolation",
                    "The subnet 'subnet-1' has dependencies and cannot be deleted.",
                ),
                true,
            ),
            (
                &EC2_IN_USE,
                aws_error(
                    "ec2:DeleteSecurityGroup",
                    "InvalidGroup.InUse",
                    "Group sg-1 is used by security groups in other accounts.",
                ),
                true,
            ),
            (
                &EC2_IN_USE,
                aws_error(
                    "ec2:CreateSubnet",
                    "DependencyViolation",
                    "no",
                ),
                false,
            ),
            (
                &ECS_CLUSTER_IN_USE,
                aws_error(
                    "ecs:DeleteCluster",
                    "ClusterContainsTasksException",
                    "The Cluster cannot be deleted while Tasks are active.",
                ),
                true,
            ),
            (
                &ECS_CLUSTER_IN_USE,
                aws_error(
                    "ecs:DeleteCluster",
                    "ClusterNotFoundException",
                    "Cluster not found.",
                ),
                false,
            ),
            (
                &TARGET_GROUP_IN_USE,
                aws_error(
                    "elasticloadbalancing:DeleteTargetGroup",
                    "ResourceInUse",
                    "Target group 'arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/t/1' is currently in use by a listener or a rule",
                ),
                true,
            ),
            (
                &TARGET_GROUP_IN_USE,
                aws_error(
                    "elasticloadbalancing:CreateTargetGroup",
                    "ResourceInUse",
                    "in use",
                ),
                false,
            ),
            (
                &CERTIFICATE_IN_USE,
                aws_error(
                    "acm:DeleteCertificate",
                    "ResourceInUseException",
                    "Certificate arn:aws:acm:us-east-1:1:certificate/c in use by arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/lb/1",
                ),
                true,
            ),
            (
                &CERTIFICATE_IN_USE,
                aws_error(
                    "acm:RequestCertificate",
                    "ResourceInUseException",
                    "in use",
                ),
                false,
            ),
            (
                &CONFLICT,
                ResourceError::new(
                    ErrorClass::Conflict,
                    "lambda:UpdateFunctionCode: ResourceConflictException: An update is in progress",
                )
                .with_code("ResourceConflictException")
                .with_operation("lambda:UpdateFunctionCode"),
                true,
            ),
            (
                &CONFLICT,
                aws_error("lambda:UpdateFunctionCode", "InvalidParameterValueException", "no"),
                false,
            ),
            (
                &ECR_UPLOAD_RESTART,
                aws_error(
                    "ecr:UploadLayerPart",
                    "InvalidLayerPartException",
                    "The last byte received was 5242879",
                ),
                true,
            ),
            (
                &ECR_UPLOAD_RESTART,
                aws_error("ecr:PutImage", "LayersNotFoundException", "missing"),
                false,
            ),
        ];
        for (policy, e, want) in cases {
            assert_eq!(policy.applies(e), *want, "{} on {}", policy.name, e.message);
        }
        // Every policy is exercised both ways above.
        for p in ALL.iter().filter(|p| p.name != TRANSIENT.name) {
            for want in [true, false] {
                assert!(
                    cases.iter().any(|(q, _, w)| q.name == p.name && *w == want),
                    "{} has no case where it {} retry",
                    p.name,
                    if want { "does" } else { "does not" }
                );
            }
        }
    }

    #[test]
    fn policy_names_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for p in ALL {
            assert!(seen.insert(p.name), "{} twice", p.name);
        }
    }
}
