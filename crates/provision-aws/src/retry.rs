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

use crate::timeouts;

/// Polls for propagation: short first, capped at a few seconds.
const PROPAGATION: Backoff = Backoff {
    first: Duration::ZERO,
    initial: Duration::from_millis(500),
    max: Duration::from_secs(5),
    factor: 1.5,
};

/// EC2 is eventually consistent: an id returned by a create may be unknown to the next call
/// for a while, which answers `Invalid<Thing>ID.NotFound`. terraform-provider-aws retries these
/// for `ec2PropagationTimeout` (2 minutes, internal/service/ec2/consts.go); AWS documents it in
/// "Eventual consistency in the Amazon EC2 API"
/// (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html).
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
        "ec2:AssociateRouteTable",
        "ec2:CreateNatGateway",
        "ec2:CreateVpcEndpoint",
        "ec2:CreateTags",
        "ec2:AssociateVpcCidrBlock",
        "ec2:AssociateSubnetCidrBlock",
    ],
    matches: &[Match::CodeSuffix(".NotFound")],
    timeout: timeouts::EC2_PROPAGATION,
    backoff: PROPAGATION,
};

/// A fresh account has no ECS service-linked role until ECS creates it on first use, and the
/// first `CreateCluster`/`CreateService` can fail while it propagates. terraform-provider-aws's
/// `retryClusterCreate` (internal/service/ecs/cluster.go) retries exactly this message for
/// `propagationTimeout`.
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

/// A new IAM role (or a new policy on it) is not usable at once; each service says so in its
/// own words. terraform-provider-aws retries each message below for `propagationTimeout`
/// (internal/service/lambda/function.go, sagemaker/model.go, ecs/service.go and
/// ecs/task_definition.go).
pub const IAM_PROPAGATION: Policy = Policy {
    name: "iam-propagation",
    why: "a new IAM role is not usable by the service yet",
    operations: &[
        "lambda:CreateFunction",
        "lambda:UpdateFunctionConfiguration",
        "sagemaker:CreateModel",
        "sagemaker:CreateEndpoint",
        "sagemaker:UpdateEndpoint",
        "ecs:CreateService",
        "ecs:UpdateService",
        "ecs:RegisterTaskDefinition",
    ],
    matches: &[
        // Lambda: "The role defined for the function cannot be assumed by Lambda."
        Match::Message {
            code: Some("InvalidParameterValueException"),
            contains: "cannot be assumed by Lambda",
        },
        // Lambda: "The provided execution role does not have permissions to call ..."
        Match::Message {
            code: Some("InvalidParameterValueException"),
            contains: "execution role does not have permissions",
        },
        // SageMaker: "Could not assume role arn:...".
        Match::Message {
            code: Some("ValidationException"),
            contains: "Could not assume role",
        },
        // SageMaker, with model data, while the role's S3 grant propagates:
        // "Could not access model data at s3://...".
        Match::Message {
            code: Some("ValidationException"),
            contains: "Could not access model data",
        },
        // ECS: "Unable to assume role and validate the specified targetGroupArn" and
        // "...does not have permission to assume role".
        Match::Message {
            code: Some("InvalidParameterException"),
            contains: "Unable to assume role",
        },
        // ECS RegisterTaskDefinition: "Role is not valid".
        Match::Message {
            code: Some("ClientException"),
            contains: "Role is not valid",
        },
    ],
    timeout: timeouts::IAM_PROPAGATION,
    backoff: PROPAGATION,
};

/// An HTTPS listener created right after its certificate was issued can be refused with
/// `CertificateNotFound` until ACM's change reaches ELB. terraform-provider-aws's listener
/// create (internal/service/elbv2/listener.go) retries `CertificateNotFoundException` for the
/// create timeout.
pub const CERTIFICATE_PROPAGATION: Policy = Policy {
    name: "certificate-propagation",
    why: "the new certificate has not reached the load balancer service yet",
    operations: &[
        "elasticloadbalancing:CreateListener",
        "elasticloadbalancing:ModifyListener",
    ],
    matches: &[Match::Code("CertificateNotFound")],
    timeout: timeouts::CERTIFICATE_PROPAGATION,
    backoff: PROPAGATION,
};

/// Another change to the same resource is in progress: Lambda's `ResourceConflictException`
/// ("An update is in progress for resource"), `ConcurrentModification` elsewhere.
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

/// Every named policy, for the README's list and the tests.
pub const ALL: &[&Policy] = &[
    &TRANSIENT,
    &EC2_PROPAGATION,
    &ECS_SERVICE_LINKED_ROLE,
    &IAM_PROPAGATION,
    &CERTIFICATE_PROPAGATION,
    &CONFLICT,
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
                &IAM_PROPAGATION,
                aws_error(
                    "lambda:CreateFunction",
                    "InvalidParameterValueException",
                    "The role defined for the function cannot be assumed by Lambda.",
                ),
                true,
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
                    "1 validation error detected",
                ),
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
        ];
        for (policy, e, want) in cases {
            assert_eq!(policy.applies(e), *want, "{} on {}", policy.name, e.message);
        }
    }
}
