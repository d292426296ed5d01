//! Container images: an ECR repository per build folder and an image per folder and platform,
//! or an image that already exists in ECR. Consumers get a [`Ref`] to [`ImageOut`]: the image
//! by digest.
//!
//! A built image's tag is the content hash of its build context, computed when the plan is
//! made; an unchanged folder therefore reads as unchanged (one `DescribeImages` call) and is
//! neither built nor pushed. Two consumers of one folder and platform share one image.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use provision_build::Context;
use provision_config::Config;
use provision_config::{EndpointModel, ImageSource, Platform};
use provision_core::graph::{Graph, GraphError};
use provision_core::input::{Derived, Ref};
use provision_core::names;
use provision_core::resource::{Kind, Node};
use provision_ecr::{
    BuiltImageSpec, EcrKinds, ExistingImage, ExistingImageSpec, RepositoryOut, RepositorySpec,
};
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

/// The Streamlit app's build folder.
pub const APP_FOLDER: &str = "streamlit_app";

/// The repository a role pulls an image from, for the role's grant.
pub enum RepositoryArn {
    /// A repository the stack makes: its ARN is known once it exists.
    Made(Ref<RepositoryOut>),
    /// A repository that exists already: its ARN is known now.
    Known(String),
}

impl RepositoryArn {
    /// The ARN, as an input of whatever grants the pull: it waits for a repository the stack
    /// makes, and for nothing otherwise.
    pub fn input(&self) -> Derived<String> {
        let (made, known) = match self {
            RepositoryArn::Made(r) => (Some(r.ready()), String::new()),
            RepositoryArn::Known(arn) => (None, arn.clone()),
        };
        Derived::new(made, move |made: Option<RepositoryOut>| {
            made.map_or_else(|| known.clone(), |r| r.repository_arn)
        })
    }
}

pub struct ImageKinds {
    pub ecr: EcrKinds,
}

impl ImageKinds {
    pub fn new(clients: &Clients, project: &Project) -> Self {
        ImageKinds {
            ecr: EcrKinds::new(
                clients.ecr.clone(),
                project.root.clone(),
                project.builder.clone(),
            ),
        }
    }
    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        self.ecr.all()
    }
}

/// The logical id of a folder's repository.
pub fn repository_id(folder: &str) -> String {
    format!("image/{folder}/repository")
}

/// The logical id of a folder's image for a platform.
pub fn image_id(folder: &str, platform: Platform) -> String {
    format!("image/{folder}/{}", platform.as_str())
}

/// The repository of a build folder: `<stack>/<folder>`, lower case, in ECR's alphabet
/// (`streamlit-app-dev/functions/text_counterfactuals`). The whole folder path, not just its
/// last part, so `functions/x` and `endpoints/x` never share a repository.
pub fn repository_name(stack: &str, folder: &str) -> String {
    let part = |s: &str| -> String {
        let mapped: String = s
            .chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        // Each component must start and end with a letter or digit.
        mapped
            .trim_matches(|c: char| !c.is_ascii_alphanumeric())
            .to_string()
    };
    let mut parts = vec![part(stack)];
    parts.extend(folder.split('/').map(part).filter(|p| !p.is_empty()));
    names::shorten(&parts.join("/"), names::limits::ECR_REPOSITORY)
}

/// The context's hash. Plans are made inside the async runtime and a large context takes a
/// while to read, so the runtime is told this thread blocks (where it can move work away).
fn hash(context: &Context) -> Result<String, String> {
    let hash = || context.hash().map_err(|e| e.to_string());
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(hash)
        }
        _ => hash(),
    }
}

/// The folders' consumers, shared with the repositories' settings, which are worked out when
/// the plan is made: a consumer added after a repository's node still counts.
type Consumers = Arc<Mutex<BTreeSet<Consumer>>>;

/// Collects the images the stack needs, one node per distinct image.
pub struct Images<'k> {
    kinds: &'k ImageKinds,
    config: Config,
    stack: String,
    root: PathBuf,
    repositories: HashMap<String, (Ref<RepositoryOut>, Consumers)>,
    built: HashMap<(String, Platform), Ref<ImageOut>>,
    existing: BTreeMap<(String, String), Ref<ImageOut>>,
}

impl<'k> Images<'k> {
    pub fn new(project: &Project, kinds: &'k ImageKinds) -> Self {
        Images {
            kinds,
            config: project.config.clone(),
            stack: project.stack_name(),
            root: project.root.clone(),
            repositories: HashMap::new(),
            built: HashMap::new(),
            existing: BTreeMap::new(),
        }
    }

