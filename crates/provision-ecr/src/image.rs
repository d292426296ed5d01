use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::ImageIdentifier;
use provision_build::{BuildError, BuildRequest, Builder, Context, PreparedImage};
use provision_core::platform::Platform;
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{OnceCell, Semaphore};

use crate::push::{self, find_tag};
use crate::{ImageOut, aws, registry_host};

/// Builds running at once: each already uses every core it can get.
const BUILDS_AT_ONCE: usize = 2;
/// Blobs uploading at once across the run (each holds one part, at most 10 MiB, in memory).
const UPLOADS_AT_ONCE: usize = 4;

/// An image built from a folder and pushed to a repository, tagged with the content hash of
/// its build context. Reading it is one `DescribeImages` call; it is built and pushed only
/// when the repository lacks its tag.
pub struct BuiltImage {
    ecr: Client,
    root: PathBuf,
    builder_choice: Option<String>,
    builder: OnceCell<Result<Builder, (String, Option<String>)>>,
    builds: Semaphore,
    uploads: Arc<Semaphore>,
    /// Images built but not yet pushed, by `repository:tag`: a push that failed and is retried
    /// within the run does not build again.
    prepared: Mutex<HashMap<String, Arc<PreparedImage>>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BuiltImageSpec {
    pub repository_name: String,
    pub repository_uri: String,
    /// The content hash of the build context (64 hex digits); empty if it could not be made.
    pub tag: String,
    /// The build folder, relative to the project root.
    pub folder: String,
    /// The Dockerfile, relative to the folder.
    pub dockerfile: String,
    /// `linux/amd64` or `linux/arm64`.
    pub platform: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_args: BTreeMap<String, String>,
    /// Why the build folder could not be hashed, reported when the image is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_error: Option<String>,
}

/// Parses `linux/amd64` or `linux/arm64`.
pub(crate) fn parse_platform(s: &str) -> Option<Platform> {
    [Platform::Amd64, Platform::Arm64]
        .into_iter()
        .find(|p| p.oci() == s)
}

fn image_live(
    repository_name: &str,
    repository_uri: &str,
    tag: &str,
    digest: &str,
) -> Result<Live, ResourceError> {
    let out = ImageOut {
        image_uri: format!("{repository_uri}@{digest}"),
        repository_name: repository_name.to_string(),
        digest: digest.to_string(),
    };
    let settings = to_settings(&json!({"repository_name": repository_name, "tag": tag}));
    let value = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    Ok(Live::new(
        format!("{repository_name}:{tag}"),
        settings,
        value,
    ))
}

fn build_error(e: BuildError) -> ResourceError {
    let hint = e.hint();
    let mut err = ResourceError::fatal(e.to_string());
    err.hint = hint;
    err
}

/// Runs `work` unless the run is interrupted first; dropping it then stops any builder process.
async fn unless_interrupted<T>(cx: &Cx, work: impl Future<Output = T>) -> Result<T, ResourceError> {
    let interrupted = async {
        loop {
            if let Err(e) = cx.sleep(Duration::from_secs(3600)).await {
                return e;
            }
        }
    };
    tokio::select! {
        v = work => Ok(v),
        e = interrupted => Err(e),
    }
}

impl BuiltImage {
    pub fn new(ecr: Client, root: PathBuf, builder: Option<String>) -> Self {
        BuiltImage {
            ecr,
            root,
            builder_choice: builder,
            builder: OnceCell::new(),
            builds: Semaphore::new(BUILDS_AT_ONCE),
            uploads: Arc::new(Semaphore::new(UPLOADS_AT_ONCE)),
            prepared: Mutex::new(HashMap::new()),
        }
    }

    /// The builder, found once per run and only when something must be built.
    async fn builder(&self) -> Result<Builder, ResourceError> {
        let found = self
            .builder
            .get_or_init(|| async {
                Builder::detect(self.builder_choice.as_deref())
                    .await
                    .map_err(|e| {
                        let hint = e.hint();
                        (e.to_string(), hint)
                    })
            })
            .await;
        match found {
            Ok(b) => Ok(b.clone()),
            Err((message, hint)) => {
                let mut err = ResourceError::fatal(message.clone());
                err.hint = hint.clone();
                Err(err)
            }
        }
    }

    fn cached(&self, key: &str) -> Option<Arc<PreparedImage>> {
        self.prepared.lock().ok().and_then(|m| m.get(key).cloned())
    }

