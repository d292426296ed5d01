//! Application load balancers as resource kinds: the load balancer, target groups, listeners
//! and listener rules, each readable in one Describe call.
//!
//! Describe calls do not report tags (DescribeTags is a call of its own). A resource read by
//! the ARN the state recorded is taken as ours (the state recorded creating it); one found any
//! other way (by name, or by load balancer and port, after a crash lost a reply) must carry our
//! tags, and a delete always checks them.

use std::sync::Arc;

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, RedirectActionConfig,
    RedirectActionStatusCodeEnum, RuleCondition, SourceIpConditionConfig, Tag, TargetGroupTuple,
};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use provision_core::resource::{Cx, Kind, ResourceError};
use serde::{Deserialize, Serialize};

mod listener;
mod load_balancer;
mod target_group;

pub use listener::{
    Listener, ListenerOut, ListenerRule, ListenerRuleOut, ListenerRuleSpec, ListenerSpec,
};
pub use load_balancer::{LoadBalancer, LoadBalancerOut, LoadBalancerSpec};
pub use target_group::{TargetGroup, TargetGroupOut, TargetGroupSpec};

pub(crate) fn aws<E, R>(operation: &str, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    provision_aws::classify(operation, err)
}

/// Every ELBv2 kind, sharing one client.
pub struct Elbv2Kinds {
    pub load_balancer: Arc<LoadBalancer>,
    pub target_group: Arc<TargetGroup>,
    pub listener: Arc<Listener>,
    pub listener_rule: Arc<ListenerRule>,
}

impl Elbv2Kinds {
    pub fn new(client: Client) -> Self {
        Elbv2Kinds {
            load_balancer: Arc::new(LoadBalancer::new(client.clone())),
            target_group: Arc::new(TargetGroup::new(client.clone())),
            listener: Arc::new(Listener::new(client.clone())),
            listener_rule: Arc::new(ListenerRule::new(client)),
        }
    }

    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        vec![
            self.load_balancer.clone(),
            self.target_group.clone(),
            self.listener.clone(),
            self.listener_rule.clone(),
        ]
    }
}

/// The ownership tags for a create call.
/// A config override for creates that must not be retried blindly by the SDK: AWS makes them
/// idempotent, but an emulator may make a second resource, so the engine retries them after
/// looking for the first.
pub(crate) fn no_retry() -> aws_sdk_elasticloadbalancingv2::config::Builder {
    aws_sdk_elasticloadbalancingv2::config::Builder::default()
        .retry_config(aws_sdk_elasticloadbalancingv2::config::retry::RetryConfig::disabled())
}

pub(crate) fn tags(cx: &Cx) -> Vec<Tag> {
    cx.tags()
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// [`ensure_ours`] for a live resource, by its ARN.
pub(crate) async fn ensure_live_ours(
    elb: &Client,
    cx: &Cx,
    noun: &str,
    live: &provision_core::resource::Live,
) -> Result<(), ResourceError> {
    let what = format!("{noun} {}", live.physical_id);
    ensure_ours(elb, cx, &what, &live.physical_id).await
}

/// Checks the tags of an ELBv2 resource say it is this one of this stack.
pub(crate) async fn ensure_ours(
    elb: &Client,
    cx: &Cx,
    what: &str,
    arn: &str,
) -> Result<(), ResourceError> {
    let out = elb
        .describe_tags()
        .resource_arns(arn)
        .send()
        .await
        .map_err(|e| aws("elasticloadbalancing:DescribeTags", e))?;
    let tags: Vec<(&str, &str)> = out
        .tag_descriptions()
        .iter()
        .filter(|d| d.resource_arn() == Some(arn))
        .flat_map(|d| {
            d.tags()
                .iter()
                .filter_map(|t| Some((t.key()?, t.value().unwrap_or_default())))
        })
        .collect();
    cx.ensure_ours(what, tags)
}

/// What a listener or rule does with a request, in the plan's words.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ListenerAction {
    /// Send the request to a target group.
    Forward { target_group_arn: String },
    /// Answer with a redirect. Every part is spelled out (`#{host}` keeps it as it was), so
    /// what AWS reports back is what was sent.
    Redirect {
        protocol: String,
        port: String,
        host: String,
        path: String,
        query: String,
        /// `HTTP_301` or `HTTP_302`.
        status_code: String,
    },
    /// Something provision does not configure (a weighted forward, a fixed response), as
    /// AWS reported it: always a change from what provision wants.
    Other { description: String },
}

impl ListenerAction {
    /// A permanent redirect of any request to the same place over HTTPS.
    pub fn redirect_to_https() -> Self {
        ListenerAction::Redirect {
            protocol: "HTTPS".into(),
            port: "443".into(),
            host: "#{host}".into(),
            path: "/#{path}".into(),
            query: "#{query}".into(),
            status_code: "HTTP_301".into(),
        }
    }

