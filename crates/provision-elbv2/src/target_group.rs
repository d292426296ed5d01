use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{
    Matcher, ProtocolEnum, TargetGroupAttribute, TargetTypeEnum,
};
use provision_aws::retry::{TARGET_GROUP_IN_USE, TRANSIENT, retry};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{aws, ensure_live_ours, ensure_ours, tags};

/// A target group, named by its node.
pub struct TargetGroup {
    elb: Client,
}

impl TargetGroup {
    pub fn new(elb: Client) -> Self {
        TargetGroup { elb }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TargetGroupSpec {
    /// `HTTP`.
    pub protocol: String,
    pub port: i32,
    pub vpc_id: String,
    /// `ip` for Fargate tasks.
    pub target_type: String,
    pub health_check_path: String,
    pub health_check_interval_seconds: i32,
    pub health_check_timeout_seconds: i32,
    pub healthy_threshold_count: i32,
    pub unhealthy_threshold_count: i32,
    /// HTTP codes that mean healthy (`200`).
    pub healthy_http_codes: String,
    /// How long a target being removed keeps its open requests. An attribute, which
    /// DescribeTargetGroups does not report: compared with what was applied.
    pub deregistration_delay_seconds: i32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TargetGroupOut {
    pub target_group_arn: String,
    pub target_group_name: String,
}

/// Settings that ModifyTargetGroup changes.
const HEALTH_CHECK: &[&str] = &[
    "health_check_path",
    "health_check_interval_seconds",
    "health_check_timeout_seconds",
    "healthy_threshold_count",
    "unhealthy_threshold_count",
    "healthy_http_codes",
];

fn tg_live(tg: &aws_sdk_elasticloadbalancingv2::types::TargetGroup) -> Result<Live, ResourceError> {
    let arn = tg
        .target_group_arn()
        .ok_or_else(|| ResourceError::fatal("ELB described a target group without its ARN"))?;
    let mut settings = serde_json::Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            settings.insert(k.to_string(), v);
        }
    };
    put("protocol", tg.protocol().map(|p| p.as_str().into()));
    put("port", tg.port().map(Value::from));
    put("vpc_id", tg.vpc_id().map(Value::from));
    put("target_type", tg.target_type().map(|t| t.as_str().into()));
    put("health_check_path", tg.health_check_path().map(Value::from));
    put(
        "health_check_interval_seconds",
        tg.health_check_interval_seconds().map(Value::from),
    );
    put(
        "health_check_timeout_seconds",
        tg.health_check_timeout_seconds().map(Value::from),
    );
    put(
        "healthy_threshold_count",
        tg.healthy_threshold_count().map(Value::from),
    );
    put(
        "unhealthy_threshold_count",
        tg.unhealthy_threshold_count().map(Value::from),
    );
    put(
        "healthy_http_codes",
        tg.matcher().and_then(|m| m.http_code()).map(Value::from),
    );
    let out = TargetGroupOut {
        target_group_arn: arn.to_string(),
        target_group_name: tg.target_group_name().unwrap_or_default().to_string(),
    };
    let value = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    Ok(Live::new(arn, settings, value))
}

impl TargetGroup {
    async fn describe_arn(
        &self,
        arn: &str,
    ) -> Result<Option<aws_sdk_elasticloadbalancingv2::types::TargetGroup>, ResourceError> {
        match self
            .elb
            .describe_target_groups()
            .target_group_arns(arn)
            .send()
            .await
        {
            Ok(out) => Ok(out.target_groups().first().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_target_group_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("elasticloadbalancing:DescribeTargetGroups", e)),
        }
    }

