use async_trait::async_trait;
use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability, Tag};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{aws, partition};

/// An ECR repository the stack creates, owns and deletes (with its images).
pub struct Repository {
    ecr: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RepositorySpec {
    /// Scan every image when it is pushed.
    pub scan_on_push: bool,
    /// `IMMUTABLE`: a tag names one build context's content forever.
    pub tag_mutability: String,
    /// A lifecycle rule expires all but this many most recent images.
    pub keep_images: u32,
    /// Let Lambda pull images (for repositories whose images run as functions).
    pub lambda_pull: bool,
}

impl Default for RepositorySpec {
    fn default() -> Self {
        RepositorySpec {
            scan_on_push: true,
            tag_mutability: "IMMUTABLE".into(),
            keep_images: 10,
            lambda_pull: false,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RepositoryOut {
    pub repository_name: String,
    pub repository_arn: String,
    /// `<registry>.dkr.ecr.<region>.amazonaws.com/<name>`.
    pub repository_uri: String,
    pub registry_id: String,
}

/// The lifecycle policy keeping the `keep` most recent images.
pub(crate) fn lifecycle_policy(keep: u32) -> Value {
    json!({
        "rules": [{
            "rulePriority": 1,
            "description": format!("Keep the {keep} most recent images"),
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
            "action": {"type": "expire"},
        }]
    })
}

/// The repository policy Lambda needs to pull images for functions of this account (what
/// Lambda itself adds when allowed to, under the same statement id).
pub(crate) fn lambda_pull_policy(account: &str, region: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "LambdaECRImageRetrievalPolicy",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Condition": {"StringLike": {"aws:sourceArn": format!("arn:{}:lambda:{region}:{account}:function:*", partition(region))}},
        }]
    })
}

fn out(r: &aws_sdk_ecr::types::Repository) -> Result<RepositoryOut, ResourceError> {
    let missing =
        |what: &str| ResourceError::fatal(format!("ECR described a repository without its {what}"));
    Ok(RepositoryOut {
        repository_name: r
            .repository_name()
            .ok_or_else(|| missing("name"))?
            .to_string(),
        repository_arn: r
            .repository_arn()
            .ok_or_else(|| missing("ARN"))?
            .to_string(),
        repository_uri: r
            .repository_uri()
            .ok_or_else(|| missing("URI"))?
            .to_string(),
        registry_id: r
            .registry_id()
            .ok_or_else(|| missing("registry id"))?
            .to_string(),
    })
}

fn live(r: &aws_sdk_ecr::types::Repository) -> Result<Live, ResourceError> {
    let o = out(r)?;
    // The lifecycle and repository policies take a call each to read; the plan compares
    // them with what the last run applied.
    let settings = to_settings(&json!({
        "scan_on_push": r.image_scanning_configuration().is_some_and(|c| c.scan_on_push()),
        "tag_mutability": r.image_tag_mutability().map(|m| m.as_str()).unwrap_or("MUTABLE"),
    }));
    let value = serde_json::to_value(&o).map_err(|e| ResourceError::fatal(e.to_string()))?;
    Ok(Live::new(o.repository_name, settings, value))
}

impl Repository {
    pub fn new(ecr: Client) -> Self {
        Repository { ecr }
    }

    async fn describe(
        &self,
        name: &str,
    ) -> Result<Option<aws_sdk_ecr::types::Repository>, ResourceError> {
        match self
            .ecr
            .describe_repositories()
            .repository_names(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.repositories().first().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("ecr:DescribeRepositories", e)),
        }
    }

    async fn ensure_ours(
        &self,
        cx: &Cx,
        r: &aws_sdk_ecr::types::Repository,
    ) -> Result<(), ResourceError> {
        let arn = r.repository_arn().unwrap_or_default();
        let tags = self
            .ecr
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| aws("ecr:ListTagsForResource", e))?;
        let pairs = tags.tags().iter().map(|t| (t.key(), t.value()));
        cx.ensure_ours(
            &format!("ECR repository {}", r.repository_name().unwrap_or("?")),
            pairs,
        )
    }

    async fn put_lifecycle(&self, name: &str, keep: u32) -> Result<(), ResourceError> {
        self.ecr
            .put_lifecycle_policy()
            .repository_name(name)
            .lifecycle_policy_text(lifecycle_policy(keep).to_string())
            .send()
            .await
            .map_err(|e| aws("ecr:PutLifecyclePolicy", e))?;
        Ok(())
    }

    async fn put_policy(
        &self,
        cx: &Cx,
        name: &str,
        lambda_pull: bool,
    ) -> Result<(), ResourceError> {
        if lambda_pull {
            let stack = cx.stack();
            self.ecr
                .set_repository_policy()
                .repository_name(name)
                .policy_text(lambda_pull_policy(&stack.account, &stack.region).to_string())
                .send()
                .await
                .map_err(|e| aws("ecr:SetRepositoryPolicy", e))?;
            return Ok(());
        }
        match self
            .ecr
            .delete_repository_policy()
            .repository_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_policy_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws("ecr:DeleteRepositoryPolicy", e)),
        }
    }
}

