//! IAM roles as resource kinds: the role (with its trust policy), its inline policy, and its
//! managed policy attachments, each readable in one call. Also the policy documents the stack
//! needs, built as data so they can be tested without AWS.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_iam::Client;
use aws_sdk_iam::types::Tag;
use provision_aws::retry::{CONFLICT, IAM_PROPAGATION, retry};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub mod policy;

fn aws<E, R>(
    operation: &str,
    err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> ResourceError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    provision_aws::classify(operation, err)
}

/// A policy document as IAM returns it: URL-encoded JSON (some emulators send it plain).
pub fn decode_document(s: &str) -> Value {
    let decoded = percent_decode(s);
    serde_json::from_str(&decoded).unwrap_or(Value::String(decoded))
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every IAM kind, sharing one client.
pub struct IamKinds {
    pub role: Arc<Role>,
    pub role_policy: Arc<RolePolicy>,
    pub managed_policies: Arc<ManagedPolicies>,
}

impl IamKinds {
    pub fn new(client: Client) -> Self {
        IamKinds {
            role: Arc::new(Role {
                iam: client.clone(),
            }),
            role_policy: Arc::new(RolePolicy {
                iam: client.clone(),
            }),
            managed_policies: Arc::new(ManagedPolicies { iam: client }),
        }
    }
    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        vec![
            self.role.clone(),
            self.role_policy.clone(),
            self.managed_policies.clone(),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Role

pub struct Role {
    iam: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RoleSpec {
    /// Who may assume it (`{"Version": ..., "Statement": [...]}`).
    pub assume_role_policy: Value,
    pub description: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RoleOut {
    pub role_name: String,
    pub role_arn: String,
}

fn role_live(r: &aws_sdk_iam::types::Role) -> Result<Live, ResourceError> {
    let spec = RoleSpec {
        assume_role_policy: r
            .assume_role_policy_document()
            .map(decode_document)
            .unwrap_or(Value::Null),
        description: r.description().unwrap_or_default().to_string(),
    };
    let out = RoleOut {
        role_name: r.role_name().to_string(),
        role_arn: r.arn().to_string(),
    };
    let value = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    Ok(Live::new(r.role_name(), to_settings(&spec), value))
}

fn role_tags(r: &aws_sdk_iam::types::Role) -> impl Iterator<Item = (&str, &str)> {
    r.tags().iter().map(|t| (t.key(), t.value()))
}

impl Role {
    async fn get(&self, name: &str) -> Result<Option<aws_sdk_iam::types::Role>, ResourceError> {
        match self.iam.get_role().role_name(name).send().await {
            Ok(out) => Ok(out.role().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("iam:GetRole", e)),
        }
    }
}

#[async_trait]
impl Kind for Role {
    fn name(&self) -> &'static str {
        "iam.role"
    }
    fn noun(&self) -> &'static str {
        "IAM role"
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let Some(name) = lookup.physical_id().or(lookup.recorded_name()) else {
            return Ok(None);
        };
        let Some(r) = self.get(name).await? else {
            return Ok(None);
        };
        cx.ensure_ours(&format!("IAM role {name}"), role_tags(&r))?;
        role_live(&r).map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: RoleSpec = desired.spec()?;
        let name = desired.name()?;
        let mut req = self
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(spec.assume_role_policy.to_string())
            .description(&spec.description);
        for (k, v) in cx.tags() {
            req = req.tags(
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| ResourceError::fatal(e.to_string()))?,
            );
        }
        // A name collision (a lost reply retried) fails with EntityAlreadyExists, and the engine
        // then finds the role by name.
        let out = req.send().await.map_err(|e| aws("iam:CreateRole", e))?;
        let r = out
            .role()
            .ok_or_else(|| ResourceError::fatal("iam:CreateRole returned no role"))?;
        let mut live = role_live(r)?;
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn update(
        &self,
        _cx: &Cx,
        desired: &Desired,
        live: &Live,
        changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: RoleSpec = desired.spec()?;
        if changed.iter().any(|c| c == "assume_role_policy") {
            self.iam
                .update_assume_role_policy()
                .role_name(&live.physical_id)
                .policy_document(spec.assume_role_policy.to_string())
                .send()
                .await
                .map_err(|e| aws("iam:UpdateAssumeRolePolicy", e))?;
        }
        if changed.iter().any(|c| c == "description") {
            self.iam
                .update_role()
                .role_name(&live.physical_id)
                .description(&spec.description)
                .send()
                .await
                .map_err(|e| aws("iam:UpdateRole", e))?;
        }
        let mut live = live.clone();
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(name) = record.physical_id.as_deref() else {
            return Ok(());
        };
        let Some(r) = self.get(name).await? else {
            return Ok(());
        };
        cx.ensure_ours(&format!("IAM role {name}"), role_tags(&r))?;
        // IAM refuses to delete a role that still has policies; the stack's own policy
        // resources go first, so anything left was added by hand to our role.
        let inline = self
            .iam
            .list_role_policies()
            .role_name(name)
            .send()
            .await
            .map_err(|e| aws("iam:ListRolePolicies", e))?;
        for p in inline.policy_names() {
            cx.progress(format!("removing inline policy {p} from role {name}"));
            self.iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(p)
                .send()
                .await
                .map_err(|e| aws("iam:DeleteRolePolicy", e))?;
        }
        let attached = self
            .iam
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
            .map_err(|e| aws("iam:ListAttachedRolePolicies", e))?;
        for p in attached.attached_policies() {
            if let Some(arn) = p.policy_arn() {
                self.iam
                    .detach_role_policy()
                    .role_name(name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map_err(|e| aws("iam:DetachRolePolicy", e))?;
            }
        }
        match self.iam.delete_role().role_name(name).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws("iam:DeleteRole", e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inline policy

pub struct RolePolicy {
    iam: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RolePolicySpec {
    pub role_name: String,
    pub policy_name: String,
    pub document: Value,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RolePolicyOut {
    pub role_name: String,
    pub policy_name: String,
}

impl RolePolicy {
    fn live(spec: &RolePolicySpec) -> Result<Live, ResourceError> {
        let value = serde_json::to_value(RolePolicyOut {
            role_name: spec.role_name.clone(),
            policy_name: spec.policy_name.clone(),
        })
        .map_err(|e| ResourceError::fatal(e.to_string()))?;
        Ok(Live::new(
            format!("{}/{}", spec.role_name, spec.policy_name),
            to_settings(spec),
            value,
        ))
    }

    async fn put(&self, cx: &Cx, spec: &RolePolicySpec) -> Result<Live, ResourceError> {
        let document = spec.document.to_string();
        // The role may be a moment old; another change to it may be in progress.
        retry(cx, &[&IAM_PROPAGATION, &CONFLICT], || async {
            self.iam
                .put_role_policy()
                .role_name(&spec.role_name)
                .policy_name(&spec.policy_name)
                .policy_document(&document)
                .send()
                .await
                .map_err(|e| aws("iam:PutRolePolicy", e))
        })
        .await?;
        Self::live(spec)
    }
}

#[async_trait]
impl Kind for RolePolicy {
    fn name(&self) -> &'static str {
        "iam.role-policy"
    }
    fn noun(&self) -> &'static str {
        "IAM inline policy"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["role_name", "policy_name"]
    }

    async fn read(&self, _cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let Some(spec) = lookup.recorded_settings::<RolePolicySpec>() else {
            return Ok(None);
        };
        match self
            .iam
            .get_role_policy()
            .role_name(&spec.role_name)
            .policy_name(&spec.policy_name)
            .send()
            .await
        {
            Ok(out) => {
                let live = RolePolicySpec {
                    document: decode_document(out.policy_document()),
                    ..spec
                };
                Self::live(&live).map(Some)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("iam:GetRolePolicy", e)),
        }
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        // PutRolePolicy is idempotent: a retry after a lost reply writes the same document.
        self.put(cx, &desired.spec()?).await
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        _live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        self.put(cx, &desired.spec()?).await
    }

    async fn delete(&self, _cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Ok(spec) =
            serde_json::from_value::<RolePolicySpec>(Value::Object(record.settings.clone()))
        else {
            return Ok(());
        };
        match self
            .iam
            .delete_role_policy()
            .role_name(&spec.role_name)
            .policy_name(&spec.policy_name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws("iam:DeleteRolePolicy", e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Managed policy attachments

/// The set of AWS managed (or customer managed) policies attached to a role, exactly.
pub struct ManagedPolicies {
    iam: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ManagedPoliciesSpec {
    pub role_name: String,
    pub policy_arns: BTreeSet<String>,
}

impl ManagedPolicies {
    fn live(spec: &ManagedPoliciesSpec) -> Live {
        Live::new(
            format!("{}/managed-policies", spec.role_name),
            to_settings(spec),
            json!({ "role_name": spec.role_name }),
        )
    }

    async fn attached(&self, role: &str) -> Result<Option<BTreeSet<String>>, ResourceError> {
        match self
            .iam
            .list_attached_role_policies()
            .role_name(role)
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn().map(str::to_string))
                    .collect(),
            )),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("iam:ListAttachedRolePolicies", e)),
        }
    }

    async fn converge(
        &self,
        cx: &Cx,
        spec: &ManagedPoliciesSpec,
        have: &BTreeSet<String>,
    ) -> Result<Live, ResourceError> {
        for arn in spec.policy_arns.difference(have) {
            // The role may be a moment old; IAM refuses concurrent changes to one role.
            retry(cx, &[&IAM_PROPAGATION, &CONFLICT], || async {
                self.iam
                    .attach_role_policy()
                    .role_name(&spec.role_name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        let mut err = aws("iam:AttachRolePolicy", e);
                        if err.code.as_deref() == Some("NoSuchEntity")
                            && !err.message.contains("The role with name")
                        {
                            err.hint = Some(format!("the managed policy {arn} does not exist; check its ARN (names are case-sensitive)"));
                        }
                        err
                    })
            })
            .await?;
        }
        for arn in have.difference(&spec.policy_arns) {
            retry(cx, &[&CONFLICT], || async {
                self.iam
                    .detach_role_policy()
                    .role_name(&spec.role_name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws("iam:DetachRolePolicy", e))
            })
            .await?;
        }
        Ok(Self::live(spec))
    }
}

#[async_trait]
impl Kind for ManagedPolicies {
    fn name(&self) -> &'static str {
        "iam.managed-policies"
    }
    fn noun(&self) -> &'static str {
        "IAM policy attachments"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["role_name"]
    }

    async fn read(&self, _cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let Some(spec) = lookup.recorded_settings::<ManagedPoliciesSpec>() else {
            return Ok(None);
        };
        Ok(self.attached(&spec.role_name).await?.map(|arns| {
            Self::live(&ManagedPoliciesSpec {
                role_name: spec.role_name,
                policy_arns: arns,
            })
        }))
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: ManagedPoliciesSpec = desired.spec()?;
        let have = self.attached(&spec.role_name).await?.unwrap_or_default();
        self.converge(cx, &spec, &have).await
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: ManagedPoliciesSpec = desired.spec()?;
        let have: BTreeSet<String> = live
            .settings
            .get("policy_arns")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        self.converge(cx, &spec, &have).await
    }

    async fn delete(&self, _cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Ok(spec) =
            serde_json::from_value::<ManagedPoliciesSpec>(Value::Object(record.settings.clone()))
        else {
            return Ok(());
        };
        let Some(have) = self.attached(&spec.role_name).await? else {
            return Ok(());
        };
        for arn in have.intersection(&spec.policy_arns) {
            match self
                .iam
                .detach_role_policy()
                .role_name(&spec.role_name)
                .policy_arn(arn)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_no_such_entity_exception()) => {}
                Err(e) => return Err(aws("iam:DetachRolePolicy", e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_iam_documents() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        assert_eq!(
            decode_document(encoded),
            json!({"Version": "2012-10-17", "Statement": []})
        );
        // Already plain JSON (some emulators do not encode).
        assert_eq!(decode_document("{\"a\": 1}"), json!({"a": 1}));
    }
}