    async fn set_deregistration_delay(&self, arn: &str, seconds: i32) -> Result<(), ResourceError> {
        self.elb
            .modify_target_group_attributes()
            .target_group_arn(arn)
            .attributes(
                TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value(seconds.to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws("elasticloadbalancing:ModifyTargetGroupAttributes", e))?;
        Ok(())
    }
}

#[async_trait]
impl Kind for TargetGroup {
    fn name(&self) -> &'static str {
        "elbv2.target-group"
    }
    fn noun(&self) -> &'static str {
        "target group"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["protocol", "port", "vpc_id", "target_type"]
    }
    /// The stack names target groups after their fixed settings, so a replacement has a new
    /// name and can take over from the old one before it goes.
    fn create_before_delete(&self) -> bool {
        true
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        if let Some(arn) = lookup.physical_id() {
            return self
                .describe_arn(arn)
                .await?
                .as_ref()
                .map(tg_live)
                .transpose();
        }
        let Some(name) = lookup.recorded_name() else {
            return Ok(None);
        };
        let tg = match self.elb.describe_target_groups().names(name).send().await {
            Ok(out) => out.target_groups().first().cloned(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_target_group_not_found_exception()) =>
            {
                None
            }
            Err(e) => return Err(aws("elasticloadbalancing:DescribeTargetGroups", e)),
        };
        let Some(tg) = tg else { return Ok(None) };
        ensure_ours(
            &self.elb,
            cx,
            &format!("target group {name}"),
            tg.target_group_arn().unwrap_or_default(),
        )
        .await?;
        tg_live(&tg).map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: TargetGroupSpec = desired.spec()?;
        let name = desired.name()?;
        // A retry after a lost reply with the same name and settings returns the same group.
        let out = self
            .elb
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::from(spec.protocol.as_str()))
            .port(spec.port)
            .vpc_id(&spec.vpc_id)
            .target_type(TargetTypeEnum::from(spec.target_type.as_str()))
            .health_check_enabled(true)
            .health_check_path(&spec.health_check_path)
            .health_check_interval_seconds(spec.health_check_interval_seconds)
            .health_check_timeout_seconds(spec.health_check_timeout_seconds)
            .healthy_threshold_count(spec.healthy_threshold_count)
            .unhealthy_threshold_count(spec.unhealthy_threshold_count)
            .matcher(
                Matcher::builder()
                    .http_code(&spec.healthy_http_codes)
                    .build(),
            )
            .set_tags(Some(tags(cx)))
            .send()
            .await
            .map_err(|e| aws("elasticloadbalancing:CreateTargetGroup", e))?;
        let tg = out.target_groups().first().ok_or_else(|| {
            ResourceError::fatal("elasticloadbalancing:CreateTargetGroup returned no target group")
        })?;
        let mut live = tg_live(tg)?;
        live.settings = to_settings(&spec);
        cx.created(&live).await?;
        self.set_deregistration_delay(&live.physical_id, spec.deregistration_delay_seconds)
            .await?;
        Ok(live)
    }

    async fn verify_owner(&self, cx: &Cx, live: &Live) -> Result<(), ResourceError> {
        ensure_live_ours(&self.elb, cx, self.noun(), live).await
    }

    async fn update(
        &self,
        _cx: &Cx,
        desired: &Desired,
        live: &Live,
        changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: TargetGroupSpec = desired.spec()?;
        let arn = &live.physical_id;
        if changed.iter().any(|c| HEALTH_CHECK.contains(&c.as_str())) {
            self.elb
                .modify_target_group()
                .target_group_arn(arn)
                .health_check_path(&spec.health_check_path)
                .health_check_interval_seconds(spec.health_check_interval_seconds)
                .health_check_timeout_seconds(spec.health_check_timeout_seconds)
                .healthy_threshold_count(spec.healthy_threshold_count)
                .unhealthy_threshold_count(spec.unhealthy_threshold_count)
                .matcher(
                    Matcher::builder()
                        .http_code(&spec.healthy_http_codes)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| aws("elasticloadbalancing:ModifyTargetGroup", e))?;
        }
        if changed.iter().any(|c| c == "deregistration_delay_seconds") {
            self.set_deregistration_delay(arn, spec.deregistration_delay_seconds)
                .await?;
        }
        let mut live = live.clone();
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(arn) = record.physical_id.as_deref() else {
            return Ok(());
        };
        let Some(tg) = self.describe_arn(arn).await? else {
            return Ok(());
        };
        let name = tg.target_group_name().unwrap_or(arn).to_string();
        ensure_ours(&self.elb, cx, &format!("target group {name}"), arn).await?;
        // The listeners and rules that used it were deleted just before; ELB takes a moment
        // to let go of it.
        retry(cx, &[&TARGET_GROUP_IN_USE, &TRANSIENT], || async {
            match self
                .elb
                .delete_target_group()
                .target_group_arn(arn)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                // Gone already: an earlier attempt whose reply was lost deleted it. (Not a
                // modelled error of this operation, so by its code.)
                Err(e) if e.code() == Some("TargetGroupNotFound") => Ok(()),
                Err(e) => Err(aws("elasticloadbalancing:DeleteTargetGroup", e)),
            }
        })
        .await
    }
}
