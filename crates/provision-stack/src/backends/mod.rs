//! The machine-learning backends: SageMaker endpoints and Lambda functions from images.
//!
//! Each endpoint `endpoint/<endpoint_name>` is, with what each waits for:
//! - `…/role`: its execution role, trusting SageMaker; no dependencies, so it is made first
//!   and has propagated by the time the model uses it;
//! - `…/role/managed-policies` (AmazonSageMakerFullAccess) and, when model data is in S3,
//!   `…/role/model-data` (read access to exactly that object or bucket): after the role;
//! - `…/model`: after the role, its policies and the image (pushed);
//! - `…/config`: the endpoint configuration, after the model;
//! - the endpoint itself, after the configuration.
//!
//! Models and configurations are named `<stack>-<endpoint>-<hash of their settings>`, so a
//! change makes new ones; the endpoint switches with `UpdateEndpoint` and the old ones go
//! once the run has succeeded. The web tier needs only an endpoint's name and ARN, known when
//! `CreateEndpoint` returns, so it waits for the endpoint to exist, not to be in service.
//!
//! Each function `function/<VARIABLE>` has a role trusting Lambda with the basic execution
//! policy and the config's statements, and the function (after its role, policies and image).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use provision_config::huggingface;
use provision_config::{
    Capacity, EndpointModel, LambdaFunction, PolicyStatement, SagemakerEndpoint,
};
use provision_core::graph::{Graph, GraphError};
use provision_core::names;
use provision_core::resource::{Kind, LogicalId, Node, Ref};
use provision_iam::policy;
use provision_iam::{ManagedPoliciesSpec, RoleOut, RolePolicySpec, RoleSpec};
use provision_lambda::{FunctionSpec, LambdaKinds};
use provision_sagemaker::{
    EndpointConfigOut, EndpointConfigSpec, EndpointSpec, ModelOut, ModelSpec, SagemakerKinds,
};
use serde_json::{Value, json};

use crate::images::{Consumer, ImageOut, Images};
use crate::{Clients, Kinds, OutputsPart, Project};

/// What the web tier reads from a function.
pub use provision_lambda::FunctionOut;
/// What the web tier reads from an endpoint.
pub use provision_sagemaker::EndpointOut;

pub struct FunctionHandle {
    pub environment_variable_name: String,
    pub function_name: String,
    pub function: Ref<FunctionOut>,
}

pub struct EndpointHandle {
    pub environment_variable_name: String,
    pub endpoint_name: String,
    pub endpoint: Ref<EndpointOut>,
}

#[derive(Default)]
pub struct Backends {
    pub functions: Vec<FunctionHandle>,
    pub endpoints: Vec<EndpointHandle>,
}

impl Backends {
    /// For each function and endpoint, its variable's name and the resource's name: what the
    /// app receives.
    pub fn outputs(&self) -> OutputsPart {
        let functions: Vec<(String, Ref<FunctionOut>)> = self
            .functions
            .iter()
            .map(|f| (f.environment_variable_name.clone(), f.function.clone()))
            .collect();
        let endpoints: Vec<(String, Ref<EndpointOut>)> = self
            .endpoints
            .iter()
            .map(|e| (e.environment_variable_name.clone(), e.endpoint.clone()))
            .collect();
        Box::new(move |inputs| {
            let mut out = BTreeMap::new();
            for (var, f) in &functions {
                out.insert(var.clone(), json!(inputs.get(f)?.function_name));
            }
            for (var, e) in &endpoints {
                out.insert(var.clone(), json!(inputs.get(e)?.endpoint_name));
            }
            Ok(out)
        })
    }
}

pub struct BackendKinds {
    pub sagemaker: SagemakerKinds,
    pub lambda: LambdaKinds,
}

impl BackendKinds {
    pub fn new(clients: &Clients) -> Self {
        BackendKinds {
            sagemaker: SagemakerKinds::new(clients.sagemaker.clone()),
            lambda: LambdaKinds::new(clients.lambda.clone()),
        }
    }
    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        let mut all = self.sagemaker.all();
        all.extend(self.lambda.all());
        all
    }
}

