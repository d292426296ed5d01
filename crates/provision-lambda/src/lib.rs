//! Lambda functions from container images, as a resource kind.
//!
//! A function is read with one `GetFunction` call (configuration, image and tags). Changes
//! go through `UpdateFunctionCode` (image, architecture) and `UpdateFunctionConfiguration`
//! (role, memory, timeout, environment); Lambda allows one update at a time, so each call
//! waits until the function is settled, and `up` waits until the last one has succeeded.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_lambda::Client;
use aws_sdk_lambda::operation::get_function::GetFunctionOutput;
use aws_sdk_lambda::types::{
    Architecture, Environment, FunctionCode, FunctionConfiguration, LastUpdateStatus, PackageType,
    State,
};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use provision_aws::retry::{CONFLICT, LAMBDA_ROLE_PROPAGATION, retry};
use provision_core::resource::{
    Cx, Desired, ErrorClass, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use provision_core::wait::{Backoff, Poll, until};
use serde::{Deserialize, Serialize};

/// Every Lambda kind, sharing one client.
pub struct LambdaKinds {
    pub function: Arc<Function>,
}

impl LambdaKinds {
    pub fn new(client: Client) -> Self {
        LambdaKinds {
            function: Arc::new(Function { lambda: client }),
        }
    }

    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        vec![self.function.clone()]
    }
}

/// A function whose code is a container image.
pub struct Function {
    lambda: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FunctionSpec {
    /// The image, by digest.
    pub image_uri: String,
    pub role_arn: String,
    /// `x86_64` or `arm64`.
    pub architecture: String,
    pub memory_size: u32,
    pub timeout_seconds: u32,
    pub environment: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FunctionOut {
    pub function_name: String,
    pub function_arn: String,
}

/// Settings changed by `UpdateFunctionCode`; the rest go through `UpdateFunctionConfiguration`.
const CODE_SETTINGS: &[&str] = &["image_uri", "architecture"];

fn aws<E, R>(operation: &str, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    provision_aws::classify(operation, err)
}

/// What a function's configuration says about it.
fn spec_of(c: &FunctionConfiguration, image_uri: &str) -> FunctionSpec {
    FunctionSpec {
        image_uri: image_uri.to_string(),
        role_arn: c.role().unwrap_or_default().to_string(),
        architecture: c
            .architectures()
            .first()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| "x86_64".into()),
        memory_size: c
            .memory_size()
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0),
        timeout_seconds: c.timeout().and_then(|t| u32::try_from(t).ok()).unwrap_or(0),
        environment: c
            .environment()
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }
}

/// The function's state in words, and whether it can take calls and updates.
fn readiness(c: &FunctionConfiguration) -> (String, bool) {
    let update_running = c.last_update_status() == Some(&LastUpdateStatus::InProgress);
    match c.state() {
        Some(State::Active | State::Inactive) if !update_running => ("Active".into(), true),
        Some(State::Active | State::Inactive) => ("updating".into(), false),
        Some(s) => (s.as_str().to_string(), false),
        None => ("unknown".into(), false),
    }
}

fn function_live(c: &FunctionConfiguration, image_uri: &str) -> Result<Live, ResourceError> {
    let name = c.function_name().unwrap_or_default();
    let out = FunctionOut {
        function_name: name.to_string(),
        function_arn: c.function_arn().unwrap_or_default().to_string(),
    };
    let outputs = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    let live = Live::new(name, to_settings(&spec_of(c, image_uri)), outputs);
    let (status, ready) = readiness(c);
    // A failed last update must be seen: the configuration already shows what was asked for.
    if c.last_update_status() == Some(&LastUpdateStatus::Failed) {
        return Ok(live.pending("last update failed"));
    }
    Ok(if ready {
        live.with_status(status)
    } else {
        live.pending(status)
    })
}

fn environment(spec: &FunctionSpec) -> Environment {
    Environment::builder()
        .set_variables(Some(spec.environment.clone().into_iter().collect()))
        .build()
}

impl Function {
    async fn get(&self, name: &str) -> Result<Option<GetFunctionOutput>, ResourceError> {
        match self.lambda.get_function().function_name(name).send().await {
            Ok(out) => Ok(Some(out)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("lambda:GetFunction", e)),
        }
    }

