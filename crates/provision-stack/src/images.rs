//! Container images: an ECR repository and an image per build folder and platform, or an
//! image that already exists in ECR. Consumers get a [`Ref`] to [`ImageOut`].
//!
//! (Being built: the images issue fills this module.)

use std::sync::Arc;

use provision_core::config::Platform;
use provision_core::graph::{Graph, GraphError};
use provision_core::resource::{Kind, Ref};
use serde::{Deserialize, Serialize};

use crate::{Clients, Project};

/// What consumers of an image read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ImageOut {
    /// The image by digest: `<account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:<hex>`.
    pub image_uri: String,
    pub repository_name: String,
    /// `sha256:<hex>` of the manifest.
    pub digest: String,
}

/// Who runs an image, which decides the permissions its repository grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Consumer {
    App,
    Function,
    Endpoint,
}

pub struct ImageKinds {}

impl ImageKinds {
    pub fn new(_clients: &Clients, _project: &Project) -> Self {
        ImageKinds {}
    }
    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        Vec::new()
    }
}

/// Collects the images the stack needs, one node per distinct image.
pub struct Images<'k> {
    _kinds: &'k ImageKinds,
}

impl<'k> Images<'k> {
    pub fn new(_project: &Project, kinds: &'k ImageKinds) -> Self {
        Images { _kinds: kinds }
    }

    /// The image built from `folder` (relative to the project root) for `platform`.
    pub fn build(&mut self, _g: &mut Graph, folder: &str, platform: Platform, _consumer: Consumer) -> Result<Ref<ImageOut>, GraphError> {
        Ok(Ref::new(format!("image/{folder}/{}", platform.as_str())))
    }

    /// An image that already exists in an ECR repository of the account.
    pub fn existing(&mut self, _g: &mut Graph, repository: &str, tag: &str, _consumer: Consumer) -> Result<Ref<ImageOut>, GraphError> {
        Ok(Ref::new(format!("image/ecr/{repository}/{tag}")))
    }

    /// Adds what depends on all images together (repository policies).
    pub fn finish(self, _g: &mut Graph) -> Result<(), GraphError> {
        Ok(())
    }
}
