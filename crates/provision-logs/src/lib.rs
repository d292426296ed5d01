//! CloudWatch Logs log groups as a resource kind: created tagged, with a retention, deleted
//! (with their logs) by `down`.
//!
//! DescribeLogGroups does not report tags. A group read under the name the state recorded is
//! taken as ours; one found without that (a lost reply) must carry our tags, and a delete
//! always checks them.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use serde::{Deserialize, Serialize};

fn aws<E, R>(operation: &str, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    provision_aws::classify(operation, err)
}

/// Every CloudWatch Logs kind.
pub struct LogsKinds {
    pub log_group: Arc<LogGroup>,
}

impl LogsKinds {
    pub fn new(client: Client) -> Self {
        LogsKinds {
            log_group: Arc::new(LogGroup { logs: client }),
        }
    }
    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        vec![self.log_group.clone()]
    }
}

/// A log group, named by its node.
pub struct LogGroup {
    logs: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogGroupSpec {
    /// Days events are kept; `None` keeps them forever.
    pub retention_in_days: Option<i32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogGroupOut {
    pub log_group_name: String,
    /// Without the `:*` suffix DescribeLogGroups' `arn` carries.
    pub log_group_arn: String,
}

fn group_arn(g: &aws_sdk_cloudwatchlogs::types::LogGroup) -> String {
    g.log_group_arn()
        .map(str::to_string)
        .or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string()))
        .unwrap_or_default()
}

fn live(g: &aws_sdk_cloudwatchlogs::types::LogGroup) -> Result<Live, ResourceError> {
    let name = g.log_group_name().unwrap_or_default();
    let spec = LogGroupSpec {
        retention_in_days: g.retention_in_days(),
    };
    let out = LogGroupOut {
        log_group_name: name.to_string(),
        log_group_arn: group_arn(g),
    };
    let value = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    Ok(Live::new(name, to_settings(&spec), value))
}

impl LogGroup {
    pub fn new(logs: Client) -> Self {
        LogGroup { logs }
    }

    /// The group of exactly this name, if it exists.
    async fn describe(
        &self,
        name: &str,
    ) -> Result<Option<aws_sdk_cloudwatchlogs::types::LogGroup>, ResourceError> {
        let out = self
            .logs
            .describe_log_groups()
            .log_group_name_prefix(name)
            .send()
            .await
            .map_err(|e| aws("logs:DescribeLogGroups", e))?;
        // Every group listed starts with the name and they come in name order, so the exact
        // name, if it exists, is on the first page.
        Ok(out
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(name))
            .cloned())
    }

    async fn ensure_ours(
        &self,
        cx: &Cx,
        g: &aws_sdk_cloudwatchlogs::types::LogGroup,
    ) -> Result<(), ResourceError> {
        let arn = group_arn(g);
        let out = self
            .logs
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(|e| aws("logs:ListTagsForResource", e))?;
        let pairs = out
            .tags()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        cx.ensure_ours(
            &format!("log group {}", g.log_group_name().unwrap_or("?")),
            pairs,
        )
    }

    async fn set_retention(&self, name: &str, days: Option<i32>) -> Result<(), ResourceError> {
        match days {
            Some(d) => self
                .logs
                .put_retention_policy()
                .log_group_name(name)
                .retention_in_days(d)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws("logs:PutRetentionPolicy", e)),
            None => self
                .logs
                .delete_retention_policy()
                .log_group_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws("logs:DeleteRetentionPolicy", e)),
        }
    }
}

#[async_trait]
impl Kind for LogGroup {
    fn name(&self) -> &'static str {
        "logs.log-group"
    }
    fn noun(&self) -> &'static str {
        "log group"
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let Some(name) = lookup.physical_id().or(lookup.recorded_name()) else {
            return Ok(None);
        };
        let Some(g) = self.describe(name).await? else {
            return Ok(None);
        };
        if lookup.physical_id().is_none() {
            self.ensure_ours(cx, &g).await?;
        }
        live(&g).map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: LogGroupSpec = desired.spec()?;
        let name = desired.name()?;
        let mut req = self.logs.create_log_group().log_group_name(name);
        for (k, v) in cx.tags() {
            req = req.tags(k, v);
        }
        // A retry after a lost reply fails with ResourceAlreadyExists; the engine then finds
        // the group by name and checks its tags.
        req.send()
            .await
            .map_err(|e| aws("logs:CreateLogGroup", e))?;
        let stack = cx.stack();
        let arn = format!(
            "arn:{}:logs:{}:{}:log-group:{name}",
            partition(&stack.region),
            stack.region,
            stack.account
        );
        let value = serde_json::to_value(LogGroupOut {
            log_group_name: name.to_string(),
            log_group_arn: arn,
        })
        .map_err(|e| ResourceError::fatal(e.to_string()))?;
        let live = Live::new(name, to_settings(&spec), value);
        cx.created(&live).await?;
        self.set_retention(name, spec.retention_in_days).await?;
        Ok(live)
    }

    async fn verify_owner(&self, cx: &Cx, live: &Live) -> Result<(), ResourceError> {
        match self.describe(&live.physical_id).await? {
            Some(g) => self.ensure_ours(cx, &g).await,
            None => Ok(()),
        }
    }

    async fn update(
        &self,
        _cx: &Cx,
        desired: &Desired,
        live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: LogGroupSpec = desired.spec()?;
        self.set_retention(&live.physical_id, spec.retention_in_days)
            .await?;
        let mut live = live.clone();
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(name) = record.physical_id.as_deref().or(record.name.as_deref()) else {
            return Ok(());
        };
        let Some(g) = self.describe(name).await? else {
            return Ok(());
        };
        self.ensure_ours(cx, &g).await?;
        match self
            .logs
            .delete_log_group()
            .log_group_name(name)
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
            Err(e) => Err(aws("logs:DeleteLogGroup", e)),
        }
    }
}

/// The partition of a region's ARNs.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_follow_the_partition() {
        assert_eq!(partition("eu-west-1"), "aws");
        assert_eq!(partition("cn-north-1"), "aws-cn");
    }

    #[test]
    fn retention_reads_as_a_setting() {
        let s = to_settings(&LogGroupSpec {
            retention_in_days: Some(30),
        });
        assert_eq!(s["retention_in_days"], 30);
        let forever = to_settings(&LogGroupSpec {
            retention_in_days: None,
        });
        assert!(forever["retention_in_days"].is_null());
    }
}