    /// Waits until the function takes updates again (Lambda allows one at a time).
    async fn settled(&self, cx: &Cx, name: &str) -> Result<(), ResourceError> {
        until(
            cx,
            &format!("function {name} to finish its last change"),
            &provision_aws::timeouts::FUNCTION,
            Backoff::FAST,
            || async {
                let out = self.get(name).await?.ok_or_else(|| {
                    ResourceError::fatal(format!("function {name} disappeared while being updated"))
                        .with_hint("rerun `provision up` to create it again")
                })?;
                let c = out
                    .configuration()
                    .cloned()
                    .unwrap_or_else(|| FunctionConfiguration::builder().build());
                let busy = c.state() == Some(&State::Pending)
                    || c.last_update_status() == Some(&LastUpdateStatus::InProgress);
                Ok(if busy {
                    Poll::Pending(readiness(&c).0)
                } else {
                    Poll::Ready(())
                })
            },
        )
        .await
    }

    /// Sends an update once the function is settled (Lambda allows one update at a time).
    /// Lambda's "an update is in progress" conflict (someone else's change, or Lambda's own
    /// work after a create) is ridden out by the `CONFLICT` policy, settling again before
    /// each attempt; a role IAM has not propagated by `LAMBDA_ROLE_PROPAGATION`.
    async fn update_when_settled<F, Fut>(
        &self,
        cx: &Cx,
        name: &str,
        mut call: F,
    ) -> Result<(), ResourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), ResourceError>>,
    {
        retry(cx, &[&CONFLICT, &LAMBDA_ROLE_PROPAGATION], || {
            let attempt = call();
            async move {
                self.settled(cx, name).await?;
                attempt.await
            }
        })
        .await
    }
}

fn failed_state(name: &str, c: &FunctionConfiguration) -> ResourceError {
    ResourceError::fatal(format!(
        "function {name} failed: {}",
        c.state_reason().unwrap_or("Lambda gave no reason")
    ))
    .with_hint("an image function fails when Lambda cannot pull or start its image (check the image's architecture and that the repository lets Lambda pull); fix it and rerun `provision up`")
}

fn failed_update(name: &str, c: &FunctionConfiguration) -> ResourceError {
    ResourceError::fatal(format!(
        "the last update of function {name} failed: {}",
        c.last_update_status_reason().unwrap_or("Lambda gave no reason")
    ))
    .with_hint("fix the cause and rerun `provision up`; a rebuilt image (a new digest) updates the function again")
}

