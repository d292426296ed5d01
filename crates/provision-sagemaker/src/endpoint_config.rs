use async_trait::async_trait;
use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::operation::describe_endpoint_config::DescribeEndpointConfigOutput;
use aws_sdk_sagemaker::types::{
    ProductionVariant, ProductionVariantInstanceType, ProductionVariantServerlessConfig,
};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use serde::{Deserialize, Serialize};

use crate::{aws, ensure_ours, is_not_found, lookup_name, physical_name, tags};

/// The one production variant's name, as SageMaker's own tools call it.
pub const VARIANT_NAME: &str = "AllTraffic";

/// An endpoint configuration: which model, on what compute. Immutable: a change makes a new
/// configuration under a new name, which the endpoint then switches to.
pub struct EndpointConfig {
    pub(crate) sagemaker: Client,
}

/// The compute of the endpoint's one variant.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Capacity {
    Serverless {
        memory_size_in_mb: u32,
        max_concurrency: u32,
        provisioned_concurrency: Option<u32>,
    },
    Instances {
        instance_type: String,
        initial_instance_count: u32,
        initial_variant_weight: f32,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EndpointConfigSpec {
    pub model_name: String,
    pub capacity: Capacity,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EndpointConfigOut {
    pub endpoint_config_name: String,
    pub endpoint_config_arn: String,
}

fn non_negative(n: Option<i32>) -> u32 {
    n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

fn capacity_of(v: &ProductionVariant) -> Capacity {
    match v.serverless_config() {
        Some(s) => Capacity::Serverless {
            memory_size_in_mb: non_negative(s.memory_size_in_mb()),
            max_concurrency: non_negative(s.max_concurrency()),
            provisioned_concurrency: s
                .provisioned_concurrency()
                .and_then(|n| u32::try_from(n).ok()),
        },
        None => Capacity::Instances {
            instance_type: v
                .instance_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            initial_instance_count: non_negative(v.initial_instance_count()),
            // SageMaker's default weight, when a variant was made without one.
            initial_variant_weight: v.initial_variant_weight().unwrap_or(1.0),
        },
    }
}

fn config_live(c: &DescribeEndpointConfigOutput) -> Result<Live, ResourceError> {
    let name = c.endpoint_config_name().unwrap_or_default();
    let variant = c.production_variants().first();
    let spec = EndpointConfigSpec {
        model_name: variant
            .and_then(|v| v.model_name())
            .unwrap_or_default()
            .to_string(),
        capacity: variant.map(capacity_of).unwrap_or(Capacity::Serverless {
            memory_size_in_mb: 0,
            max_concurrency: 0,
            provisioned_concurrency: None,
        }),
    };
    let out = EndpointConfigOut {
        endpoint_config_name: name.to_string(),
        endpoint_config_arn: c.endpoint_config_arn().unwrap_or_default().to_string(),
    };
    let outputs = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    Ok(Live::new(name, to_settings(&spec), outputs))
}

/// The production variant a spec describes.
pub(crate) fn variant(spec: &EndpointConfigSpec) -> ProductionVariant {
    let b = ProductionVariant::builder()
        .variant_name(VARIANT_NAME)
        .model_name(&spec.model_name);
    match &spec.capacity {
        Capacity::Serverless {
            memory_size_in_mb,
            max_concurrency,
            provisioned_concurrency,
        } => b.serverless_config(
            ProductionVariantServerlessConfig::builder()
                .memory_size_in_mb(clamp(*memory_size_in_mb))
                .max_concurrency(clamp(*max_concurrency))
                .set_provisioned_concurrency(provisioned_concurrency.map(clamp))
                .build(),
        ),
        Capacity::Instances {
            instance_type,
            initial_instance_count,
            initial_variant_weight,
        } => b
            .instance_type(ProductionVariantInstanceType::from(instance_type.as_str()))
            .initial_instance_count(clamp(*initial_instance_count))
            .initial_variant_weight(*initial_variant_weight),
    }
    .build()
}

/// Validated numbers are small; a number past `i32` would be refused by SageMaker anyway.
fn clamp(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl EndpointConfig {
    async fn describe(
        &self,
        name: &str,
    ) -> Result<Option<DescribeEndpointConfigOutput>, ResourceError> {
        match self
            .sagemaker
            .describe_endpoint_config()
            .endpoint_config_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(aws("sagemaker:DescribeEndpointConfig", e)),
        }
    }
}

#[async_trait]
impl Kind for EndpointConfig {
    fn name(&self) -> &'static str {
        "sagemaker.endpoint-config"
    }
    fn noun(&self) -> &'static str {
        "SageMaker endpoint configuration"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["model_name", "capacity"]
    }
    fn create_before_delete(&self) -> bool {
        true
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let Some(name) = lookup_name(lookup) else {
            return Ok(None);
        };
        let Some(c) = self.describe(&name).await? else {
            return Ok(None);
        };
        if lookup.physical_id() != Some(name.as_str()) {
            let what = format!("SageMaker endpoint configuration {name}");
            ensure_ours(
                &self.sagemaker,
                cx,
                &what,
                c.endpoint_config_arn().unwrap_or_default(),
            )
            .await?;
        }
        config_live(&c).map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: EndpointConfigSpec = desired.spec()?;
        let name = physical_name(desired.name()?, &desired.settings);
        let out = self
            .sagemaker
            .create_endpoint_config()
            .endpoint_config_name(&name)
            .production_variants(variant(&spec))
            .set_tags(Some(tags(cx)))
            .send()
            .await
            .map_err(|e| aws("sagemaker:CreateEndpointConfig", e))?;
        let outputs = serde_json::to_value(EndpointConfigOut {
            endpoint_config_name: name.clone(),
            endpoint_config_arn: out.endpoint_config_arn().unwrap_or_default().to_string(),
        })
        .map_err(|e| ResourceError::fatal(e.to_string()))?;
        Ok(Live::new(name, to_settings(&spec), outputs))
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(name) = record.physical_id.as_deref() else {
            return Ok(());
        };
        let Some(c) = self.describe(name).await? else {
            return Ok(());
        };
        let what = format!("SageMaker endpoint configuration {name}");
        ensure_ours(
            &self.sagemaker,
            cx,
            &what,
            c.endpoint_config_arn().unwrap_or_default(),
        )
        .await?;
        match self
            .sagemaker
            .delete_endpoint_config()
            .endpoint_config_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(aws("sagemaker:DeleteEndpointConfig", e)),
        }
    }
}
