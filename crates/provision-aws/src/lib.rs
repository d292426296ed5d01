//! The bottom AWS layer: SDK configuration (credentials chain, profile, region, endpoint,
//! retries, timeouts), the account check (which explains a failure to load credentials),
//! error classification with hints, and the ledger of every API call made (counted for
//! `--json` stats, benchmarks and the no-mutation guarantee; logged, with its request id, for
//! the debug log).
//!
//! Service crates take the clients this configuration builds; none of them builds its own.

use std::fmt;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use provision_core::resource::{ErrorClass, ResourceError};

pub use aws_types::SdkConfig;

mod calls;
mod credentials;
pub mod retry;
pub mod timeouts;

pub use calls::{ApiCalls, CallCounts, Operation, TARGET as CALLS_TARGET};

/// How to reach AWS.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub region: String,
    /// A named profile from `~/.aws/config`; else the default chain.
    pub profile: Option<String>,
    /// Overrides every service's endpoint (LocalStack, moto). `AWS_ENDPOINT_URL` also works.
    pub endpoint_url: Option<String>,
    /// Multiplies the SDK's retry backoff, like every other wait (`PROVISION_WAIT_SCALE`).
    pub wait_scale: f64,
}

/// The loaded SDK configuration and the API call ledger shared by every client.
#[derive(Clone, Debug)]
pub struct Aws {
    sdk: SdkConfig,
    calls: ApiCalls,
    endpoint_overridden: bool,
    /// `--profile`, to explain a failure to load credentials.
    profile: Option<String>,
}

impl Aws {
    /// Loads the standard credential chain (environment, profiles, SSO, instance roles).
    pub async fn load(options: &Options) -> Aws {
        let scale = if options.wait_scale > 0.0 {
            options.wait_scale
        } else {
            1.0
        };
        // Standard mode with more attempts than the default 3: a deploy makes hundreds of
        // calls, and throttling on a busy account is routine, not an error.
        let retry = RetryConfig::standard()
            .with_max_attempts(8)
            .with_initial_backoff(Duration::from_millis(500).mul_f64(scale))
            .with_max_backoff(Duration::from_secs(20).mul_f64(scale));
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(options.region.clone()))
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some(profile) = &options.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk = loader.load().await;
        let endpoint_overridden = sdk.endpoint_url().is_some();
        Aws {
            sdk,
            calls: ApiCalls::default(),
            endpoint_overridden,
            profile: options.profile.clone(),
        }
    }

    /// Wraps an existing configuration (tests).
    pub fn from_sdk(sdk: SdkConfig) -> Aws {
        let endpoint_overridden = sdk.endpoint_url().is_some();
        Aws {
            sdk,
            calls: ApiCalls::default(),
            endpoint_overridden,
            profile: None,
        }
    }

    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    /// The interceptor to add to every service client, so its calls are counted.
    pub fn calls(&self) -> &ApiCalls {
        &self.calls
    }

    /// Whether an endpoint override points every service elsewhere (an emulator).
    pub fn endpoint_overridden(&self) -> bool {
        self.endpoint_overridden
    }

    pub fn region(&self) -> &str {
        self.sdk.region().map(|r| r.as_ref()).unwrap_or("us-east-1")
    }

    /// The account the credentials belong to (STS `GetCallerIdentity`).
    pub async fn account(&self) -> Result<String, ResourceError> {
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&self.sdk)
                .interceptor(self.calls.clone())
                .retry_partition(retry_partition("sts"))
                .build(),
        );
        let out = match sts.get_caller_identity().send().await {
            Ok(out) => out,
            // Loading credentials failed before anything was sent: say which sources were
            // tried and what each said, not the SDK's last error alone.
            Err(e) => {
                return Err(match credentials::credentials_error(&e) {
                    Some(cause) => credentials::explain(cause, self.profile.as_deref()).await,
                    None => classify("sts:GetCallerIdentity", e),
                });
            }
        };
        out.account
            .ok_or_else(|| ResourceError::fatal("STS GetCallerIdentity returned no account"))
    }

    /// Refuses to go on if the credentials are for another account than the config names.
    pub async fn check_account(&self, expected: &str) -> Result<(), ResourceError> {
        let actual = self.account().await?;
        if actual != expected {
            return Err(ResourceError::fatal(format!(
                "the config deploys into account {expected}, but these credentials are for account {actual}"
            ))
            .with_hint(
                "use credentials for the right account (--profile or AWS_PROFILE), or fix `account` in the config",
            ));
        }
        Ok(())
    }
}