    /// Builds the image (or takes the one a failed push left) and converts it for the push.
    async fn prepare(
        &self,
        cx: &Cx,
        spec: &BuiltImageSpec,
        platform: Platform,
    ) -> Result<Arc<PreparedImage>, ResourceError> {
        let key = format!("{}:{}", spec.repository_name, spec.tag);
        if let Some(image) = self.cached(&key) {
            return Ok(image);
        }
        let _permit = self
            .builds
            .acquire()
            .await
            .map_err(|_| ResourceError::fatal("the build queue closed"))?;
        let context = Context {
            dir: self.root.join(&spec.folder),
            dockerfile: spec.dockerfile.clone(),
            platform,
            build_args: spec.build_args.clone(),
        };
        // The tag was computed when the plan was made; building files that changed since
        // would push an image under a tag that does not describe it.
        let rehash = context.clone();
        let now = tokio::task::spawn_blocking(move || rehash.hash())
            .await
            .map_err(|e| ResourceError::fatal(format!("hashing {} stopped: {e}", spec.folder)))?
            .map_err(|e| {
                ResourceError::fatal(format!(
                    "could not read the build folder {}: {e}",
                    spec.folder
                ))
            })?;
        if now != spec.tag {
            return Err(ResourceError::fatal(format!(
                "the files in {} changed while provision was running",
                spec.folder
            ))
            .with_hint("rerun `provision up` once the edits are done"));
        }
        let builder = self.builder().await?;
        cx.progress(format!(
            "building {} for {} with {}",
            spec.folder,
            platform.oci(),
            builder.kind()
        ));
        let request = BuildRequest {
            context: &context,
            label: &spec.folder,
            tag: &spec.tag,
        };
        let on_line = |line: &str| cx.progress(line.to_string());
        let archive = unless_interrupted(cx, builder.build(&request, &on_line))
            .await?
            .map_err(build_error)?;
        let image = archive.prepare_async(platform).await.map_err(|e| {
            ResourceError::fatal(format!(
                "the image {builder} built from {} cannot be pushed: {e}",
                spec.folder,
                builder = builder.kind()
            ))
        })?;
        cx.progress(format!(
            "built {} for {}: {} layer{}, {:.1} MiB compressed",
            spec.folder,
            platform.oci(),
            image.layers.len(),
            if image.layers.len() == 1 { "" } else { "s" },
            image.size() as f64 / (1024.0 * 1024.0)
        ));
        let image = Arc::new(image);
        if let Ok(mut m) = self.prepared.lock() {
            m.insert(key, image.clone());
        }
        Ok(image)
    }

    /// Makes sure the repository holds the desired tag: one read if it does, else a build and
    /// a push.
    async fn ensure(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: BuiltImageSpec = desired.spec()?;
        if let Some(why) = &spec.context_error {
            return Err(ResourceError::fatal(format!(
                "could not read the build folder {}: {why}",
                spec.folder
            )));
        }
        let mut live =
            if let Some(found) = find_tag(&self.ecr, &spec.repository_name, &spec.tag).await? {
                cx.progress(format!(
                    "{}:{} is in ECR already; nothing to build",
                    spec.repository_name, spec.tag
                ));
                image_live(
                    &spec.repository_name,
                    &spec.repository_uri,
                    &spec.tag,
                    &found.digest,
                )?
            } else {
                let platform = parse_platform(&spec.platform).ok_or_else(|| {
                    ResourceError::fatal(format!(
                        "`{}` is not a platform provision builds for",
                        spec.platform
                    ))
                })?;
                let image = self.prepare(cx, &spec, platform).await?;
                let pushed = unless_interrupted(
                    cx,
                    push::push(
                        cx,
                        &self.ecr,
                        &spec.repository_name,
                        &spec.tag,
                        &image,
                        self.uploads.clone(),
                    ),
                )
                .await??;
                if let Ok(mut m) = self.prepared.lock() {
                    m.remove(&format!("{}:{}", spec.repository_name, spec.tag));
                }
                let live = image_live(
                    &spec.repository_name,
                    &spec.repository_uri,
                    &spec.tag,
                    &pushed.digest,
                )?;
                cx.progress(format!("pushed {}", live.physical_id));
                live
            };
        live.settings = desired.settings.clone();
        Ok(live)
    }
}

#[async_trait]
impl Kind for BuiltImage {
    fn name(&self) -> &'static str {
        "ecr.built-image"
    }
    fn noun(&self) -> &'static str {
        "container image"
    }

    async fn read(&self, _cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        // The tag the state recorded; a new tag shows in the plan as a changed setting.
        let Some(spec) = lookup.recorded_settings::<BuiltImageSpec>() else {
            return Ok(None);
        };
        if spec.tag.is_empty() {
            return Ok(None);
        }
        match find_tag(&self.ecr, &spec.repository_name, &spec.tag).await? {
            Some(found) => image_live(
                &spec.repository_name,
                &spec.repository_uri,
                &spec.tag,
                &found.digest,
            )
            .map(Some),
            None => Ok(None),
        }
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        self.ensure(cx, desired).await
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        _live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        self.ensure(cx, desired).await
    }

    async fn delete(&self, _cx: &Cx, _record: &Record) -> Result<(), ResourceError> {
        // Images are not deleted one by one: a Lambda function whose image is deleted stops
        // working, and rollbacks want old images. The lifecycle rule trims them, and deleting
        // the repository deletes them all.
        Ok(())
    }
}

