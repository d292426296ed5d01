//! AWS's input rules for every operation provision sends, each with a citation of the API
//! reference that states it, and the refusal AWS answers a breaking request with (status,
//! code, message, in the service's own wire shape via [`super::super::wire::render`]).
//!
//! The operations provision sends (from the `.send()` calls of `crates/provision-*/src`):
//!
//! | service | operations |
//! |---|---|
//! | EC2 | AllocateAddress, AssociateRouteTable, AttachInternetGateway, AuthorizeSecurityGroupIngress, CreateInternetGateway, CreateNatGateway, CreateRoute, CreateRouteTable, CreateSecurityGroup, CreateSubnet, CreateTags, CreateVpc, CreateVpcEndpoint, Delete*/Describe* of each, DetachInternetGateway, DisassociateRouteTable, ModifySubnetAttribute, ModifyVpcAttribute, ModifyVpcEndpoint, ReleaseAddress, ReplaceRoute, ReplaceRouteTableAssociation, RevokeSecurityGroupIngress |
//! | IAM | AttachRolePolicy, CreateRole, DeleteRole, DeleteRolePolicy, DetachRolePolicy, GetRole, GetRolePolicy, ListAttachedRolePolicies, ListRolePolicies, PutRolePolicy, UpdateAssumeRolePolicy, UpdateRole |
//! | ELBv2 | CreateListener, CreateLoadBalancer, CreateRule, CreateTargetGroup, Delete*, Describe*, ModifyListener, ModifyRule, ModifyTargetGroup, ModifyTargetGroupAttributes, SetIpAddressType, SetRulePriorities, SetSecurityGroups, SetSubnets |
//! | ACM | DeleteCertificate, DescribeCertificate, ListCertificates, ListTagsForCertificate, RequestCertificate |
//! | ECS | CreateCluster, CreateService, DeleteCluster, DeleteService, DeleteTaskDefinitions, DeregisterTaskDefinition, DescribeClusters, DescribeServices, DescribeTaskDefinition, ListTaskDefinitions, RegisterTaskDefinition, UpdateService |
//! | Lambda | CreateFunction, DeleteFunction, GetFunction, UpdateFunctionCode, UpdateFunctionConfiguration |
//! | SageMaker | CreateEndpoint, CreateEndpointConfig, CreateModel, DeleteEndpoint, DeleteEndpointConfig, DeleteModel, DescribeEndpoint, DescribeEndpointConfig, DescribeModel, ListTags, UpdateEndpoint |
//! | CloudWatch Logs | CreateLogGroup, DeleteLogGroup, DeleteRetentionPolicy, DescribeLogGroups, ListTagsForResource, PutRetentionPolicy |
//! | ECR | BatchCheckLayerAvailability, CompleteLayerUpload, CreateRepository, DeleteRepository, DeleteRepositoryPolicy, DescribeImages, DescribeRepositories, InitiateLayerUpload, ListTagsForResource, PutImage, PutImageScanningConfiguration, PutImageTagMutability, PutLifecyclePolicy, SetRepositoryPolicy, UploadLayerPart |
//! | Route 53 | ChangeResourceRecordSets, ListResourceRecordSets |
//! | S3, STS | GetObject, PutObject, DeleteObject; GetCallerIdentity (nothing to check) |
//!
//! Where a message below is AWS's verbatim, the comment says where it was seen; the others
//! follow the service's documented validation format (`1 validation error detected: ...`).

mod acm;
mod ec2;
mod ecr;
mod ecs;
mod elbv2;
mod iam;
mod lambda;
mod logs;
mod route53;
mod sagemaker;
mod tags;

use std::collections::HashSet;

use http::StatusCode;

use super::super::wire::AwsError;
use super::request::Request;

/// A request AWS refuses: which rule, and AWS's answer.
#[derive(Clone, Debug)]
pub(crate) struct Violation {
    /// `service.rule`, the name refusals are counted under.
    pub rule: &'static str,
    pub error: AwsError,
}

