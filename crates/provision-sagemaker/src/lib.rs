//! SageMaker hosting as resource kinds: the model, the endpoint configuration and the
//! endpoint.
//!
//! Models and endpoint configurations cannot be changed once created. Their physical names
//! carry a short hash of their settings, so a change is a new resource under a new name
//! (created before the old one is deleted), and the endpoint switches to it with
//! `UpdateEndpoint`. The engine deletes the old configuration and model only once the whole
//! run has succeeded, so an endpoint whose switch failed keeps serving the old ones.
//!
//! SageMaker's Describe calls do not return tags. A resource the state recorded by its name
//! was created by this stack (the name came from our own create call), so a rerun reads each
//! one with a single call; tags are checked with `ListTags` when a resource is found by name
//! alone (after a crash, or when adopting), and always before a delete.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::types::Tag;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use provision_core::engine::fingerprint;
use provision_core::names;
use provision_core::resource::{Cx, ErrorClass, Kind, ResourceError, Settings};

mod endpoint;
mod endpoint_config;
mod model;

pub use endpoint::{Endpoint, EndpointOut, EndpointSpec};
pub use endpoint_config::{
    Capacity, EndpointConfig, EndpointConfigOut, EndpointConfigSpec, VARIANT_NAME,
};
pub use model::{Model, ModelOut, ModelSpec};

/// Every SageMaker kind, sharing one client.
pub struct SagemakerKinds {
    pub model: Arc<Model>,
    pub endpoint_config: Arc<EndpointConfig>,
    pub endpoint: Arc<Endpoint>,
}

impl SagemakerKinds {
    pub fn new(client: Client) -> Self {
        SagemakerKinds {
            model: Arc::new(Model {
                sagemaker: client.clone(),
            }),
            endpoint_config: Arc::new(EndpointConfig {
                sagemaker: client.clone(),
            }),
            endpoint: Arc::new(Endpoint { sagemaker: client }),
        }
    }

    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        vec![
            self.model.clone(),
            self.endpoint_config.clone(),
            self.endpoint.clone(),
        ]
    }
}

/// The physical name of a model or endpoint configuration: `base`, then 8 hex digits of the
/// hash of its settings, within SageMaker's 63 characters.
pub fn physical_name(base: &str, settings: &Settings) -> String {
    let hash = &fingerprint(settings)[..8];
    let head = names::shorten(base, names::limits::SAGEMAKER - hash.len() - 1);
    format!("{head}-{hash}")
}

/// SageMaker reports a missing model, configuration or endpoint as a `ValidationException`
/// (`Could not find endpoint "arn:..."`), not as a typed not-found error; the message is the
/// only way to tell it from a real validation failure.
pub(crate) fn is_not_found<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    validation_message(err).is_some_and(|m| m.starts_with("Could not find"))
}

/// Likewise, a name already taken is a `ValidationException` (`Cannot create already
/// existing model "arn:..."`).
fn is_already_existing<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    validation_message(err).is_some_and(|m| m.starts_with("Cannot create already existing"))
}

/// A new execution role not yet usable: `ValidationException: Could not assume role ...`.
pub(crate) fn is_role_not_assumable<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    validation_message(err).is_some_and(|m| m.contains("Could not assume role"))
}

fn validation_message<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(s) if s.err().code() == Some("ValidationException") => {
            s.err().message()
        }
        _ => None,
    }
}

/// Classifies an SDK error, telling a name collision apart from other validation errors so
/// the engine looks for what an earlier attempt created.
pub(crate) fn aws<E, R>(operation: &str, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let collision = is_already_existing(&err);
    let mut e = provision_aws::classify(operation, err);
    if collision {
        e.class = ErrorClass::AlreadyExists;
    }
    e
}

/// The ownership tags, for a create call.
pub(crate) fn tags(cx: &Cx) -> Vec<Tag> {
    cx.tags()
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Checks the tags of the resource at `arn` name this resource of this stack.
pub(crate) async fn ensure_ours(
    sagemaker: &Client,
    cx: &Cx,
    what: &str,
    arn: &str,
) -> Result<(), ResourceError> {
    let out = sagemaker
        .list_tags()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| aws("sagemaker:ListTags", e))?;
    cx.ensure_ours(
        what,
        out.tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value()?))),
    )
}

/// The name to look for: the recorded physical name, else the one the recorded settings give
/// (a create whose reply was lost recorded only its intent).
pub(crate) fn lookup_name(lookup: &provision_core::resource::Lookup<'_>) -> Option<String> {
    if let Some(id) = lookup.physical_id() {
        return Some(id.to_string());
    }
    let base = lookup.recorded_name()?;
    let settings = &lookup.record?.settings;
    Some(physical_name(base, settings))
}

/// Runs `create` until the new execution role is usable: a role takes seconds to propagate,
/// and SageMaker refuses it until then. Bounded by the `iam-propagation` timeout.
pub(crate) async fn while_role_propagates<T, F, Fut>(
    cx: &Cx,
    role_arn: &str,
    mut create: F,
) -> Result<T, ResourceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, RoleRetry>>,
{
    use provision_core::wait::{Backoff, Poll, until};
    let backoff = Backoff {
        first: Duration::ZERO,
        initial: Duration::from_secs(1),
        max: Duration::from_secs(10),
        factor: 1.5,
    };
    let result = until(
        cx,
        &format!("IAM role {role_arn} to be usable by SageMaker"),
        &provision_aws::timeouts::IAM_PROPAGATION,
        backoff,
        || {
            let attempt = create();
            async move {
                match attempt.await {
                    Ok(v) => Ok(Poll::Ready(v)),
                    Err(RoleRetry::NotYet) => Ok(Poll::Pending("not assumable yet".into())),
                    Err(RoleRetry::Failed(e)) => Err(e),
                }
            }
        },
    )
    .await;
    result.map_err(|e| match e.class {
        ErrorClass::Timeout => ResourceError::timeout(format!("SageMaker still cannot assume the execution role {role_arn}"))
            .with_hint("check that the role exists and trusts sagemaker.amazonaws.com; if it does, IAM is slow today: rerun `provision up`, or allow more time with --timeout iam-propagation=5m"),
        _ => e,
    })
}

/// What one create attempt found.
pub(crate) enum RoleRetry {
    /// The role is not usable yet: try again.
    NotYet,
    Failed(ResourceError),
}

#[cfg(test)]
mod tests;
