use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::operation::describe_model::DescribeModelOutput;
use aws_sdk_sagemaker::types::ContainerDefinition;
use provision_aws::retry::{IAM_PROPAGATION, retry};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use serde::{Deserialize, Serialize};

use crate::{aws, ensure_ours, is_not_found, lookup_name, physical_name, tags};

/// A SageMaker model: one container image, its environment and model data, and the role it
/// runs as. Immutable: any change makes a new model under a new name.
pub struct Model {
    pub(crate) sagemaker: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelSpec {
    pub execution_role_arn: String,
    /// The container image, by digest or tag.
    pub image: String,
    pub environment: BTreeMap<String, String>,
    /// `s3://bucket/key` of a `model.tar.gz`, if the container loads one.
    pub model_data_url: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelOut {
    pub model_name: String,
    pub model_arn: String,
}

fn model_live(m: &DescribeModelOutput) -> Result<Live, ResourceError> {
    let name = m.model_name().unwrap_or_default();
    let container = m.primary_container().or_else(|| m.containers().first());
    let spec = ModelSpec {
        execution_role_arn: m.execution_role_arn().unwrap_or_default().to_string(),
        image: container
            .and_then(|c| c.image())
            .unwrap_or_default()
            .to_string(),
        environment: container
            .and_then(|c| c.environment())
            .map(|e| e.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        model_data_url: container
            .and_then(|c| c.model_data_url())
            .map(str::to_string),
    };
    let out = ModelOut {
        model_name: name.to_string(),
        model_arn: m.model_arn().unwrap_or_default().to_string(),
    };
    let outputs = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    Ok(Live::new(name, to_settings(&spec), outputs))
}

impl Model {
    async fn describe(&self, name: &str) -> Result<Option<DescribeModelOutput>, ResourceError> {
        match self
            .sagemaker
            .describe_model()
            .model_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(aws("sagemaker:DescribeModel", e)),
        }
    }
}

#[async_trait]
impl Kind for Model {
    fn name(&self) -> &'static str {
        "sagemaker.model"
    }
    fn noun(&self) -> &'static str {
        "SageMaker model"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &[
            "execution_role_arn",
            "image",
            "environment",
            "model_data_url",
        ]
    }
    fn create_before_delete(&self) -> bool {
        true
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let Some(name) = lookup_name(lookup) else {
            return Ok(None);
        };
        let Some(m) = self.describe(&name).await? else {
            return Ok(None);
        };
        if lookup.physical_id() != Some(name.as_str()) {
            ensure_ours(
                &self.sagemaker,
                cx,
                &format!("SageMaker model {name}"),
                m.model_arn().unwrap_or_default(),
            )
            .await?;
        }
        model_live(&m).map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: ModelSpec = desired.spec()?;
        let name = physical_name(desired.name()?, &desired.settings);
        let container = ContainerDefinition::builder()
            .image(&spec.image)
            .set_environment(
                (!spec.environment.is_empty())
                    .then(|| spec.environment.clone().into_iter().collect()),
            )
            .set_model_data_url(spec.model_data_url.clone())
            .build();
        let tags = tags(cx);
        // A new role (and its grant on the model data) may not be usable by SageMaker yet.
        let out = retry(cx, &[&IAM_PROPAGATION], || async {
            self.sagemaker
                .create_model()
                .model_name(&name)
                .execution_role_arn(&spec.execution_role_arn)
                .primary_container(container.clone())
                .set_tags(Some(tags.clone()))
                .send()
                .await
                .map_err(|e| aws("sagemaker:CreateModel", e))
        })
        .await?;
        let outputs = serde_json::to_value(ModelOut {
            model_name: name.clone(),
            model_arn: out.model_arn().unwrap_or_default().to_string(),
        })
        .map_err(|e| ResourceError::fatal(e.to_string()))?;
        Ok(Live::new(name, to_settings(&spec), outputs))
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(name) = record.physical_id.as_deref() else {
            return Ok(());
        };
        let Some(m) = self.describe(name).await? else {
            return Ok(());
        };
        ensure_ours(
            &self.sagemaker,
            cx,
            &format!("SageMaker model {name}"),
            m.model_arn().unwrap_or_default(),
        )
        .await?;
        match self.sagemaker.delete_model().model_name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(aws("sagemaker:DeleteModel", e)),
        }
    }
}
