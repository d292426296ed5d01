//! ECR as resource kinds: a repository the stack owns, an image built from a folder and pushed
//! into it, and an image that already exists in some repository of the account.
//!
//! The push speaks the ECR API itself (`BatchCheckLayerAvailability`, `InitiateLayerUpload`,
//! `UploadLayerPart`, `CompleteLayerUpload`, `PutImage`), so no `docker login` happens and no
//! registry credentials are written to disk. An image's tag is the content hash of its build
//! context: if the repository already holds the tag, nothing is built or pushed.

use std::sync::Arc;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use provision_core::resource::ResourceError;
use serde::{Deserialize, Serialize};

mod image;
pub mod push;
mod repository;

pub use image::{BuiltImage, BuiltImageSpec, ExistingImage, ExistingImageSpec};
pub use repository::{Repository, RepositoryOut, RepositorySpec};

/// What consumers of an image read: the image by digest, so a moved tag never changes what
/// runs without a deploy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ImageOut {
    /// `<registry>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:<hex>`.
    pub image_uri: String,
    pub repository_name: String,
    /// `sha256:<hex>` of the manifest.
    pub digest: String,
}

/// Every ECR kind, sharing one client.
pub struct EcrKinds {
    pub repository: Arc<Repository>,
    pub built_image: Arc<BuiltImage>,
    pub existing_image: Arc<ExistingImage>,
}

impl EcrKinds {
    /// `root` is where build folders are relative to; `builder` the user's choice of image
    /// builder (`docker`, `podman`, `buildah`), else one is detected when a build is needed.
    pub fn new(
        client: aws_sdk_ecr::Client,
        root: std::path::PathBuf,
        builder: Option<String>,
    ) -> Self {
        EcrKinds {
            repository: Arc::new(Repository::new(client.clone())),
            built_image: Arc::new(BuiltImage::new(client.clone(), root, builder)),
            existing_image: Arc::new(ExistingImage::new(client)),
        }
    }

    pub fn all(&self) -> Vec<Arc<dyn provision_core::Kind>> {
        vec![
            self.repository.clone(),
            self.built_image.clone(),
            self.existing_image.clone(),
        ]
    }
}

pub(crate) fn aws<E, R>(operation: &str, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    provision_aws::classify(operation, err)
}

/// The registry host of an account's ECR in a region.
pub fn registry_host(registry_id: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("{registry_id}.dkr.ecr.{region}.{suffix}")
}

/// The ARN partition of a region.
pub(crate) fn partition(region: &str) -> &'static str {
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
    fn registry_hosts_follow_the_partition() {
        assert_eq!(
            registry_host("123456789012", "eu-west-1"),
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            registry_host("123456789012", "cn-north-1"),
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("us-east-1"), "aws");
    }
}
