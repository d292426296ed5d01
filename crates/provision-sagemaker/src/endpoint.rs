use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput;
use aws_sdk_sagemaker::types::EndpointStatus;
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use provision_core::wait::{Backoff, Poll, until};
use serde::{Deserialize, Serialize};

use crate::{aws, ensure_ours, is_not_found, tags};
use provision_aws::retry::{SAGEMAKER_ENDPOINT_ROLE, retry};

/// A SageMaker endpoint, named as the config says, serving one endpoint configuration.
pub struct Endpoint {
    pub(crate) sagemaker: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EndpointSpec {
    /// The configuration it serves (or is switching to).
    pub endpoint_config_name: String,
    /// Whether it is in the `Failed` state, where SageMaker allows nothing but a delete:
    /// always false as desired, so a failed endpoint is replaced.
    pub failed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EndpointOut {
    pub endpoint_name: String,
    pub endpoint_arn: String,
}

/// An endpoint takes minutes to create or switch; the first look is not worth taking sooner.
const FIRST_POLL: Duration = Duration::from_secs(20);

fn status_of(e: &DescribeEndpointOutput) -> String {
    e.endpoint_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether the endpoint is in the middle of something that must finish before it can be
/// updated or deleted.
fn in_progress(e: &DescribeEndpointOutput) -> bool {
    matches!(
        e.endpoint_status(),
        Some(
            EndpointStatus::Creating
                | EndpointStatus::Updating
                | EndpointStatus::SystemUpdating
                | EndpointStatus::RollingBack
        )
    )
}

fn endpoint_live(e: &DescribeEndpointOutput) -> Result<Live, ResourceError> {
    let name = e.endpoint_name().unwrap_or_default();
    // While switching, the configuration it is switching to is the one it has been asked for.
    let config = e
        .pending_deployment_summary()
        .and_then(|p| p.endpoint_config_name())
        .or(e.endpoint_config_name())
        .unwrap_or_default();
    let spec = EndpointSpec {
        endpoint_config_name: config.to_string(),
        failed: e.endpoint_status() == Some(&EndpointStatus::Failed),
    };
    let out = EndpointOut {
        endpoint_name: name.to_string(),
        endpoint_arn: e.endpoint_arn().unwrap_or_default().to_string(),
    };
    let outputs = serde_json::to_value(out).map_err(|err| ResourceError::fatal(err.to_string()))?;
    let live = Live::new(name, to_settings(&spec), outputs);
    Ok(match e.endpoint_status() {
        Some(EndpointStatus::InService) => live.with_status("InService"),
        _ => live.pending(status_of(e)),
    })
}

impl Endpoint {
    async fn send_create(
        &self,
        cx: &Cx,
        name: &str,
        config: &str,
    ) -> Result<aws_sdk_sagemaker::operation::create_endpoint::CreateEndpointOutput, ResourceError>
    {
        self.sagemaker
            .create_endpoint()
            .endpoint_name(name)
            .endpoint_config_name(config)
            .set_tags(Some(tags(cx)))
            .send()
            .await
            .map_err(|e| aws("sagemaker:CreateEndpoint", e))
    }

    /// Deletes a failed endpoint, waits until it is gone, and creates it again: SageMaker
    /// allows nothing else on a `Failed` endpoint.
    async fn recreate(&self, cx: &Cx, name: &str, config: &str) -> Result<(), ResourceError> {
        cx.progress(format!(
            "endpoint {name} failed; deleting it to create it again"
        ));
        match self
            .sagemaker
            .delete_endpoint()
            .endpoint_name(name)
            .send()
            .await
        {
            Ok(_) => {}
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(aws("sagemaker:DeleteEndpoint", err)),
        }
        self.gone(cx, name).await?;
        self.send_create(cx, name, config).await?;
        Ok(())
    }

    /// Waits until the endpoint no longer exists.
    async fn gone(&self, cx: &Cx, name: &str) -> Result<(), ResourceError> {
        until(
            cx,
            &format!("endpoint {name} to be deleted"),
            &provision_aws::timeouts::ENDPOINT_DELETE,
            Backoff::SLOW,
            || async {
                Ok(match self.describe(name).await? {
                    None => Poll::Ready(()),
                    Some(e) => Poll::Pending(status_of(&e)),
                })
            },
        )
        .await
    }

    /// Waits until the endpoint is in service on configuration `wanted`.
    async fn in_service(&self, cx: &Cx, name: &str, wanted: &str) -> Result<Live, ResourceError> {
        until(
            cx,
            &format!("endpoint {name} to be InService"),
            &provision_aws::timeouts::ENDPOINT,
            Backoff::SLOW.after(FIRST_POLL),
            || async {
                let e = self.describe(name).await?.ok_or_else(|| {
                    ResourceError::fatal(format!("endpoint {name} disappeared while starting"))
                        .with_hint("rerun `provision up` to create it again")
                })?;
                match e.endpoint_status() {
                    Some(EndpointStatus::InService) if e.endpoint_config_name() == Some(wanted) => {
                        Ok(Poll::Ready(endpoint_live(&e)?))
                    }
                    // Back in service on the old configuration: the switch failed and rolled back.
                    Some(EndpointStatus::InService) => Err(not_switched(name, &e, wanted)),
                    Some(EndpointStatus::Failed) => Err(failed(name, &e)),
                    Some(EndpointStatus::UpdateRollbackFailed) => Err(ResourceError::fatal(format!(
                        "endpoint {name} could not roll back a failed switch: {}",
                        e.failure_reason().unwrap_or("SageMaker gave no reason")
                    ))
                    .with_hint("see the endpoint in the SageMaker console; `provision down` then `provision up` recreates it")),
                    _ => Ok(Poll::Pending(status_of(&e))),
                }
            },
        )
        .await
    }

    async fn describe(&self, name: &str) -> Result<Option<DescribeEndpointOutput>, ResourceError> {
        match self
            .sagemaker
            .describe_endpoint()
            .endpoint_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(aws("sagemaker:DescribeEndpoint", e)),
        }
    }

    /// Waits until nothing is in progress on the endpoint, which SageMaker requires before an
    /// update or a delete. `None` if it is gone.
    async fn settled(
        &self,
        cx: &Cx,
        name: &str,
        before: &str,
    ) -> Result<Option<DescribeEndpointOutput>, ResourceError> {
        until(
            cx,
            &format!("endpoint {name} to finish what it is doing before {before}"),
            &provision_aws::timeouts::ENDPOINT,
            Backoff::SLOW,
            || async {
                Ok(match self.describe(name).await? {
                    Some(e) if in_progress(&e) => Poll::Pending(status_of(&e)),
                    other => Poll::Ready(other),
                })
            },
        )
        .await
    }
}

/// Why an endpoint that finished working does not serve the configuration it was asked to.
fn not_switched(name: &str, e: &DescribeEndpointOutput, wanted: &str) -> ResourceError {
    let serving = e.endpoint_config_name().unwrap_or("?");
    let reason = e.failure_reason().unwrap_or("SageMaker gave no reason");
    ResourceError::fatal(format!(
        "endpoint {name} did not switch to configuration {wanted}: {reason}; it still serves {serving}"
    ))
    .with_hint(
        "the endpoint keeps serving its previous configuration, which provision keeps until a switch succeeds; fix the cause (the model's image, its data, or the role's access) and rerun `provision up`",
    )
}

/// An endpoint that ended `Failed`: only a creation ends so (a failed switch rolls back to the
/// configuration it served), so the failure is its `CreateEndpoint`'s, which is what
/// `SAGEMAKER_ENDPOINT_ROLE` looks for.
fn failed(name: &str, e: &DescribeEndpointOutput) -> ResourceError {
    ResourceError::fatal(format!(
        "endpoint {name} failed: {}",
        e.failure_reason().unwrap_or("SageMaker gave no reason")
    ))
    .with_operation("sagemaker:CreateEndpoint")
    .with_hint(
        "fix the cause (often the container: its image, its model data, or its /ping answer; see the endpoint's CloudWatch logs), then rerun `provision up`, which deletes the failed endpoint and creates it again",
    )
}

#[async_trait]
impl Kind for Endpoint {
    fn name(&self) -> &'static str {
        "sagemaker.endpoint"
    }
    fn noun(&self) -> &'static str {
        "SageMaker endpoint"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["failed"]
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let Some(name) = lookup.physical_id().or(lookup.recorded_name()) else {
            return Ok(None);
        };
        let Some(e) = self.describe(name).await? else {
            return Ok(None);
        };
        if lookup.physical_id() != Some(name) {
            ensure_ours(
                &self.sagemaker,
                cx,
                &format!("SageMaker endpoint {name}"),
                e.endpoint_arn().unwrap_or_default(),
            )
            .await?;
        }
        endpoint_live(&e).map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: EndpointSpec = desired.spec()?;
        let name = desired.name()?;
        let out = self
            .send_create(cx, name, &spec.endpoint_config_name)
            .await?;
        let outputs = serde_json::to_value(EndpointOut {
            endpoint_name: name.to_string(),
            endpoint_arn: out.endpoint_arn().unwrap_or_default().to_string(),
        })
        .map_err(|e| ResourceError::fatal(e.to_string()))?;
        cx.progress(format!(
            "endpoint {name} is Creating (SageMaker takes 5 to 10 minutes)"
        ));
        Ok(Live::new(name, to_settings(&spec), outputs).pending("Creating"))
    }