pub fn add(
    g: &mut Graph,
    project: &Project,
    kinds: &Kinds,
    images: &mut Images<'_>,
) -> Result<Backends, GraphError> {
    let mut backends = Backends::default();
    for f in &project.config.lambda_functions {
        backends
            .functions
            .push(add_function(g, project, kinds, images, f)?);
    }
    for e in &project.config.sagemaker_endpoints {
        backends
            .endpoints
            .push(add_endpoint(g, project, kinds, images, e)?);
    }
    Ok(backends)
}

// ---------------------------------------------------------------------------------------------
// Names

/// A function's name: the stack's name and its variable's, DNS-safe
/// (`streamlit-app-dev-counterfactual-lambda`).
pub fn function_name(stack: &str, environment_variable_name: &str) -> String {
    names::fit(
        stack,
        &names::dns_safe(environment_variable_name),
        names::limits::LAMBDA_FUNCTION,
    )
}

pub fn function_role_name(stack: &str, environment_variable_name: &str) -> String {
    let suffix = format!("{}-function", names::dns_safe(environment_variable_name));
    names::fit(stack, &suffix, names::limits::IAM_ROLE)
}

/// SageMaker names are case-insensitive; roles follow in lower case.
pub fn endpoint_role_name(stack: &str, endpoint_name: &str) -> String {
    let suffix = format!("{}-endpoint", endpoint_name.to_ascii_lowercase());
    names::fit(stack, &suffix, names::limits::IAM_ROLE)
}

/// The stem of an endpoint's model and configuration names, to which each adds a hash of
/// its settings.
pub fn endpoint_resource_stem(stack: &str, endpoint_name: &str) -> String {
    format!("{stack}-{endpoint_name}")
}

// ---------------------------------------------------------------------------------------------
// Policies

/// The ARN of an S3 bucket, or of objects in it.
fn s3_arn(region: &str, resource: &str) -> String {
    format!("arn:{}:s3:::{resource}", policy::partition(region))
}

/// Read access to the model data: `s3:GetObject` on exactly the object (or on everything in
/// `model_data_bucket`) and `s3:ListBucket` on exactly the buckets involved. `None` when the
/// model has no data in S3.
pub fn model_data_policy(region: &str, bucket: Option<&str>, url: Option<&str>) -> Option<Value> {
    let mut objects = BTreeSet::new();
    let mut buckets = BTreeSet::new();
    if let Some(b) = bucket {
        objects.insert(s3_arn(region, &format!("{b}/*")));
        buckets.insert(s3_arn(region, b));
    }
    if let Some((b, key)) = url
        .and_then(|u| u.strip_prefix("s3://"))
        .and_then(|rest| rest.split_once('/'))
    {
        // The bucket grant covers the object already.
        if bucket != Some(b) {
            objects.insert(s3_arn(region, &format!("{b}/{key}")));
        }
        buckets.insert(s3_arn(region, b));
    }
    if objects.is_empty() {
        return None;
    }
    let objects: Vec<String> = objects.into_iter().collect();
    let buckets: Vec<String> = buckets.into_iter().collect();
    Some(policy::document(vec![
        policy::allow(&["s3:GetObject"], &objects),
        policy::allow(&["s3:ListBucket"], &buckets),
    ]))
}

/// The config's statements for a function, as one document; `None` when there are none.
pub fn statements_policy(statements: &[PolicyStatement]) -> Option<Value> {
    if statements.is_empty() {
        return None;
    }
    Some(policy::document(
        statements
            .iter()
            .map(|s| policy::allow(&s.actions, &s.resources))
            .collect(),
    ))
}