#[async_trait]
impl Kind for Function {
    fn name(&self) -> &'static str {
        "lambda.function"
    }
    fn noun(&self) -> &'static str {
        "Lambda function"
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let Some(name) = lookup.physical_id().or(lookup.recorded_name()) else {
            return Ok(None);
        };
        let Some(out) = self.get(name).await? else {
            return Ok(None);
        };
        let tags = out
            .tags()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        cx.ensure_ours(&format!("Lambda function {name}"), tags)?;
        let Some(c) = out.configuration() else {
            return Err(ResourceError::fatal(format!(
                "lambda:GetFunction returned no configuration for {name}"
            )));
        };
        function_live(
            c,
            out.code().and_then(|c| c.image_uri()).unwrap_or_default(),
        )
        .map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: FunctionSpec = desired.spec()?;
        let name = desired.name()?;
        let tags: std::collections::HashMap<String, String> = cx.tags().into_iter().collect();
        // A new role may not be usable by Lambda yet.
        let out = retry(cx, &[&LAMBDA_ROLE_PROPAGATION], || async {
            match self
                .lambda
                .create_function()
                .function_name(name)
                .package_type(PackageType::Image)
                .code(FunctionCode::builder().image_uri(&spec.image_uri).build())
                .role(&spec.role_arn)
                .architectures(Architecture::from(spec.architecture.as_str()))
                .memory_size(i32::try_from(spec.memory_size).unwrap_or(i32::MAX))
                .timeout(i32::try_from(spec.timeout_seconds).unwrap_or(i32::MAX))
                .set_environment((!spec.environment.is_empty()).then(|| environment(&spec)))
                .set_tags(Some(tags.clone()))
                .send()
                .await
            {
                Ok(out) => Ok(out),
                // CreateFunction answers a taken name with a conflict ("Function already
                // exist: ..."); for a create that is a collision to look up, not a busy function.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_conflict_exception()) =>
                {
                    let mut err = aws("lambda:CreateFunction", e);
                    err.class = ErrorClass::AlreadyExists;
                    Err(err)
                }
                Err(e) => Err(aws("lambda:CreateFunction", e)),
            }
        })
        .await?;
        let outputs = serde_json::to_value(FunctionOut {
            function_name: name.to_string(),
            function_arn: out.function_arn().unwrap_or_default().to_string(),
        })
        .map_err(|e| ResourceError::fatal(e.to_string()))?;
        let live = Live::new(name, to_settings(&spec), outputs);
        // New functions start `Pending` while Lambda prepares the image.
        Ok(match out.state() {
            Some(State::Active)
                if out.last_update_status() != Some(&LastUpdateStatus::InProgress) =>
            {
                live.with_status("Active")
            }
            Some(s) => live.pending(s.as_str().to_string()),
            None => live.pending("Pending"),
        })
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: FunctionSpec = desired.spec()?;
        let name = live.physical_id.as_str();
        if changed.iter().any(|c| CODE_SETTINGS.contains(&c.as_str())) {
            cx.progress(format!("updating the image of function {name}"));
            self.update_when_settled(cx, name, || {
                let req = self
                    .lambda
                    .update_function_code()
                    .function_name(name)
                    .image_uri(&spec.image_uri)
                    .architectures(Architecture::from(spec.architecture.as_str()));
                async move {
                    req.send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws("lambda:UpdateFunctionCode", e))
                }
            })
            .await?;
        }
        if changed.iter().any(|c| !CODE_SETTINGS.contains(&c.as_str())) {
            cx.progress(format!("updating the configuration of function {name}"));
            self.update_when_settled(cx, name, || {
                let req = self
                    .lambda
                    .update_function_configuration()
                    .function_name(name)
                    .role(&spec.role_arn)
                    .memory_size(i32::try_from(spec.memory_size).unwrap_or(i32::MAX))
                    .timeout(i32::try_from(spec.timeout_seconds).unwrap_or(i32::MAX))
                    .environment(environment(&spec));
                async move {
                    req.send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws("lambda:UpdateFunctionConfiguration", e))
                }
            })
            .await?;
        }
        let mut live = live.clone();
        live.settings = to_settings(&spec);
        // Each update call was accepted; wait_ready waits for the last one to succeed.
        Ok(live.pending("updating"))
    }

    async fn wait_ready(&self, cx: &Cx, live: Live) -> Result<Live, ResourceError> {
        let name = live.physical_id.clone();
        until(
            cx,
            &format!("function {name} to be active"),
            &provision_aws::timeouts::FUNCTION,
            Backoff::FAST,
            || async {
                let out = self.get(&name).await?.ok_or_else(|| {
                    ResourceError::fatal(format!("function {name} disappeared while starting"))
                        .with_hint("rerun `provision up` to create it again")
                })?;
                let Some(c) = out.configuration() else {
                    return Ok(Poll::Pending("unknown".into()));
                };
                if c.state() == Some(&State::Failed) {
                    return Err(failed_state(&name, c));
                }
                if c.last_update_status() == Some(&LastUpdateStatus::Failed) {
                    return Err(failed_update(&name, c));
                }
                let (status, ready) = readiness(c);
                if !ready {
                    return Ok(Poll::Pending(status));
                }
                function_live(
                    c,
                    out.code().and_then(|c| c.image_uri()).unwrap_or_default(),
                )
                .map(Poll::Ready)
            },
        )
        .await
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(name) = record.physical_id.as_deref() else {
            return Ok(());
        };
        let Some(out) = self.get(name).await? else {
            return Ok(());
        };
        let tags = out
            .tags()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        cx.ensure_ours(&format!("Lambda function {name}"), tags)?;
        match self
            .lambda
            .delete_function()
            .function_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws("lambda:DeleteFunction", e)),
        }
    }
}

#[cfg(test)]
mod tests;