    pub(crate) fn to_sdk(&self) -> Action {
        match self {
            ListenerAction::Forward { target_group_arn } => Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .forward_config(
                    ForwardActionConfig::builder()
                        .target_groups(
                            TargetGroupTuple::builder()
                                .target_group_arn(target_group_arn)
                                .weight(1)
                                .build(),
                        )
                        .build(),
                )
                .build(),
            ListenerAction::Redirect {
                protocol,
                port,
                host,
                path,
                query,
                status_code,
            } => Action::builder()
                .r#type(ActionTypeEnum::Redirect)
                .redirect_config(
                    RedirectActionConfig::builder()
                        .protocol(protocol)
                        .port(port)
                        .host(host)
                        .path(path)
                        .query(query)
                        .status_code(RedirectActionStatusCodeEnum::from(status_code.as_str()))
                        .build(),
                )
                .build(),
            // Never sent: provision only asks for the two above.
            ListenerAction::Other { .. } => Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .build(),
        }
    }

    pub(crate) fn from_sdk(a: &Action) -> Self {
        match a.r#type() {
            Some(ActionTypeEnum::Forward) => {
                let tuples = a
                    .forward_config()
                    .map(|f| f.target_groups())
                    .unwrap_or_default();
                let arn = a.target_group_arn().or_else(|| match tuples {
                    [only] => only.target_group_arn(),
                    _ => None,
                });
                match arn {
                    Some(arn) if tuples.len() <= 1 => ListenerAction::Forward {
                        target_group_arn: arn.to_string(),
                    },
                    _ => ListenerAction::Other {
                        description: format!("forward to {} target groups", tuples.len()),
                    },
                }
            }
            Some(ActionTypeEnum::Redirect) => {
                let c = a.redirect_config();
                let part = |v: Option<&str>| v.unwrap_or_default().to_string();
                ListenerAction::Redirect {
                    protocol: part(c.and_then(|c| c.protocol())),
                    port: part(c.and_then(|c| c.port())),
                    host: part(c.and_then(|c| c.host())),
                    path: part(c.and_then(|c| c.path())),
                    query: part(c.and_then(|c| c.query())),
                    status_code: part(c.and_then(|c| c.status_code()).map(|s| s.as_str())),
                }
            }
            other => ListenerAction::Other {
                description: other.map(|t| t.as_str()).unwrap_or("unknown").to_string(),
            },
        }
    }
}

/// A rule's condition, in the plan's words.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(tag = "field", rename_all = "kebab-case")]
pub enum RuleConditionSpec {
    /// The client's address (the TCP peer of the load balancer: never a header a client
    /// can write) is in one of these CIDR blocks.
    SourceIp { values: Vec<String> },
    /// Anything provision does not configure, as AWS reported it.
    Other { name: String, values: Vec<String> },
}

impl RuleConditionSpec {
    pub fn source_ip(cidrs: &[&str]) -> Self {
        let mut values: Vec<String> = cidrs.iter().map(|c| c.to_string()).collect();
        values.sort();
        RuleConditionSpec::SourceIp { values }
    }

    pub(crate) fn to_sdk(&self) -> RuleCondition {
        match self {
            RuleConditionSpec::SourceIp { values } => RuleCondition::builder()
                .field("source-ip")
                .source_ip_config(
                    SourceIpConditionConfig::builder()
                        .set_values(Some(values.clone()))
                        .build(),
                )
                .build(),
            RuleConditionSpec::Other { name, values } => RuleCondition::builder()
                .field(name)
                .set_values(Some(values.clone()))
                .build(),
        }
    }

    pub(crate) fn from_sdk(c: &RuleCondition) -> Self {
        let field = c.field().unwrap_or_default();
        match field {
            "source-ip" => {
                let mut values: Vec<String> = match c.source_ip_config() {
                    Some(s) if !s.values().is_empty() => s.values().to_vec(),
                    _ => c.values().to_vec(),
                };
                values.sort();
                RuleConditionSpec::SourceIp { values }
            }
            other => RuleConditionSpec::Other {
                name: other.to_string(),
                values: c.values().to_vec(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_back_as_sent() {
        for action in [
            ListenerAction::redirect_to_https(),
            ListenerAction::Forward {
                target_group_arn: "arn:tg".into(),
            },
        ] {
            assert_eq!(ListenerAction::from_sdk(&action.to_sdk()), action);
        }
        // AWS reports a plain forward with both the ARN and a one-group forward config.
        let reported = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn("arn:tg")
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn("arn:tg")
                            .weight(1)
                            .build(),
                    )
                    .build(),
            )
            .build();
        assert_eq!(
            ListenerAction::from_sdk(&reported),
            ListenerAction::Forward {
                target_group_arn: "arn:tg".into()
            }
        );
    }

    #[test]
    fn conditions_read_back_as_sent() {
        let c = RuleConditionSpec::source_ip(&["192.0.2.1/32"]);
        assert_eq!(RuleConditionSpec::from_sdk(&c.to_sdk()), c);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"field": "source-ip", "values": ["192.0.2.1/32"]})
        );
    }
}
