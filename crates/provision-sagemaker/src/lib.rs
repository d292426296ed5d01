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

#[cfg(test)]
mod tests;