    async fn verify_owner(&self, cx: &Cx, live: &Live) -> Result<(), ResourceError> {
        let arn = live.outputs["endpoint_arn"].as_str().unwrap_or_default();
        ensure_ours(
            &self.sagemaker,
            cx,
            &format!("SageMaker endpoint {}", live.physical_id),
            arn,
        )
        .await
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: EndpointSpec = desired.spec()?;
        let name = live.physical_id.as_str();
        // SageMaker refuses an update while the endpoint is creating or switching.
        if self
            .settled(cx, name, "it switches configuration")
            .await?
            .is_none()
        {
            return Err(ResourceError::fatal(format!(
                "endpoint {name} disappeared while it was being updated"
            ))
            .with_hint("rerun `provision up` to create it again"));
        }
        self.sagemaker
            .update_endpoint()
            .endpoint_name(name)
            .endpoint_config_name(&spec.endpoint_config_name)
            .send()
            .await
            .map_err(|e| aws("sagemaker:UpdateEndpoint", e))?;
        cx.progress(format!(
            "endpoint {name} is switching to configuration {}",
            spec.endpoint_config_name
        ));
        let mut live = live.clone();
        live.settings = to_settings(&spec);
        Ok(live.pending("Updating"))
    }

    async fn wait_ready(&self, cx: &Cx, live: Live) -> Result<Live, ResourceError> {
        let name = live.physical_id.clone();
        let wanted = live
            .settings
            .get("endpoint_config_name")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        // A new role may make the creation fail: then delete and create it again.
        let mut again = false;
        let ready = retry(cx, &[&SAGEMAKER_ENDPOINT_ROLE], || {
            let recreate = std::mem::replace(&mut again, true);
            let (name, wanted) = (&name, &wanted);
            async move {
                if recreate {
                    self.recreate(cx, name, wanted).await?;
                }
                self.in_service(cx, name, wanted).await
            }
        })
        .await?;
        cx.progress(format!("endpoint {name} is InService"));
        Ok(ready)
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(name) = record.physical_id.as_deref() else {
            return Ok(());
        };
        let Some(e) = self.describe(name).await? else {
            return Ok(());
        };
        ensure_ours(
            &self.sagemaker,
            cx,
            &format!("SageMaker endpoint {name}"),
            e.endpoint_arn().unwrap_or_default(),
        )
        .await?;
        // An endpoint that is creating or switching cannot be deleted until that finishes.
        if in_progress(&e) && self.settled(cx, name, "it can be deleted").await?.is_none() {
            return Ok(());
        }
        match self
            .sagemaker
            .delete_endpoint()
            .endpoint_name(name)
            .send()
            .await
        {
            Ok(_) => {}
            Err(err) if is_not_found(&err) => return Ok(()),
            Err(err) => return Err(aws("sagemaker:DeleteEndpoint", err)),
        }
        // Its configuration and model go next; wait until it no longer uses them.
        self.gone(cx, name).await
    }
}
