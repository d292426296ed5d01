//! A SageMaker endpoint: `endpoint/<endpoint_name>`, with its role and policies (see the
//! module above for what they grant), its model (after the role, the policies and the image),
//! its configuration (after the model), and the endpoint itself (after the configuration).

use std::collections::{BTreeMap, BTreeSet};

use provision_config::{Capacity, EndpointModel, SagemakerEndpoint, huggingface};
use provision_core::graph::{Graph, GraphError};
use provision_core::input::{Derived, Ref};
use provision_core::resource::{LogicalId, Node};
use provision_iam::policy;
use provision_sagemaker::{
    EndpointConfigOut, EndpointConfigSpec, EndpointSpec, ModelOut, ModelSpec,
};

use super::{
    EndpointHandle, EndpointOut, RoleParts, add_role, after_policies, endpoint_execution_policy,
    endpoint_resource_stem, endpoint_role_name, fixed_document, model_data_policy,
};
use crate::images::{Consumer, ImageOut, Images, RepositoryArn};
use crate::{Kinds, Project};

/// Where an endpoint's container comes from.
enum ContainerImage {
    /// A public image (the HuggingFace container, or the config's `image_uri`).
    Uri(String),
    /// One the stack builds or finds in ECR.
    Image(Ref<ImageOut>),
}

/// What an endpoint's model runs, and on what data.
struct Container {
    image: ContainerImage,
    /// The repository of its image, which its role may pull from.
    repository: RepositoryArn,
    environment: BTreeMap<String, String>,
    model_data_bucket: Option<String>,
    model_data_url: Option<String>,
}

/// Adds the `index`-th endpoint of the config.
pub(super) fn add(
    g: &mut Graph,
    project: &Project,
    kinds: &Kinds,
    images: &mut Images<'_>,
    (index, e): (usize, &SagemakerEndpoint),
) -> Result<EndpointHandle, GraphError> {
    let stack = project.stack_name();
    let config = &project.config;
    let region = &config.region;
    let endpoint_name = e.endpoint_name.clone();
    let prefix = format!("endpoint/{endpoint_name}");
    let sm = &kinds.backends.sagemaker;

    let container = container(g, (region, index), &prefix, images, &e.model)?;
    let (account, name) = (config.account.clone(), endpoint_name.clone());
    let region_of_policy = region.clone();
    let mut inline = vec![(
        "execution",
        Derived::new(container.repository.input(), move |repository_arn| {
            endpoint_execution_policy(&region_of_policy, &account, &name, &repository_arn)
        }),
    )];
    if let Some(d) = model_data_policy(
        region,
        container.model_data_bucket.as_deref(),
        container.model_data_url.as_deref(),
    ) {
        inline.push(("model-data", fixed_document(d)));
    }
    let managed = if e.sagemaker_full_access {
        BTreeSet::from([policy::aws_managed(region, policy::SAGEMAKER_FULL_ACCESS)])
    } else {
        BTreeSet::new()
    };
    let (role, policies) = add_role(
        g,
        kinds,
        &prefix,
        RoleParts {
            name: endpoint_role_name(&stack, &endpoint_name),
            trust: policy::sagemaker_inference_trust(region, &config.account),
            description: format!("Execution role of the SageMaker endpoint {endpoint_name}"),
            managed,
            inline,
            // Earlier versions attached AmazonSageMakerFullAccess to every endpoint's role.
            narrowed: true,
        },
    )?;

    let stem = endpoint_resource_stem(&stack, &endpoint_name);
    let Container {
        image,
        environment,
        model_data_url,
        ..
    } = container;
    let (uri, built) = match image {
        ContainerImage::Uri(uri) => (uri, None),
        ContainerImage::Image(image) => (String::new(), Some(image.ready())),
    };
    let model = Node::new(format!("{prefix}/model"), sm.model.clone())
        .named(stem.clone())
        .spec((role.ready(), built), move |(role, built)| ModelSpec {
            execution_role_arn: role.role_arn,
            image: built.map_or_else(|| uri.clone(), |i| i.image_uri),
            environment: environment.clone(),
            model_data_url: model_data_url.clone(),
        });
    let model: Ref<ModelOut> = g.insert(after_policies(model, &policies))?;

    let capacity = capacity(&e.capacity);
    let config: Ref<EndpointConfigOut> = g.insert(
        Node::new(format!("{prefix}/config"), sm.endpoint_config.clone())
            .named(stem)
            .spec(model.ready(), move |model| EndpointConfigSpec {
                model_name: model.model_name,
                capacity: capacity.clone(),
            }),
    )?;
    let endpoint: Ref<EndpointOut> = g.insert(
        Node::new(prefix, sm.endpoint.clone())
            .named(endpoint_name.clone())
            .spec(config.ready(), |config| EndpointSpec {
                endpoint_config_name: config.endpoint_config_name,
                failed: false,
            }),
    )?;
    Ok(EndpointHandle {
        environment_variable_name: e.environment_variable_name.clone(),
        endpoint_name,
        endpoint,
    })
}