#[async_trait]
impl Kind for Repository {
    fn name(&self) -> &'static str {
        "ecr.repository"
    }
    fn noun(&self) -> &'static str {
        "ECR repository"
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let Some(name) = lookup.physical_id().or(lookup.recorded_name()) else {
            return Ok(None);
        };
        let Some(r) = self.describe(name).await? else {
            return Ok(None);
        };
        // DescribeRepositories carries no tags. A repository the state recorded is taken as
        // recorded (a no-op rerun then costs one read), and `verify_owner` checks its tags
        // before any change; one found by its name alone must show its tags now.
        if lookup.physical_id().is_none() {
            self.ensure_ours(cx, &r).await?;
        }
        live(&r).map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: RepositorySpec = desired.spec()?;
        let name = desired.name()?;
        let mut req = self
            .ecr
            .create_repository()
            .repository_name(name)
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(spec.scan_on_push)
                    .build(),
            )
            .image_tag_mutability(ImageTagMutability::from(spec.tag_mutability.as_str()));
        for (k, v) in cx.tags() {
            req = req.tags(
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| ResourceError::fatal(e.to_string()))?,
            );
        }
        // A retry after a lost reply fails with RepositoryAlreadyExists; the engine then finds
        // the repository by name and checks its tags.
        let created = req
            .send()
            .await
            .map_err(|e| aws("ecr:CreateRepository", e))?;
        let r = created
            .repository()
            .ok_or_else(|| ResourceError::fatal("ecr:CreateRepository returned no repository"))?;
        let mut live = live(r)?;
        // Not journalled before the policies are set: a rerun after a crash in between finds
        // the repository by its name, sees nothing recorded as applied, and sets them then.
        self.put_lifecycle(name, spec.keep_images).await?;
        if spec.lambda_pull {
            self.put_policy(cx, name, true).await?;
        }
        live.settings = desired.settings.clone();
        Ok(live)
    }

    async fn verify_owner(&self, cx: &Cx, live: &Live) -> Result<(), ResourceError> {
        match self.describe(&live.physical_id).await? {
            Some(r) => self.ensure_ours(cx, &r).await,
            None => Ok(()),
        }
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: RepositorySpec = desired.spec()?;
        let name = live.physical_id.as_str();
        let has = |k: &str| changed.iter().any(|c| c == k);
        if has("scan_on_push") {
            self.ecr
                .put_image_scanning_configuration()
                .repository_name(name)
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder()
                        .scan_on_push(spec.scan_on_push)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| aws("ecr:PutImageScanningConfiguration", e))?;
        }
        if has("tag_mutability") {
            self.ecr
                .put_image_tag_mutability()
                .repository_name(name)
                .image_tag_mutability(ImageTagMutability::from(spec.tag_mutability.as_str()))
                .send()
                .await
                .map_err(|e| aws("ecr:PutImageTagMutability", e))?;
        }
        if has("keep_images") {
            self.put_lifecycle(name, spec.keep_images).await?;
        }
        if has("lambda_pull") {
            self.put_policy(cx, name, spec.lambda_pull).await?;
        }
        let mut live = live.clone();
        live.settings = desired.settings.clone();
        Ok(live)
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(name) = record.physical_id.as_deref() else {
            return Ok(());
        };
        let Some(r) = self.describe(name).await? else {
            return Ok(());
        };
        // Never a repository this stack did not create: `force` deletes its images too.
        self.ensure_ours(cx, &r).await?;
        cx.progress(format!("deleting ECR repository {name} and its images"));
        match self
            .ecr
            .delete_repository()
            .repository_name(name)
            .force(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws("ecr:DeleteRepository", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_rule_keeps_the_newest_images() {
        let p = lifecycle_policy(10);
        assert_eq!(
            p["rules"][0]["selection"]["countType"],
            "imageCountMoreThan"
        );
        assert_eq!(p["rules"][0]["selection"]["countNumber"], 10);
        assert_eq!(p["rules"][0]["selection"]["tagStatus"], "any");
        assert_eq!(p["rules"][0]["action"]["type"], "expire");
    }

    #[test]
    fn lambda_may_pull_for_this_account_only() {
        let p = lambda_pull_policy("123456789012", "eu-west-1");
        let s = &p["Statement"][0];
        assert_eq!(s["Principal"]["Service"], "lambda.amazonaws.com");
        assert_eq!(
            s["Action"],
            json!(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"])
        );
        assert_eq!(
            s["Condition"]["StringLike"]["aws:sourceArn"],
            "arn:aws:lambda:eu-west-1:123456789012:function:*"
        );
    }
}