    /// The repository of a build folder, added to the graph the first time it is asked for.
    fn repository(
        &mut self,
        g: &mut Graph,
        folder: &str,
        consumer: Consumer,
    ) -> Result<Ref<RepositoryOut>, GraphError> {
        let folder = folder.trim_matches('/');
        if let Some((r, consumers)) = self.repositories.get(folder) {
            if let Ok(mut c) = consumers.lock() {
                c.insert(consumer);
            }
            return Ok(r.clone());
        }
        let consumers: Consumers = Arc::new(Mutex::new(BTreeSet::from([consumer])));
        let shared = consumers.clone();
        // Read when the plan is made, not now: a consumer added later still counts.
        let node = Node::new(repository_id(folder), self.kinds.ecr.repository.clone())
            .named(repository_name(&self.stack, folder))
            .spec((), move |()| {
                let lambda_pull = shared
                    .lock()
                    .map(|c| c.contains(&Consumer::Function))
                    .unwrap_or(true);
                RepositorySpec {
                    lambda_pull,
                    ..RepositorySpec::default()
                }
            });
        let r: Ref<RepositoryOut> = g.insert(node)?;
        self.repositories
            .insert(folder.to_string(), (r.clone(), consumers));
        Ok(r)
    }

    /// The image built from `folder` (relative to the project root) for `platform`.
    pub fn build(
        &mut self,
        g: &mut Graph,
        folder: &str,
        platform: Platform,
        consumer: Consumer,
    ) -> Result<Ref<ImageOut>, GraphError> {
        let folder = folder.trim_matches('/').to_string();
        let repository = self.repository(g, &folder, consumer)?;
        if let Some(r) = self.built.get(&(folder.clone(), platform)) {
            return Ok(r.clone());
        }
        let context = Context::new(self.root.join(&folder), platform);
        // Hashed once, when the plan first needs it (never for runs that only delete).
        let tag: Arc<OnceLock<Result<String, String>>> = Arc::new(OnceLock::new());
        let label = folder.clone();
        let node = Node::new(
            image_id(&folder, platform),
            self.kinds.ecr.built_image.clone(),
        )
        .spec(repository.ready(), move |repository| {
            let hashed = tag.get_or_init(|| hash(&context));
            let (tag, context_error) = match hashed {
                Ok(t) => (t.clone(), None),
                Err(e) => (String::new(), Some(e.clone())),
            };
            BuiltImageSpec {
                repository_name: repository.repository_name,
                repository_uri: repository.repository_uri,
                tag,
                folder: label.clone(),
                dockerfile: context.dockerfile.clone(),
                platform: platform.oci().to_string(),
                build_args: context.build_args.clone(),
                context_error,
            }
        });
        let r: Ref<ImageOut> = g.insert(node)?;
        self.built.insert((folder, platform), r.clone());
        Ok(r)
    }

    /// An image that already exists in an ECR repository of the account. It is checked when
    /// the plan is made; the stack never changes or deletes it or its repository.
    pub fn existing(
        &mut self,
        g: &mut Graph,
        repository: &str,
        tag: &str,
        _consumer: Consumer,
    ) -> Result<Ref<ImageOut>, GraphError> {
        let key = (repository.to_string(), tag.to_string());
        if let Some(r) = self.existing.get(&key) {
            return Ok(r.clone());
        }
        let spec = ExistingImageSpec {
            repository_name: repository.to_string(),
            tag: tag.to_string(),
        };
        let node = Node::new(
            format!("image/ecr/{repository}/{tag}"),
            self.kinds.ecr.existing_image.clone(),
        )
        .named(ExistingImage::node_name(repository, tag))
        .fixed(&spec);
        let r: Ref<ImageOut> = g.insert(node)?;
        self.existing.insert(key, r.clone());
        Ok(r)
    }

    /// Adds every image the config names that no tier has asked for (none, once every tier
    /// is wired), so each is built, or checked to exist, whatever the tiers use. Repository
    /// policies need nothing more: each follows every consumer recorded, read when the plan
    /// is made.
    pub fn finish(mut self, g: &mut Graph) -> Result<(), GraphError> {
        let config = self.config.clone();
        self.build(g, APP_FOLDER, config.platform, Consumer::App)?;
        for f in &config.lambda_functions {
            self.source(g, &f.image, f.platform, Consumer::Function)?;
        }
        for e in &config.sagemaker_endpoints {
            if let EndpointModel::ImageAndModelData {
                image, platform, ..
            } = &e.model
            {
                self.source(g, image, *platform, Consumer::Endpoint)?;
            }
        }
        Ok(())
    }

    /// The repository of the image `image` names, for its consumer's pull grant: the build
    /// folder's repository, or an existing one of the config's account and region.
    pub fn repository_arn(
        &mut self,
        g: &mut Graph,
        image: &ImageSource,
        consumer: Consumer,
    ) -> Result<RepositoryArn, GraphError> {
        Ok(match image {
            ImageSource::Build { folder } => {
                RepositoryArn::Made(self.repository(g, folder, consumer)?)
            }
            ImageSource::Ecr { repository, .. } => {
                RepositoryArn::Known(provision_iam::policy::ecr_repository_arn(
                    &self.config.region,
                    &self.config.account,
                    repository,
                ))
            }
        })
    }

