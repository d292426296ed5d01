//! The app's two roles: the execution role ECS uses to pull the image and write logs, and the
//! task role the app's code runs as, which may invoke exactly the stack's backends.
//!
//! Both are scoped to what they are used for (12.10):
//! - The execution role may pull from the app's own repository and write the app's own log
//!   group: what CDK grants it for `ContainerImage.fromEcrRepository` (the repository's
//!   `grantPull`: aws-cdk-lib/aws-ecs/lib/images/ecr.ts) and `AwsLogDriver` (the log group's
//!   `grantWrite`, `logs:CreateLogStream` and `logs:PutLogEvents`:
//!   aws-cdk-lib/aws-ecs/lib/log-drivers/aws-log-driver.ts), instead of
//!   `AmazonECSTaskExecutionRolePolicy`, which allows pulling any repository and writing any
//!   log group of the account. Its attached managed policies are exactly none, so the policy an
//!   earlier version attached is detached by `up`, once the inline policy is in place.
//! - The task role trusts ECS tasks of the stack's account and region only (`aws:SourceArn`
//!   and `aws:SourceAccount`, as ECS recommends for task roles). The execution role's trust has
//!   no such condition: ECS documents it for the task role (task-iam-roles: "When creating your
//!   task IAM role, it is recommended that you use the `aws:SourceAccount` or `aws:SourceArn`
//!   condition keys"), while its documented execution-role trust policy has none
//!   (task_execution_IAM_role), and a condition on a key the service does not set would stop
//!   every task from starting.

use std::collections::BTreeSet;

use provision_config::PolicyStatement;
use provision_core::graph::{Graph, GraphError};
use provision_core::input::{Derived, Ref, Until};
use provision_core::names;
use provision_core::resource::Node;
use provision_iam::policy;
use provision_iam::{ManagedPoliciesSpec, RoleOut, RolePolicySpec, RoleSpec};
use serde_json::Value;

use super::{has_task_policy, log_group_name, task_policy};
use crate::backends::Backends;
use crate::images::RepositoryArn;
use crate::{Kinds, Project};

/// The roles, and the policies that must be in place before a task runs with them.
pub(super) struct Roles {
    pub execution: Ref<RoleOut>,
    pub task: Ref<RoleOut>,
    /// Every policy and attachment of both roles.
    pub policies: Vec<Ref<Value>>,
}

/// The execution role's permissions: pull from the app's repository (and get the registry
/// token, an action with no resource of its own), and write the app's log group.
pub(super) fn execution_policy(
    region: &str,
    account: &str,
    stack: &str,
    repository_arn: &str,
) -> Value {
    let mut statements = policy::ecr_pull(&[repository_arn.to_string()]);
    statements.push(policy::allow(
        &["logs:CreateLogStream", "logs:PutLogEvents"],
        &policy::log_group_arns(region, account, &log_group_name(stack)),
    ));
    policy::document(statements)
}

pub(super) fn add(
    g: &mut Graph,
    project: &Project,
    kinds: &Kinds,
    backends: &Backends,
    app_repository: &RepositoryArn,
) -> Result<Roles, GraphError> {
    let config = &project.config;
    let stack = project.stack_name();
    let role = |g: &mut Graph, id: &str, suffix: &str, trust: Value, description: &str| {
        g.insert::<RoleOut>(
            Node::new(id, kinds.iam.role.clone())
                .named(names::fit(&stack, suffix, names::limits::IAM_ROLE))
                .fixed(&RoleSpec {
                    assume_role_policy: trust,
                    description: description.to_string(),
                }),
        )
    };
    let execution = role(
        g,
        "web/role/execution",
        "app-execution-role",
        policy::trust("ecs-tasks.amazonaws.com"),
        "Lets ECS pull the app image and write its logs",
    )?;
    let task = role(
        g,
        "web/role/task",
        "app-task-role",
        policy::ecs_task_trust(&config.region, &config.account),
        "What the Streamlit app may call: the stack's endpoints and functions",
    )?;

    let (region, account, stack_name) =
        (config.region.clone(), config.account.clone(), stack.clone());
    let pull_and_log = Derived::new(app_repository.input(), move |repository_arn| {
        execution_policy(&region, &account, &stack_name, &repository_arn)
    });
    let execution_policy = g.insert(
        Node::new("web/role/execution/policy", kinds.iam.role_policy.clone()).spec(
            (execution.ready(), pull_and_log),
            |(role, document)| RolePolicySpec {
                role_name: role.role_name,
                policy_name: "pull-and-log".into(),
                document,
            },
        ),
    )?;
    let mut policies = vec![execution_policy.clone()];
    policies.push(no_managed_policies(
        g,
        kinds,
        "web/role/execution",
        &execution,
        &[execution_policy],
    )?);

    let extra = &config.ecs_policy_statements;
    let mut task_policies = Vec::new();
    if has_task_policy(backends, extra) {
        task_policies.push(add_task_policy(g, kinds, &task, backends, extra.clone())?);
    }
    policies.push(no_managed_policies(
        g,
        kinds,
        "web/role/task",
        &task,
        &task_policies,
    )?);
    policies.extend(task_policies);
    Ok(Roles {
        execution,
        task,
        policies,
    })
}

/// `<role>/managed-policies`: exactly none attached, so one an earlier version (or anyone)
/// attached is detached, after `after` (the role's own policies) are in place, so the role is
/// never left without what it needs.
fn no_managed_policies(
    g: &mut Graph,
    kinds: &Kinds,
    role_id: &str,
    role: &Ref<RoleOut>,
    after: &[Ref<Value>],
) -> Result<Ref<Value>, GraphError> {
    let node = Node::new(
        format!("{role_id}/managed-policies"),
        kinds.iam.managed_policies.clone(),
    )
    .spec(role.ready(), |role| ManagedPoliciesSpec {
        role_name: role.role_name,
        policy_arns: BTreeSet::new(),
    });
    let node = after
        .iter()
        .fold(node, |node, p| node.ordered_after(p, Until::Ready));
    g.insert(node)
}

/// `web/role/task/policy`: invoke the stack's endpoints and functions, plus the config's
/// statements. It needs the backends' ARNs only, not the backends being ready.
fn add_task_policy(
    g: &mut Graph,
    kinds: &Kinds,
    task: &Ref<RoleOut>,
    backends: &Backends,
    extra: Vec<PolicyStatement>,
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
