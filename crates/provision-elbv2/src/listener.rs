use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{Certificate, ProtocolEnum, RulePriorityPair};
use provision_aws::retry::{CERTIFICATE_PROPAGATION, retry};
use provision_core::resource::{
    Cx, Desired, ErrorClass, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use serde::{Deserialize, Serialize};

use crate::{
    ListenerAction, RuleConditionSpec, aws, ensure_live_ours, ensure_ours, no_retry, tags,
};

// ---------------------------------------------------------------------------------------------
// Listener

/// A listener on a load balancer's port.
pub struct Listener {
    elb: Client,
}

impl Listener {
    pub fn new(elb: Client) -> Self {
        Listener { elb }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ListenerSpec {
    pub load_balancer_arn: String,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    pub port: i32,
    /// HTTPS only: which TLS versions and ciphers clients may use.
    pub ssl_policy: Option<String>,
    /// HTTPS only: the certificate it presents.
    pub certificate_arn: Option<String>,
    /// What it does with a request no rule matches.
    pub default_action: ListenerAction,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ListenerOut {
    pub listener_arn: String,
    pub load_balancer_arn: String,
    pub port: i32,
}

fn listener_live(
    l: &aws_sdk_elasticloadbalancingv2::types::Listener,
) -> Result<Live, ResourceError> {
    let arn = l
        .listener_arn()
        .ok_or_else(|| ResourceError::fatal("ELB described a listener without its ARN"))?;
    let protocol = l
        .protocol()
        .map(|p| p.as_str())
        .unwrap_or_default()
        .to_string();
    let secure = protocol == "HTTPS";
    let default_action = match l.default_actions() {
        [one] => ListenerAction::from_sdk(one),
        many => ListenerAction::Other {
            description: format!("{} default actions", many.len()),
        },
    };
    let spec = ListenerSpec {
        load_balancer_arn: l.load_balancer_arn().unwrap_or_default().to_string(),
        port: l.port().unwrap_or_default(),
        // Some emulators report a policy for plain HTTP listeners too; it means nothing there.
        ssl_policy: if secure {
            l.ssl_policy().map(str::to_string)
        } else {
            None
        },
        certificate_arn: if secure {
            l.certificates()
                .iter()
                .find(|c| c.is_default() != Some(false))
                .and_then(|c| c.certificate_arn())
                .map(str::to_string)
        } else {
            None
        },
        protocol,
        default_action,
    };
    let out = ListenerOut {
        listener_arn: arn.to_string(),
        load_balancer_arn: spec.load_balancer_arn.clone(),
        port: spec.port,
    };
    let value = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    Ok(Live::new(arn, to_settings(&spec), value))
}

impl Listener {
    async fn describe_arn(
        &self,
        arn: &str,
    ) -> Result<Option<aws_sdk_elasticloadbalancingv2::types::Listener>, ResourceError> {
        match self
            .elb
            .describe_listeners()
            .listener_arns(arn)
            .send()
            .await
        {
            Ok(out) => Ok(out.listeners().first().cloned()),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_listener_not_found_exception() || s.is_load_balancer_not_found_exception()
                }) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("elasticloadbalancing:DescribeListeners", e)),
        }
    }
}

#[async_trait]
impl Kind for Listener {
    fn name(&self) -> &'static str {
        "elbv2.listener"
    }
    fn noun(&self) -> &'static str {
        "listener"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["load_balancer_arn"]
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        if let Some(arn) = lookup.physical_id() {
            return self
                .describe_arn(arn)
                .await?
                .as_ref()
                .map(listener_live)
                .transpose();
        }
        // Only an intent was recorded: a lost reply may hide the listener on its port.
        let Some(spec) = lookup.recorded_settings::<ListenerSpec>() else {
            return Ok(None);
        };
        let listeners = match self
            .elb
            .describe_listeners()
            .load_balancer_arn(&spec.load_balancer_arn)
            .send()
            .await
        {
            Ok(out) => out.listeners().to_vec(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_load_balancer_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(aws("elasticloadbalancing:DescribeListeners", e)),
        };
        let Some(l) = listeners.iter().find(|l| l.port() == Some(spec.port)) else {
            return Ok(None);
        };
        let arn = l.listener_arn().unwrap_or_default();
        ensure_ours(
            &self.elb,
            cx,
            &format!("listener {arn} on port {}", spec.port),
            arn,
        )
        .await?;
        listener_live(l).map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: ListenerSpec = desired.spec()?;
        // A second listener on the port fails with DuplicateListener; the engine then finds
        // the first by its port and tags.
        // A certificate issued moments ago may not have reached ELB yet.
        let out = retry(cx, &[&CERTIFICATE_PROPAGATION], || async {
            self.elb
                .create_listener()
                .load_balancer_arn(&spec.load_balancer_arn)
                .protocol(ProtocolEnum::from(spec.protocol.as_str()))
                .port(spec.port)
                .set_ssl_policy(spec.ssl_policy.clone())
                .set_certificates(
                    spec.certificate_arn
                        .as_ref()
                        .map(|c| vec![Certificate::builder().certificate_arn(c).build()]),
                )
                .default_actions(spec.default_action.to_sdk())
                .set_tags(Some(tags(cx)))
                // As for load balancers: the engine's retry looks by port and tags first.
                .customize()
                .config_override(no_retry())
                .send()
                .await
                .map_err(|e| aws("elasticloadbalancing:CreateListener", e))
        })
        .await?;
        let l = out.listeners().first().ok_or_else(|| {
            ResourceError::fatal("elasticloadbalancing:CreateListener returned no listener")
        })?;
        let mut live = listener_live(l)?;
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn verify_owner(&self, cx: &Cx, live: &Live) -> Result<(), ResourceError> {
        ensure_live_ours(&self.elb, cx, self.noun(), live).await
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: ListenerSpec = desired.spec()?;
        // A certificate issued moments ago may not have reached ELB yet.
        retry(cx, &[&CERTIFICATE_PROPAGATION], || async {
            self.elb
                .modify_listener()
                .listener_arn(&live.physical_id)
                .protocol(ProtocolEnum::from(spec.protocol.as_str()))
                .port(spec.port)
                .set_ssl_policy(spec.ssl_policy.clone())
                .set_certificates(
                    spec.certificate_arn
                        .as_ref()
                        .map(|c| vec![Certificate::builder().certificate_arn(c).build()]),
                )
                .default_actions(spec.default_action.to_sdk())
                .send()
                .await
                .map_err(|e| aws("elasticloadbalancing:ModifyListener", e))
        })
        .await?;
        let mut live = live.clone();
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(arn) = record.physical_id.as_deref() else {
            return Ok(());
        };
        if self.describe_arn(arn).await?.is_none() {
            return Ok(());
        }
        ensure_ours(&self.elb, cx, &format!("listener {arn}"), arn).await?;
        match self.elb.delete_listener().listener_arn(arn).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_listener_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws("elasticloadbalancing:DeleteListener", e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Listener rule

/// A rule of a listener: requests matching every condition get the action.
pub struct ListenerRule {
    elb: Client,
}

impl ListenerRule {
    pub fn new(elb: Client) -> Self {
        ListenerRule { elb }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ListenerRuleSpec {
    pub listener_arn: String,
    /// Rules are evaluated lowest first; unique per listener.
    pub priority: i32,
    /// Sorted; all must match.
    pub conditions: Vec<RuleConditionSpec>,
    pub action: ListenerAction,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ListenerRuleOut {
    pub rule_arn: String,
    pub listener_arn: String,
}

fn rule_live(
    listener_arn: &str,
    r: &aws_sdk_elasticloadbalancingv2::types::Rule,
) -> Result<Live, ResourceError> {
    let arn = r
        .rule_arn()
        .ok_or_else(|| ResourceError::fatal("ELB described a rule without its ARN"))?;
    let mut conditions: Vec<RuleConditionSpec> = r
        .conditions()
        .iter()
        .map(RuleConditionSpec::from_sdk)
        .collect();
    conditions.sort();
    let action = match r.actions() {
        [one] => ListenerAction::from_sdk(one),
        many => ListenerAction::Other {
            description: format!("{} actions", many.len()),
        },
    };
    let mut settings = serde_json::Map::new();
    settings.insert("listener_arn".into(), serde_json::json!(listener_arn));
    // Only the default rule has no number; a rule of ours always has one.
    if let Some(p) = r.priority().and_then(|p| p.parse::<i32>().ok()) {
        settings.insert("priority".into(), serde_json::json!(p));
    }
    settings.insert(
        "conditions".into(),
        serde_json::to_value(&conditions).map_err(|e| ResourceError::fatal(e.to_string()))?,
    );
    settings.insert(
        "action".into(),
        serde_json::to_value(&action).map_err(|e| ResourceError::fatal(e.to_string()))?,
    );
    let value = serde_json::to_value(ListenerRuleOut {
        rule_arn: arn.to_string(),
        listener_arn: listener_arn.to_string(),
    })
    .map_err(|e| ResourceError::fatal(e.to_string()))?;
    Ok(Live::new(arn, settings, value))
}

/// The listener of a rule, from the rule's ARN (`...:listener-rule/app/<lb>/<id>/<listener>/<rule>`).
fn listener_of(rule_arn: &str) -> Option<String> {
    let (prefix, rest) = rule_arn.split_once(":listener-rule/")?;
    let (listener, _) = rest.rsplit_once('/')?;
    Some(format!("{prefix}:listener/{listener}"))
}

impl ListenerRule {
    async fn describe_arn(
        &self,
        arn: &str,
    ) -> Result<Option<aws_sdk_elasticloadbalancingv2::types::Rule>, ResourceError> {
        match self.elb.describe_rules().rule_arns(arn).send().await {
            Ok(out) => Ok(out.rules().first().cloned()),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_rule_not_found_exception() || s.is_listener_not_found_exception()
                }) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("elasticloadbalancing:DescribeRules", e)),
        }
    }
}

#[async_trait]
impl Kind for ListenerRule {
    fn name(&self) -> &'static str {
        "elbv2.listener-rule"
    }
    fn noun(&self) -> &'static str {
        "listener rule"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["listener_arn"]
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let recorded = lookup.recorded_settings::<ListenerRuleSpec>();
        if let Some(arn) = lookup.physical_id() {
            let listener = recorded
                .as_ref()
                .map(|s| s.listener_arn.clone())
                .or_else(|| listener_of(arn))
                .unwrap_or_default();
            return self
                .describe_arn(arn)
                .await?
                .as_ref()
                .map(|r| rule_live(&listener, r))
                .transpose();
        }
        // Only an intent was recorded: a lost reply may hide the rule at its priority.
        let Some(spec) = recorded else {
            return Ok(None);
        };
        let rules = match self
            .elb
            .describe_rules()
            .listener_arn(&spec.listener_arn)
            .send()
            .await
        {
            Ok(out) => out.rules().to_vec(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_listener_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(aws("elasticloadbalancing:DescribeRules", e)),
        };
        let wanted = spec.priority.to_string();
        let Some(r) = rules.iter().find(|r| r.priority() == Some(wanted.as_str())) else {
            return Ok(None);
        };
        let arn = r.rule_arn().unwrap_or_default();
        ensure_ours(
            &self.elb,
            cx,
            &format!("listener rule {arn} (priority {wanted})"),
            arn,
        )
        .await?;
        rule_live(&spec.listener_arn, r).map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: ListenerRuleSpec = desired.spec()?;
        let out = self
            .elb
            .create_rule()
            .listener_arn(&spec.listener_arn)
            .priority(spec.priority)
            .set_conditions(Some(
                spec.conditions
                    .iter()
                    .map(RuleConditionSpec::to_sdk)
                    .collect(),
            ))
            .actions(spec.action.to_sdk())
            .set_tags(Some(tags(cx)))
            .send()
            .await
            .map_err(|e| {
                let in_use = e
                    .as_service_error()
                    .is_some_and(|s| s.is_priority_in_use_exception());
                let mut err = aws("elasticloadbalancing:CreateRule", e);
                // Taken: by this rule (a lost reply) or by someone else's; the engine looks.
                if in_use {
                    err.class = ErrorClass::AlreadyExists;
                }
                err
            })?;
        let r = out.rules().first().ok_or_else(|| {
            ResourceError::fatal("elasticloadbalancing:CreateRule returned no rule")
        })?;
        let mut live = rule_live(&spec.listener_arn, r)?;
        live.settings = to_settings(&spec);
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
        let spec: ListenerRuleSpec = desired.spec()?;
        let arn = &live.physical_id;
        if changed.iter().any(|c| c == "priority") {
            self.elb
                .set_rule_priorities()
                .rule_priorities(
                    RulePriorityPair::builder()
                        .rule_arn(arn)
                        .priority(spec.priority)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| aws("elasticloadbalancing:SetRulePriorities", e))?;
        }
        if changed.iter().any(|c| c == "conditions" || c == "action") {
            self.elb
                .modify_rule()
                .rule_arn(arn)
                .set_conditions(Some(
                    spec.conditions
                        .iter()
                        .map(RuleConditionSpec::to_sdk)
                        .collect(),
                ))
                .actions(spec.action.to_sdk())
                .send()
                .await
                .map_err(|e| aws("elasticloadbalancing:ModifyRule", e))?;
        }
        let mut live = live.clone();
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(arn) = record.physical_id.as_deref() else {
            return Ok(());
        };
        if self.describe_arn(arn).await?.is_none() {
            return Ok(());
        }
        ensure_ours(&self.elb, cx, &format!("listener rule {arn}"), arn).await?;
        match self.elb.delete_rule().rule_arn(arn).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_rule_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws("elasticloadbalancing:DeleteRule", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_names_its_listener() {
        let rule = "arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/lb/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
        assert_eq!(
            listener_of(rule).as_deref(),
            Some(
                "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/lb/50dc6c495c0c9188/f2f7dc8efc522ab2"
            )
        );
        assert_eq!(listener_of("arn:nothing"), None);
    }
}