    /// The image a function or endpoint config names: built from its folder, or in ECR already.
    pub fn source(
        &mut self,
        g: &mut Graph,
        image: &ImageSource,
        platform: Platform,
        consumer: Consumer,
    ) -> Result<Ref<ImageOut>, GraphError> {
        match image {
            ImageSource::Build { folder } => self.build(g, folder, platform, consumer),
            ImageSource::Ecr { repository, tag } => self.existing(g, repository, tag, consumer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn repository_names_are_lower_case_and_per_folder() {
        assert_eq!(
            repository_name("streamlit-app-dev", "streamlit_app"),
            "streamlit-app-dev/streamlit_app"
        );
        assert_eq!(
            repository_name("streamlit-app-dev", "functions/text_counterfactuals"),
            "streamlit-app-dev/functions/text_counterfactuals"
        );
        assert_eq!(
            repository_name("streamlit-app-dev", "endpoints/My Model_"),
            "streamlit-app-dev/endpoints/my-model"
        );
        let long = repository_name("streamlit-app-dev", &"x".repeat(300));
        assert!(long.len() <= names::limits::ECR_REPOSITORY);
        assert!(provision_config::is_ecr_repository(&long), "{long}");
    }

    /// A project folder with an app Dockerfile, removed when dropped.
    struct Root(PathBuf);

    impl Root {
        fn new(name: &str) -> Root {
            let dir = std::env::temp_dir()
                .join(format!("provision-images-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let root = Root(dir);
            root.dockerfile("streamlit_app");
            root
        }
        fn dockerfile(&self, folder: &str) {
            std::fs::create_dir_all(self.0.join(folder)).unwrap();
            std::fs::write(
                self.0.join(folder).join("Dockerfile"),
                format!("FROM scratch\nLABEL folder={folder}\n"),
            )
            .unwrap();
        }
        fn project(&self) -> Project {
            let text = json!({
                "account": "123456789012", "region": "us-east-1", "environment": "dev",
                "hosted_zone_id": "Z123", "domain_name": "example.com", "platform": "amd64",
            });
            let config = provision_config::parse(
                &text.to_string(),
                std::path::Path::new("config.json"),
                &self.0,
            )
            .unwrap();
            Project {
                config,
                root: self.0.clone(),
                builder: None,
            }
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn kinds() -> ImageKinds {
        let conf = aws_sdk_ecr::Config::builder()
            .behavior_version(aws_sdk_ecr::config::BehaviorVersion::latest())
            .region(aws_sdk_ecr::config::Region::new("us-east-1"))
            .build();
        ImageKinds {
            ecr: EcrKinds::new(
                aws_sdk_ecr::Client::from_conf(conf),
                PathBuf::from("."),
                None,
            ),
        }
    }

    fn settings(g: &Graph, id: &str, outputs: &HashMap<provision_core::LogicalId, Value>) -> Value {
        let node = g.get(&id.into()).unwrap();
        Value::Object(node.settings(outputs).unwrap())
    }

    #[test]
    fn consumers_of_one_folder_and_platform_share_an_image() {
        let root = Root::new("share");
        root.dockerfile("functions/f");
        let project = root.project();
        let kinds = kinds();
        let mut g = Graph::new();
        let mut images = Images::new(&project, &kinds);
        let a = images
            .build(&mut g, "functions/f", Platform::Arm64, Consumer::Endpoint)
            .unwrap();
        let b = images
            .build(&mut g, "functions/f/", Platform::Arm64, Consumer::Function)
            .unwrap();
        let c = images
            .build(&mut g, "functions/f", Platform::Amd64, Consumer::Endpoint)
            .unwrap();
        let app = images
            .build(&mut g, "streamlit_app", Platform::Amd64, Consumer::App)
            .unwrap();
        let e1 = images
            .existing(&mut g, "shared/base", "v1", Consumer::Function)
            .unwrap();
        let e2 = images
            .existing(&mut g, "shared/base", "v1", Consumer::Endpoint)
            .unwrap();
        images.finish(&mut g).unwrap();
        g.order().unwrap();

        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().as_str(), "image/functions/f/arm64");
        assert_eq!(c.id().as_str(), "image/functions/f/amd64");
        assert_eq!(app.id().as_str(), "image/streamlit_app/amd64");
        assert_eq!(e1.id(), e2.id());
        assert_eq!(e1.id().as_str(), "image/ecr/shared/base/v1");
        // Two repositories, three built images, one existing image.
        assert_eq!(g.nodes().len(), 6);

        let repo = g.get(&"image/functions/f/repository".into()).unwrap();
        assert_eq!(repo.name.as_deref(), Some("streamlit-app-dev/functions/f"));
        let outputs = HashMap::new();
        assert_eq!(
            settings(&g, "image/functions/f/repository", &outputs)["lambda_pull"],
            true,
            "a function uses it"
        );
        assert_eq!(
            settings(&g, "image/streamlit_app/repository", &outputs)["lambda_pull"],
            false
        );
        assert_eq!(
            settings(&g, "image/streamlit_app/repository", &outputs)["keep_images"],
            10
        );

        let mut outputs = HashMap::new();
        outputs.insert(
            provision_core::LogicalId::from("image/functions/f/repository"),
            json!({"repository_name": "streamlit-app-dev/functions/f", "repository_arn": "arn", "repository_uri": "1.dkr.ecr.us-east-1.amazonaws.com/streamlit-app-dev/functions/f", "registry_id": "1"}),
        );
        let arm = settings(&g, "image/functions/f/arm64", &outputs);
        let amd = settings(&g, "image/functions/f/amd64", &outputs);
        assert_eq!(arm["platform"], "linux/arm64");
        assert_eq!(arm["tag"].as_str().map(str::len), Some(64));
        assert_ne!(arm["tag"], amd["tag"], "each platform has its own tag");
        assert_eq!(arm["folder"], "functions/f");
    }

    /// `config/local.json` over `examples/offline`, changed by `edit`.
    fn offline_project(edit: impl FnOnce(&mut Value)) -> Project {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(repo.join("config/local.json")).unwrap())
                .unwrap();
        edit(&mut config);
        let root = repo.join("examples/offline");
        let config = provision_config::parse(
            &config.to_string(),
            std::path::Path::new("local.json"),
            &root,
        )
        .unwrap();
        Project {
            config,
            root,
            builder: None,
        }
    }

    fn ids(g: &Graph) -> Vec<String> {
        let mut ids: Vec<String> = g.nodes().iter().map(|n| n.id.to_string()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn finish_adds_every_image_the_config_names() {
        let project = offline_project(|c| c["lambda_functions"][0]["platform"] = json!("arm64"));
        let kinds = kinds();
        let mut g = Graph::new();
        Images::new(&project, &kinds).finish(&mut g).unwrap();
        assert_eq!(
            ids(&g),
            [
                "image/endpoints/serverless_explanations/amd64",
                "image/endpoints/serverless_explanations/repository",
                "image/functions/text_counterfactuals/arm64",
                "image/functions/text_counterfactuals/repository",
                "image/streamlit_app/amd64",
                "image/streamlit_app/repository",
            ]
        );
        let outputs = HashMap::new();
        assert_eq!(
            settings(
                &g,
                "image/functions/text_counterfactuals/repository",
                &outputs
            )["lambda_pull"],
            true
        );
        assert_eq!(
            settings(
                &g,
                "image/endpoints/serverless_explanations/repository",
                &outputs
            )["lambda_pull"],
            false
        );

        let project = offline_project(|c| {
            let f = &mut c["lambda_functions"][0];
            f.as_object_mut().unwrap().remove("folder_name");
            f["ecr_repo"] = json!("shared/counterfactuals");
            f["tag"] = json!("v1");
        });
        let mut g = Graph::new();
        Images::new(&project, &kinds).finish(&mut g).unwrap();
        let ids = ids(&g);
        assert!(
            ids.contains(&"image/ecr/shared/counterfactuals/v1".to_string()),
            "{ids:?}"
        );
        assert!(
            !ids.iter().any(|i| i.starts_with("image/functions/")),
            "no repository for an image the stack does not build: {ids:?}"
        );
        let node = g
            .get(&"image/ecr/shared/counterfactuals/v1".into())
            .unwrap();
        assert_eq!(node.name.as_deref(), Some("shared/counterfactuals:v1"));
    }

    #[test]
    fn an_unreadable_folder_is_reported_by_the_image_not_the_graph() {
        let root = Root::new("missing");
        let project = root.project();
        let kinds = kinds();
        let mut g = Graph::new();
        let mut images = Images::new(&project, &kinds);
        images
            .build(&mut g, "missing", Platform::Amd64, Consumer::App)
            .unwrap();
        let mut outputs = HashMap::new();
        outputs.insert(
            provision_core::LogicalId::from("image/missing/repository"),
            json!({"repository_name": "r", "repository_arn": "a", "repository_uri": "u", "registry_id": "1"}),
        );
        let s = settings(&g, "image/missing/amd64", &outputs);
        assert_eq!(s["tag"], "");
        assert!(
            s["context_error"]
                .as_str()
                .is_some_and(|e| e.contains("Dockerfile")),
            "{s}"
        );
    }
}