/// An image that exists already in a repository of the account, which the stack uses but
/// never changes or deletes. A missing image fails the plan.
pub struct ExistingImage {
    ecr: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExistingImageSpec {
    pub repository_name: String,
    pub tag: String,
}

impl ExistingImage {
    pub fn new(ecr: Client) -> Self {
        ExistingImage { ecr }
    }

    /// The node name that identifies an existing image: `repository:tag`.
    pub fn node_name(repository: &str, tag: &str) -> String {
        format!("{repository}:{tag}")
    }

    async fn find(&self, cx: &Cx, repository: &str, tag: &str) -> Result<Live, ResourceError> {
        let missing = |what: String| {
            let stack = cx.stack();
            ResourceError::fatal(format!(
                "the image {repository}:{tag} does not exist: {what} in ECR of account {} in {}",
                stack.account, stack.region
            ))
            .with_hint("check the repository and tag in the config (`ecr_repo` and `tag` for a Lambda function, `image_repo_name` and `image_tag` for an endpoint), and that the image was pushed to this account and region")
        };
        let out = self
            .ecr
            .describe_images()
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await;
        let details = match out {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_not_found_exception()) =>
            {
                return Err(missing(format!("there is no repository {repository}")));
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_image_not_found_exception()) =>
            {
                return Err(missing(format!("repository {repository} has no tag {tag}")));
            }
            Err(e) => return Err(aws("ecr:DescribeImages", e)),
        };
        let Some(d) = details.image_details().first() else {
            return Err(missing(format!("repository {repository} has no tag {tag}")));
        };
        let digest = d.image_digest().ok_or_else(|| {
            ResourceError::fatal("ecr:DescribeImages returned an image without a digest")
        })?;
        let registry = d.registry_id().unwrap_or(&cx.stack().account).to_string();
        let uri = format!(
            "{}/{repository}",
            registry_host(&registry, &cx.stack().region)
        );
        image_live(repository, &uri, tag, digest)
    }
}

#[async_trait]
impl Kind for ExistingImage {
    fn name(&self) -> &'static str {
        "ecr.existing-image"
    }
    fn noun(&self) -> &'static str {
        "existing container image"
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let spec = match lookup.name.and_then(|n| n.rsplit_once(':')) {
            Some((repository, tag)) => ExistingImageSpec {
                repository_name: repository.to_string(),
                tag: tag.to_string(),
            },
            None => match lookup.recorded_settings::<ExistingImageSpec>() {
                Some(spec) => spec,
                None => return Ok(None),
            },
        };
        self.find(cx, &spec.repository_name, &spec.tag)
            .await
            .map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: ExistingImageSpec = desired.spec()?;
        self.find(cx, &spec.repository_name, &spec.tag).await
    }

    async fn delete(&self, _cx: &Cx, _record: &Record) -> Result<(), ResourceError> {
        // Not the stack's to delete.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_from_their_oci_names() {
        assert_eq!(parse_platform("linux/arm64"), Some(Platform::Arm64));
        assert_eq!(parse_platform("linux/amd64"), Some(Platform::Amd64));
        assert_eq!(parse_platform("arm64"), None);
    }

    #[test]
    fn image_outputs_name_the_image_by_digest() {
        let live = image_live(
            "streamlit-app-dev/streamlit_app",
            "1.dkr.ecr.us-east-1.amazonaws.com/streamlit-app-dev/streamlit_app",
            "abc",
            "sha256:00",
        )
        .unwrap();
        let out: ImageOut = live.outputs().unwrap();
        assert_eq!(
            out.image_uri,
            "1.dkr.ecr.us-east-1.amazonaws.com/streamlit-app-dev/streamlit_app@sha256:00"
        );
        assert_eq!(live.physical_id, "streamlit-app-dev/streamlit_app:abc");
    }
}