/// An IAM role with its managed policies and, when there is one, its inline policy. Returns
/// the role and the ids of its policy nodes (what must be in place before the role is used).
fn add_role(
    g: &mut Graph,
    kinds: &Kinds,
    prefix: &str,
    role: RoleParts,
) -> Result<(Ref<RoleOut>, Vec<LogicalId>), GraphError> {
    let RoleParts {
        name,
        service,
        description,
        managed,
        inline,
    } = role;
    let role_node = Node::new(format!("{prefix}/role"), kinds.iam.role.clone())
        .named(name)
        .spec(move |_| {
            Ok(RoleSpec {
                assume_role_policy: policy::trust(service),
                description: description.clone(),
            })
        });
    let role_ref: Ref<RoleOut> = role_node.handle();
    g.add(role_node)?;

    let r = role_ref.clone();
    let managed_node = Node::new(
        format!("{prefix}/role/managed-policies"),
        kinds.iam.managed_policies.clone(),
    )
    .after(&role_ref)
    .spec(move |inputs| {
        Ok(ManagedPoliciesSpec {
            role_name: inputs.get(&r)?.role_name,
            policy_arns: managed.clone(),
        })
    });
    let mut policies = vec![managed_node.id.clone()];
    g.add(managed_node)?;

    if let Some((policy_name, document)) = inline {
        let r = role_ref.clone();
        let inline_node = Node::new(
            format!("{prefix}/role/{policy_name}"),
            kinds.iam.role_policy.clone(),
        )
        .after(&role_ref)
        .spec(move |inputs| {
            Ok(RolePolicySpec {
                role_name: inputs.get(&r)?.role_name,
                policy_name: policy_name.to_string(),
                document: document.clone(),
            })
        });
        policies.push(inline_node.id.clone());
        g.add(inline_node)?;
    }
    Ok((role_ref, policies))
}