/// The model's image, environment and data, as the config describes them (the `index`-th
/// endpoint's, for messages).
fn container(
    g: &mut Graph,
    (region, index): (&str, usize),
    prefix: &str,
    images: &mut Images<'_>,
    model: &EndpointModel,
) -> Result<Container, GraphError> {
    Ok(match model {
        EndpointModel::Huggingface {
            model_name,
            model_task,
            model_data_url,
            use_gpu,
            pytorch_version,
            transformers_version,
            ubuntu_version,
            image_uri,
        } => {
            let uri = match image_uri {
                Some(uri) => uri.clone(),
                None => {
                    let versions = huggingface::Versions {
                        pytorch: pytorch_version,
                        transformers: transformers_version,
                        ubuntu: ubuntu_version,
                        use_gpu: *use_gpu,
                    };
                    huggingface::image_uri(region, versions).ok_or_else(|| GraphError::Invalid {
                        node: LogicalId::from(prefix),
                        message: format!("no HuggingFace inference image is known in region {region}; set `image_uri`"),
                    })?
                }
            };
            // SageMaker hosts images from ECR; the role may pull from that repository only (for
            // HuggingFace images, the Deep Learning Containers account's, in the region).
            let repository = policy::ecr_repository_arn_of_image(&uri).ok_or_else(|| {
                GraphError::Invalid {
                    node: LogicalId::from(prefix),
                    message: format!(
                        "sagemaker_endpoints[{index}].image_uri: `{uri}` is not an ECR image (`<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>`); SageMaker hosts model images from ECR"
                    ),
                }
            })?;
            let mut environment = BTreeMap::new();
            if let Some(m) = model_name {
                environment.insert("HF_MODEL_ID".to_string(), m.clone());
            }
            if let Some(t) = model_task {
                environment.insert("HF_TASK".to_string(), t.clone());
            }
            Container {
                image: ContainerImage::Uri(uri),
                repository: RepositoryArn::Known(repository),
                environment,
                model_data_bucket: None,
                model_data_url: model_data_url.clone(),
            }
        }
        EndpointModel::ImageAndModelData {
            image,
            platform,
            model_data_bucket,
            model_data_url,
            container_environment,
        } => Container {
            image: ContainerImage::Image(images.source(g, image, *platform, Consumer::Endpoint)?),
            repository: images.repository_arn(g, image, Consumer::Endpoint)?,
            environment: container_environment.clone(),
            model_data_bucket: model_data_bucket.clone(),
            model_data_url: model_data_url.clone(),
        },
    })
}

fn capacity(c: &Capacity) -> provision_sagemaker::Capacity {
    match c {
        Capacity::Serverless {
            memory_size_in_mb,
            max_concurrency,
            provisioned_concurrency,
        } => provision_sagemaker::Capacity::Serverless {
            memory_size_in_mb: *memory_size_in_mb,
            max_concurrency: *max_concurrency,
            provisioned_concurrency: *provisioned_concurrency,
        },
        Capacity::Instances {
            instance_type,
            initial_instance_count,
            initial_variant_weight,
        } => provision_sagemaker::Capacity::Instances {
            instance_type: instance_type.clone(),
            initial_instance_count: *initial_instance_count,
            initial_variant_weight: *initial_variant_weight,
        },
    }
}