/// What the proxy knows of the account that some rules need.
#[derive(Default)]
pub(crate) struct Known<'a> {
    /// The name of the hosted zone the request changes (Route 53).
    pub zone_name: Option<&'a str>,
    /// Subnets seen created without an IPv6 CIDR block.
    pub ipv4_subnets: Option<&'a HashSet<String>>,
}

/// The first rule `req` breaks, if any.
pub(crate) fn check(req: &Request<'_>, known: &Known<'_>) -> Option<Violation> {
    let found = match req.signing_name() {
        "ec2" => ec2::check(req),
        "iam" => iam::check(req),
        "elasticloadbalancing" => elbv2::check(req, known),
        "acm" => acm::check(req),
        "ecs" => ecs::check(req),
        "lambda" => lambda::check(req),
        "sagemaker" => sagemaker::check(req),
        "logs" => logs::check(req),
        "ecr" => ecr::check(req),
        "route53" => route53::check(req, known),
        _ => None,
    };
    found.or_else(|| tags::check(req))
}

/// The ACM idempotency token of a `RequestCertificate`, if it is one.
pub(crate) use acm::idempotency_token;

fn refuse(
    rule: &'static str,
    status: StatusCode,
    code: &'static str,
    message: String,
) -> Option<Violation> {
    Some(Violation {
        rule,
        error: AwsError {
            status,
            code,
            message,
        },
    })
}

/// A 400 refusal.
fn bad(rule: &'static str, code: &'static str, message: String) -> Option<Violation> {
    refuse(rule, StatusCode::BAD_REQUEST, code, message)
}

/// The message of AWS's model validation (Coral), as the JSON services and IAM write it.
fn constraint(field: &str, value: &str, constraint: &str) -> String {
    format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    )
}

fn pattern(p: &str) -> String {
    format!("Member must satisfy regular expression pattern: {p}")
}

fn max_len(n: usize) -> String {
    format!("Member must have length less than or equal to {n}")
}

/// Characters (not bytes), as AWS counts lengths.
fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Java's `\w`: `[a-zA-Z_0-9]`.
fn word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `[a-zA-Z0-9]` plus the characters of `extra`.
fn alnum_or(extra: &'static str) -> impl Fn(char) -> bool {
    move |c| c.is_ascii_alphanumeric() || extra.contains(c)
}

/// `^[a-zA-Z0-9](-*[a-zA-Z0-9])*`: alphanumerics and hyphens, starting and ending with an
/// alphanumeric (SageMaker's names; ELB's are the same without the repeated hyphens).
fn hyphenated(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The number of a JSON value that may be a number or a numeric string.
fn number(v: &serde_json::Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str()?.trim().parse().ok())
}

#[cfg(test)]
pub(crate) mod testing {
    //! Requests for the rules' unit tests.
    use super::super::super::call::{Call, Protocol};
    use super::super::request::Request;
    use super::{Known, Violation, check};

    pub(crate) fn call(signing_name: &str, operation: &str) -> Call {
        let protocol = match signing_name {
            "ec2" => Protocol::Ec2Query,
            "iam" | "elasticloadbalancing" => Protocol::AwsQuery,
            "lambda" => Protocol::RestJson,
            "route53" => Protocol::RestXml,
            _ => Protocol::AwsJson,
        };
        Call {
            service: signing_name.to_string(),
            signing_name: signing_name.to_string(),
            operation: operation.to_string(),
            protocol,
            mutating: true,
        }
    }

    /// The rule a query-protocol request breaks.
    pub(crate) fn form(
        service: &str,
        operation: &str,
        params: &[(&str, &str)],
    ) -> Option<Violation> {
        let call = call(service, operation);
        let form: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        check(&Request::new(&call, &form, b"", "/"), &Known::default())
    }

    /// The rule a JSON request breaks.
    pub(crate) fn json(
        service: &str,
        operation: &str,
        body: serde_json::Value,
    ) -> Option<Violation> {
        let call = call(service, operation);
        let body = body.to_string();
        check(
            &Request::new(&call, &[], body.as_bytes(), "/"),
            &Known::default(),
        )
    }

    /// The rule's name, for assertions.
    pub(crate) fn rule(v: Option<Violation>) -> Option<&'static str> {
        v.map(|v| v.rule)
    }
}
