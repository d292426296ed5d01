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

use provision_config::PolicyStatement;
use provision_core::graph::{Graph, GraphError};
use provision_core::input::{Derived, Ref, Until};
use provision_core::names;
use provision_core::resource::{Kind, Node};
use provision_iam::policy;
use provision_iam::{ManagedPoliciesSpec, RoleOut, RolePolicySpec, RoleSpec};
use provision_lambda::LambdaKinds;
use provision_sagemaker::SagemakerKinds;
use serde_json::{Value, json};

use crate::images::Images;
use crate::{Clients, Kinds, OutputsPart, Project};

mod endpoint;
mod function;

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
        let function_vars: Vec<String> = self
            .functions
            .iter()
            .map(|f| f.environment_variable_name.clone())
            .collect();
        let endpoint_vars: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| e.environment_variable_name.clone())
            .collect();
        let functions: Vec<_> = self.functions.iter().map(|f| f.function.ready()).collect();
        let endpoints: Vec<_> = self.endpoints.iter().map(|e| e.endpoint.ready()).collect();
        Derived::new((functions, endpoints), move |(functions, endpoints)| {
            let mut out = BTreeMap::new();
            for (var, f) in function_vars.iter().zip(functions) {
                out.insert(var.clone(), json!(f.function_name));
            }
            for (var, e) in endpoint_vars.iter().zip(endpoints) {
                out.insert(var.clone(), json!(e.endpoint_name));
            }
            out
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
            .push(function::add(g, project, kinds, images, f)?);
    }
    for e in &project.config.sagemaker_endpoints {
        backends
            .endpoints
            .push(endpoint::add(g, project, kinds, images, e)?);
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
/// the role and its policies (what must be in place before the role is used).
fn add_role(
    g: &mut Graph,
    kinds: &Kinds,
    prefix: &str,
    role: RoleParts,
) -> Result<(Ref<RoleOut>, Vec<Ref<Value>>), GraphError> {
    let RoleParts {
        name,
        service,
        description,
        managed,
        inline,
    } = role;
    let role: Ref<RoleOut> = g.insert(
        Node::new(format!("{prefix}/role"), kinds.iam.role.clone())
            .named(name)
            .fixed(&RoleSpec {
                assume_role_policy: policy::trust(service),
                description,
            }),
    )?;
    let mut policies = vec![
        g.insert(
            Node::new(
                format!("{prefix}/role/managed-policies"),
                kinds.iam.managed_policies.clone(),
            )
            .spec(role.ready(), move |role| ManagedPoliciesSpec {
                role_name: role.role_name,
                policy_arns: managed.clone(),
            }),
        )?,
    ];
    if let Some((policy_name, document)) = inline {
        policies.push(
            g.insert(
                Node::new(
                    format!("{prefix}/role/{policy_name}"),
                    kinds.iam.role_policy.clone(),
                )
                .spec(role.ready(), move |role| RolePolicySpec {
                    role_name: role.role_name,
                    policy_name: policy_name.to_string(),
                    document: document.clone(),
                }),
            )?,
        );
    }
    Ok((role, policies))
}

struct RoleParts {
    name: String,
    service: &'static str,
    description: String,
    managed: BTreeSet<String>,
    /// The inline policy's name and document.
    inline: Option<(&'static str, Value)>,
}

/// Makes `node` wait for `policies` to be in place (ready), without reading them: a role is
/// usable by a service only with its permissions attached.
fn after_policies(node: Node, policies: &[Ref<Value>]) -> Node {
    policies
        .iter()
        .fold(node, |node, p| node.ordered_after(p, Until::Ready))
}

#[cfg(test)]
mod tests;
