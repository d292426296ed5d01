//! The machine-learning backends: SageMaker endpoints and Lambda functions from images.
//!
//! Each endpoint `endpoint/<endpoint_name>` is, with what each waits for:
//! - `…/role`: its execution role, trusting SageMaker inference of the stack's account and
//!   region; no dependencies, so it is made first and has propagated by the time the model
//!   uses it;
//! - `…/role/execution` (pull its own image's repository, write its own log group, publish
//!   metrics) and, when model data is in S3, `…/role/model-data` (read exactly that object, or
//!   the `model_data_bucket`): after the role (and the repository, for a built image);
//! - `…/role/managed-policies`: none, or AmazonSageMakerFullAccess when the endpoint's
//!   `sagemaker_full_access` asks for it; after the role's policies, so a role an earlier
//!   version gave full access keeps it until the scoped grants are in place;
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
//!
//! What an endpoint's role may do is SageMaker's documented minimum for a model's execution
//! role, scoped to the endpoint's own resources (SageMaker Developer Guide, sagemaker-roles,
//! "CreateModel API: Execution Role Permissions": `cloudwatch:PutMetricData`,
//! `logs:CreateLogStream`, `logs:PutLogEvents`, `logs:CreateLogGroup`,
//! `logs:DescribeLogStreams`, `s3:GetObject`, `s3:ListBucket`, `ecr:GetAuthorizationToken`,
//! `ecr:BatchCheckLayerAvailability`, `ecr:GetDownloadUrlForLayer`, `ecr:BatchGetImage`;
//! "Scope S3 permissions to objects that you specify in the `PrimaryContainer.ModelDataUrl`",
//! "Scope Amazon ECR permissions to a specific registry path that you specify as the
//! `PrimaryContainer.Image`"). The log group is the one SageMaker writes an endpoint's
//! containers to, `/aws/sagemaker/Endpoints/<endpoint name>` (monitoring-cloudwatch).
//! `cloudwatch:PutMetricData` stays on `*` without a `cloudwatch:namespace` condition: the
//! guide says "The `cloudwatch` and `logs` actions are applicable for `*` resources" and
//! documents no namespace condition for it, and a condition that did not match what the
//! hosting platform publishes would silently drop the endpoint's instance metrics.

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
    for (i, e) in project.config.sagemaker_endpoints.iter().enumerate() {
        backends
            .endpoints
            .push(endpoint::add(g, project, kinds, images, (i, e))?);
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

/// The log group SageMaker writes an endpoint's containers to.
pub fn endpoint_log_group(endpoint_name: &str) -> String {
    format!("/aws/sagemaker/Endpoints/{endpoint_name}")
}

/// What an endpoint's container runs on, apart from its model data: pulling its own image
/// (`repository_arn`), writing its own log group, and publishing metrics (see the module's
/// documentation for the sources).
pub fn endpoint_execution_policy(
    region: &str,
    account: &str,
    endpoint_name: &str,
    repository_arn: &str,
) -> Value {
    let mut statements = policy::ecr_pull(&[repository_arn.to_string()]);
    statements.push(policy::allow(
        &[
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:DescribeLogStreams",
            "logs:PutLogEvents",
        ],
        &policy::log_group_arns(region, account, &endpoint_log_group(endpoint_name)),
    ));
    statements.push(policy::allow(&["cloudwatch:PutMetricData"], &["*"]));
    policy::document(statements)
}

/// Read access to the model data: `s3:GetObject` on exactly the object (or on everything in
/// `model_data_bucket`), and `s3:ListBucket` on exactly the buckets involved: on all of
/// `model_data_bucket`, and on the object's bucket only for keys starting with the object's
/// key (`s3:prefix`; ListBucket is authorised on the bucket, so a prefix condition is how it is
/// narrowed to one key). `None` when the model has no data in S3.
pub fn model_data_policy(region: &str, bucket: Option<&str>, url: Option<&str>) -> Option<Value> {
    let mut objects = BTreeSet::new();
    let mut whole_buckets = BTreeSet::new();
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if let Some(b) = bucket {
        objects.insert(policy::s3_arn(region, &format!("{b}/*")));
        whole_buckets.insert(policy::s3_arn(region, b));
    }
    if let Some((b, key)) = url
        .and_then(|u| u.strip_prefix("s3://"))
        .and_then(|rest| rest.split_once('/'))
    {
        // The bucket grant covers the object already.
        if bucket != Some(b) {
            objects.insert(policy::s3_arn(region, &format!("{b}/{key}")));
            keys.entry(policy::s3_arn(region, b))
                .or_default()
                .insert(key.to_string());
        }
    }
    if objects.is_empty() {
        return None;
    }
    let objects: Vec<String> = objects.into_iter().collect();
    let mut statements = vec![policy::allow(&["s3:GetObject"], &objects)];
    if !whole_buckets.is_empty() {
        let whole: Vec<String> = whole_buckets.into_iter().collect();
        statements.push(policy::allow(&["s3:ListBucket"], &whole));
    }
    for (bucket_arn, keys) in keys {
        let keys: Vec<String> = keys.into_iter().collect();
        statements.push(policy::allow_when(
            &["s3:ListBucket"],
            &[bucket_arn],
            json!({ "StringLike": { "s3:prefix": keys } }),
        ));
    }
    Some(policy::document(statements))
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

/// An IAM role with its inline policies and its managed policy attachments (exactly
/// `managed`). Returns the role and its policies (what must be in place before the role is
/// used).
fn add_role(
    g: &mut Graph,
    kinds: &Kinds,
    prefix: &str,
    role: RoleParts,
) -> Result<(Ref<RoleOut>, Vec<Ref<Value>>), GraphError> {
    let RoleParts {
        name,
        trust,
        description,
        managed,
        inline,
        narrowed,
    } = role;
    let role: Ref<RoleOut> = g.insert(
        Node::new(format!("{prefix}/role"), kinds.iam.role.clone())
            .named(name)
            .fixed(&RoleSpec {
                assume_role_policy: trust,
                description,
            }),
    )?;
    let mut policies = Vec::new();
    for (policy_name, document) in inline {
        policies.push(
            g.insert(
                Node::new(
                    format!("{prefix}/role/{policy_name}"),
                    kinds.iam.role_policy.clone(),
                )
                .spec((role.ready(), document), move |(role, document)| {
                    RolePolicySpec {
                        role_name: role.role_name,
                        policy_name: policy_name.to_string(),
                        document,
                    }
                }),
            )?,
        );
    }
    let attachments = Node::new(
        format!("{prefix}/role/managed-policies"),
        kinds.iam.managed_policies.clone(),
    )
    .spec(role.ready(), move |role| ManagedPoliciesSpec {
        role_name: role.role_name,
        policy_arns: managed.clone(),
    });
    // A managed policy that is going away is detached once what replaces it is in place.
    let attachments = if narrowed {
        after_policies(attachments, &policies)
    } else {
        attachments
    };
    policies.push(g.insert(attachments)?);
    Ok((role, policies))
}

struct RoleParts {
    name: String,
    /// The trust policy.
    trust: Value,
    description: String,
    /// Exactly the managed policies attached.
    managed: BTreeSet<String>,
    /// The inline policies: name, and document (computed from what it reads).
    inline: Vec<(&'static str, Derived<Value>)>,
    /// Whether earlier versions attached managed policies that the inline ones replace: the
    /// attachments then change only once the inline policies are in place.
    narrowed: bool,
}

/// A document known without reading anything, as an input.
fn fixed_document(document: Value) -> Derived<Value> {
    Derived::new((), move |()| document.clone())
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