/// The retry partition every client of `service` should use: the SDK's standard retries
/// (attempts and backoff from [`Aws::load`]), without the SDK's shared retry quota.
///
/// The quota (a token bucket of 500, spent 5 to 14 per retry, per service and process) stops
/// a fleet of servers from hammering a struggling service; a single deploy that must ride out
/// a burst of throttling would instead run out of retries half-way through.
pub fn retry_partition(service: &str) -> aws_smithy_runtime::client::retries::RetryPartition {
    aws_smithy_runtime::client::retries::RetryPartition::custom(format!("provision-{service}"))
        .token_bucket(aws_smithy_runtime::client::retries::TokenBucket::unlimited())
        .build()
}

/// Whether an operation name is one that changes something. AWS names reads
/// `Describe*`, `Get*`, `List*`, `BatchGet*`, `BatchCheck*`, `Head*`.
pub fn is_mutating(operation: &str) -> bool {
    const READS: &[&str] = &[
        "Describe",
        "Get",
        "List",
        "BatchGet",
        "BatchCheck",
        "Head",
        "Lookup",
        "Search",
        "Select",
    ];
    !READS.iter().any(|p| operation.starts_with(p))
}

/// The service as IAM spells it in actions (`ec2`, `route53`, `elasticloadbalancing`), from
/// the SDK's display name (`EC2`, `Route 53`, `Elastic Load Balancing v2`).
pub fn service_prefix(sdk_name: &str) -> String {
    match sdk_name {
        "Elastic Load Balancing v2" => "elasticloadbalancing".to_string(),
        "CloudWatch Logs" => "logs".to_string(),
        other => other.replace(' ', "").to_ascii_lowercase(),
    }
}

/// Error codes that mean "slow down" or "try again" across services.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "ProvisionedThroughputExceededException",
    "PriorRequestNotComplete",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "InternalServiceException",
    "ServerException",
    "ServiceException",
    "RequestTimeout",
    "RequestTimeoutException",
    "EC2ThrottledException",
];

/// Error codes that mean "another change to this resource is in progress". A conflict is
/// never taken for "already exists": a kind whose create answers a conflict for a name that
/// is taken (Lambda's `Function already exist`) says so itself.
const CONFLICT_CODES: &[&str] = &[
    "ResourceConflictException",
    "ConcurrentModificationException",
    "ConcurrentModification",
    "OperationAbortedException",
    "ConflictException",
    "IncorrectState",
];

/// Turns an SDK error into a [`ResourceError`] that names the operation, carries the AWS
/// error code, says whether retrying helps, and gives a hint for the errors users hit.
pub fn classify<E, R>(operation: &str, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let request_id = request_id(&err);
    let out = classify_inner(operation, err).with_operation(operation);
    match request_id {
        Some(id) => out.with_request_id(id),
        None => out,
    }
}

/// The id AWS gave the failed request, as the SDK read it from the response (`x-amzn-RequestId`,
/// `x-amz-request-id`, or EC2's `RequestID` in the error body).
fn request_id<E, R>(err: &SdkError<E, R>) -> Option<String>
where
    E: ProvideErrorMetadata,
{
    use aws_types::request_id::RequestId;
    match err {
        SdkError::ServiceError(s) => s.err().meta().request_id().map(str::to_string),
        _ => None,
    }
}

