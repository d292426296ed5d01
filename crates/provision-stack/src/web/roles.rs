//! The app's two roles: the execution role ECS uses to pull the image and write logs, and the
//! task role the app's code runs as, which may invoke exactly the stack's backends.

use std::collections::BTreeSet;

use provision_core::graph::{Graph, GraphError};
use provision_core::input::Ref;
use provision_core::names;
use provision_core::resource::Node;
use provision_iam::policy;
use provision_iam::{ManagedPoliciesSpec, RoleOut, RolePolicySpec, RoleSpec};
use serde_json::Value;

use super::{has_task_policy, task_policy};
use crate::backends::Backends;
use crate::{Kinds, Project};

/// The roles, and the policies that must be in place before a task runs with them.
pub(super) struct Roles {
    pub execution: Ref<RoleOut>,
    pub task: Ref<RoleOut>,
    pub execution_policies: Ref<Value>,
    /// None when the app may call nothing.
    pub task_policy: Option<Ref<Value>>,
}

pub(super) fn add(
    g: &mut Graph,
    project: &Project,
    kinds: &Kinds,
    backends: &Backends,
) -> Result<Roles, GraphError> {
    let stack = project.stack_name();
    let role = |g: &mut Graph, id: &str, suffix: &str, description: &str| {
        g.insert::<RoleOut>(
            Node::new(id, kinds.iam.role.clone())
                .named(names::fit(&stack, suffix, names::limits::IAM_ROLE))
                .fixed(&RoleSpec {
                    assume_role_policy: policy::trust("ecs-tasks.amazonaws.com"),
                    description: description.to_string(),
                }),
        )
    };
    let execution = role(
        g,
        "web/role/execution",
        "app-execution-role",
        "Lets ECS pull the app image and write its logs",
    )?;
    let task = role(
        g,
        "web/role/task",
        "app-task-role",
        "What the Streamlit app may call: the stack's endpoints and functions",
    )?;

    let managed = policy::aws_managed(&project.config.region, policy::ECS_TASK_EXECUTION);
    let execution_policies = g.insert(
        Node::new(
            "web/role/execution/managed-policies",
            kinds.iam.managed_policies.clone(),
        )
        .spec(execution.ready(), move |role| ManagedPoliciesSpec {
            role_name: role.role_name,
            policy_arns: BTreeSet::from([managed.clone()]),
        }),
    )?;
    let extra = &project.config.ecs_policy_statements;
    let task_policy = if has_task_policy(backends, extra) {
        Some(add_task_policy(g, kinds, &task, backends, extra.clone())?)
    } else {
        None
    };
    Ok(Roles {
        execution,
        task,
        execution_policies,
        task_policy,
    })
}

/// `web/role/task/policy`: invoke the stack's endpoints and functions, plus the config's
/// statements. It needs the backends' ARNs only, not the backends being ready.
fn add_task_policy(
    g: &mut Graph,
    kinds: &Kinds,
    task: &Ref<RoleOut>,
    backends: &Backends,
    extra: Vec<provision_config::PolicyStatement>,
) -> Result<Ref<Value>, GraphError> {
    let endpoints: Vec<_> = backends
        .endpoints
        .iter()
        .map(|e| e.endpoint.exists())
        .collect();
    let functions: Vec<_> = backends
        .functions
        .iter()
        .map(|f| f.function.exists())
        .collect();
    g.insert(
        Node::new("web/role/task/policy", kinds.iam.role_policy.clone()).spec(
            (task.ready(), endpoints, functions),
            move |(role, endpoints, functions)| {
                let endpoint_arns: Vec<String> =
                    endpoints.into_iter().map(|e| e.endpoint_arn).collect();
                let function_arns: Vec<String> =
                    functions.into_iter().map(|f| f.function_arn).collect();
                RolePolicySpec {
                    role_name: role.role_name,
                    policy_name: "invoke-backends".into(),
                    document: task_policy(&endpoint_arns, &function_arns, &extra)
                        .unwrap_or(Value::Null),
                }
            },
        ),
    )
}