struct RoleParts {
    name: String,
    service: &'static str,
    description: String,
    managed: BTreeSet<String>,
    /// The inline policy's name and document.
    inline: Option<(&'static str, Value)>,
}

/// Makes `node` wait for the nodes `ids` to be ready (policies, whose outputs it does not read).
fn after_all(mut node: Node, ids: &[LogicalId]) -> Node {
    for id in ids {
        node = node.after(&Ref::<Value>::new(id.clone()));
    }
    node
}

// ---------------------------------------------------------------------------------------------
// Functions

fn add_function(
    g: &mut Graph,
    project: &Project,
    kinds: &Kinds,
    images: &mut Images<'_>,
    f: &LambdaFunction,
) -> Result<FunctionHandle, GraphError> {
    let stack = project.stack_name();
    let region = project.config.region.clone();
    let var = &f.environment_variable_name;
    let prefix = format!("function/{var}");
    let name = function_name(&stack, var);

    let (role, policies) = add_role(
        g,
        kinds,
        &prefix,
        RoleParts {
            name: function_role_name(&stack, var),
            service: "lambda.amazonaws.com",
            description: format!("Runs the Lambda function {name}"),
            managed: BTreeSet::from([policy::aws_managed(&region, policy::LAMBDA_BASIC_EXECUTION)]),
            inline: statements_policy(&f.policy_statements).map(|d| ("policy", d)),
        },
    )?;
    let image = images.source(g, &f.image, f.platform, Consumer::Function)?;

    let (r, i) = (role.clone(), image.clone());
    let (architecture, memory_size) = (f.platform.lambda_architecture(), f.memory_size);
    let timeout_seconds = f.timeout_minutes * 60;
    let environment = f.environment_variables.clone();
    let node = Node::new(prefix, kinds.backends.lambda.function.clone())
        .named(name.clone())
        .after(&role)
        .after(&image);
    let node = after_all(node, &policies).spec(move |inputs| {
        Ok(FunctionSpec {
            image_uri: inputs.get(&i)?.image_uri,
            role_arn: inputs.get(&r)?.role_arn,
            architecture: architecture.to_string(),
            memory_size,
            timeout_seconds,
            environment: environment.clone(),
        })
    });
    let function: Ref<FunctionOut> = node.handle();
    g.add(node)?;
    Ok(FunctionHandle {
        environment_variable_name: var.clone(),
        function_name: name,
        function,
    })
}

// ---------------------------------------------------------------------------------------------
// Endpoints

/// Where an endpoint's container comes from.
enum ContainerImage {
    /// A public image (the HuggingFace container, or the config's `image_uri`).
    Uri(String),
    /// One the stack builds or finds in ECR.
    Image(Ref<ImageOut>),
}

fn add_endpoint(
    g: &mut Graph,
    project: &Project,
    kinds: &Kinds,
    images: &mut Images<'_>,
    e: &SagemakerEndpoint,
) -> Result<EndpointHandle, GraphError> {
    let stack = project.stack_name();
    let region = project.config.region.clone();
    let endpoint_name = e.endpoint_name.clone();
    let prefix = format!("endpoint/{endpoint_name}");
    let sm = &kinds.backends.sagemaker;

    let (container, environment, bucket, model_data_url) = match &e.model {
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
                    huggingface::image_uri(&region, versions).ok_or_else(|| GraphError::Invalid {
                        node: LogicalId::from(prefix.as_str()),
                        message: format!("no HuggingFace inference image is known in region {region}; set `image_uri`"),
                    })?
                }
            };
            let mut env = BTreeMap::new();
            if let Some(m) = model_name {
                env.insert("HF_MODEL_ID".to_string(), m.clone());
            }
            if let Some(t) = model_task {
                env.insert("HF_TASK".to_string(), t.clone());
            }
            (ContainerImage::Uri(uri), env, None, model_data_url.clone())
        }
        EndpointModel::ImageAndModelData {
            image,
            platform,
            model_data_bucket,
            model_data_url,
            container_environment,
        } => {
            let image = images.source(g, image, *platform, Consumer::Endpoint)?;
            (
                ContainerImage::Image(image),
                container_environment.clone(),
                model_data_bucket.clone(),
                model_data_url.clone(),
            )
        }
    };

    let (role, policies) = add_role(
        g,
        kinds,
        &prefix,
        RoleParts {
            name: endpoint_role_name(&stack, &endpoint_name),
            service: "sagemaker.amazonaws.com",
            description: format!("Execution role of the SageMaker endpoint {endpoint_name}"),
            managed: BTreeSet::from([policy::aws_managed(&region, policy::SAGEMAKER_FULL_ACCESS)]),
            inline: model_data_policy(&region, bucket.as_deref(), model_data_url.as_deref())
                .map(|d| ("model-data", d)),
        },
    )?;

    let stem = endpoint_resource_stem(&stack, &endpoint_name);
    let r = role.clone();
    let mut model = Node::new(format!("{prefix}/model"), sm.model.clone())
        .named(stem.clone())
        .after(&role);
    let image_ref = match &container {
        ContainerImage::Image(i) => {
            model = model.after(i);
            Some(i.clone())
        }
        ContainerImage::Uri(_) => None,
    };
    let fixed_image = match container {
        ContainerImage::Uri(u) => u,
        ContainerImage::Image(_) => String::new(),
    };
    let model = after_all(model, &policies).spec(move |inputs| {
        let image = match &image_ref {
            Some(i) => inputs.get(i)?.image_uri,
            None => fixed_image.clone(),
        };
        Ok(ModelSpec {
            execution_role_arn: inputs.get(&r)?.role_arn,
            image,
            environment: environment.clone(),
            model_data_url: model_data_url.clone(),
        })
    });
    let model_ref: Ref<ModelOut> = model.handle();
    g.add(model)?;

    let m = model_ref.clone();
    let capacity = capacity(&e.capacity);
    let config = Node::new(format!("{prefix}/config"), sm.endpoint_config.clone())
        .named(stem)
        .after(&model_ref)
        .spec(move |inputs| {
            Ok(EndpointConfigSpec {
                model_name: inputs.get(&m)?.model_name,
                capacity: capacity.clone(),
            })
        });
    let config_ref: Ref<EndpointConfigOut> = config.handle();
    g.add(config)?;

    let c = config_ref.clone();
    let endpoint = Node::new(prefix, sm.endpoint.clone())
        .named(endpoint_name.clone())
        .after(&config_ref)
        .spec(move |inputs| {
            Ok(EndpointSpec {
                endpoint_config_name: inputs.get(&c)?.endpoint_config_name,
                failed: false,
            })
        });
    let endpoint_ref: Ref<EndpointOut> = endpoint.handle();
    g.add(endpoint)?;
    Ok(EndpointHandle {
        environment_variable_name: e.environment_variable_name.clone(),
        endpoint_name,
        endpoint: endpoint_ref,
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

#[cfg(test)]
mod tests;