fn classify_inner<E, R>(operation: &str, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    match &err {
        SdkError::TimeoutError(_) => ResourceError::transient(format!("{operation}: timed out")),
        SdkError::DispatchFailure(d) => {
            let what = if d.is_io() {
                "connection failed"
            } else if d.is_timeout() {
                "timed out"
            } else {
                "could not send the request"
            };
            ResourceError::transient(format!("{operation}: {what}: {}", error_chain(&err)))
                .with_hint("check the network and the endpoint (AWS_ENDPOINT_URL, if set)")
        }
        SdkError::ResponseError(_) => ResourceError::transient(format!(
            "{operation}: unreadable response: {}",
            error_chain(&err)
        )),
        SdkError::ConstructionFailure(_) => ResourceError::fatal(format!(
            "{operation}: could not build the request: {}",
            error_chain(&err)
        )),
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown").to_string();
            let message = e.message().unwrap_or("").to_string();
            let class = if TRANSIENT_CODES.contains(&code.as_str()) {
                ErrorClass::Transient
            } else if CONFLICT_CODES.contains(&code.as_str()) {
                ErrorClass::Conflict
            } else if is_already_exists(&code) {
                ErrorClass::AlreadyExists
            } else {
                ErrorClass::Fatal
            };
            let text = if message.is_empty() {
                format!("{operation}: {code}")
            } else {
                format!("{operation}: {code}: {message}")
            };
            let mut out = ResourceError::new(class, text).with_code(code.clone());
            out.hint = hint_for(&code, &message);
            out
        }
        _ => ResourceError::fatal(format!("{operation}: {}", error_chain(&err))),
    }
}

fn is_already_exists(code: &str) -> bool {
    matches!(
        code,
        "EntityAlreadyExists"
            | "EntityAlreadyExistsException"
            | "ResourceAlreadyExistsException"
            | "RepositoryAlreadyExistsException"
            | "DuplicateLoadBalancerName"
            | "DuplicateTargetGroupName"
            | "DuplicateListener"
            | "InvalidGroup.Duplicate"
            | "ResourceInUse"
            | "AlreadyExistsException"
    )
}

fn hint_for(code: &str, message: &str) -> Option<String> {
    let hint = match code {
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "AuthFailure" => {
            "the AWS credentials are not valid; refresh them (aws sso login, or new access keys)"
        }
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => {
            "the AWS session has expired; log in again (aws sso login) and rerun: nothing is lost"
        }
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "UnauthorizedAccess" => {
            "these credentials lack a permission provision needs; the message names the action. Use a role with it, then rerun"
        }
        "OptInRequired" => {
            "the region is not enabled for this account; enable it, or choose another `region`"
        }
        "VpcLimitExceeded"
        | "AddressLimitExceeded"
        | "NatGatewayLimitExceeded"
        | "LimitExceededException"
        | "LimitExceeded"
        | "TooManyLoadBalancers"
        | "TooManyTargetGroups"
        | "ResourceLimitExceeded" => {
            "an AWS quota is reached; delete unused resources or ask for a higher quota in the Service Quotas console"
        }
        "DependencyViolation" => {
            "something outside provision still uses this resource; the message names it"
        }
        _ if message.contains("cannot be assumed") || message.contains("Could not assume role") => {
            "a new IAM role takes a few seconds to be usable; rerun if this persists"
        }
        _ => return None,
    };
    Some(hint.to_string())
}

/// The error and its sources, joined, for errors that are not service errors.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = e.source();
    }
    s
}

/// The AWS error code of an SDK error, if it is a service error. Only for services (EC2) whose
/// errors are not modelled as types; elsewhere use the typed `is_*` methods.
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_named_like_iam_actions() {
        assert_eq!(service_prefix("EC2"), "ec2");
        assert_eq!(service_prefix("Route 53"), "route53");
        assert_eq!(
            service_prefix("Elastic Load Balancing v2"),
            "elasticloadbalancing"
        );
        assert_eq!(service_prefix("CloudWatch Logs"), "logs");
        assert_eq!(service_prefix("SageMaker"), "sagemaker");
    }

    #[test]
    fn reads_and_writes_are_told_apart() {
        for read in [
            "DescribeVpcs",
            "GetRole",
            "ListTagsForResource",
            "BatchCheckLayerAvailability",
            "BatchGetImage",
            "HeadObject",
        ] {
            assert!(!is_mutating(read), "{read}");
        }
        for write in [
            "CreateVpc",
            "PutImage",
            "DeleteRole",
            "UpdateService",
            "RegisterTaskDefinition",
            "TagResource",
            "InitiateLayerUpload",
            "ChangeResourceRecordSets",
        ] {
            assert!(is_mutating(write), "{write}");
        }
    }
}
