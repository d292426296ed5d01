//! A Lambda function from an image: `function/<VARIABLE>`, its role (trusting Lambda, with the
//! basic execution policy and the config's statements), and the function, which waits for its
//! role, the role's policies and its image.

use std::collections::BTreeSet;

use provision_config::LambdaFunction;
use provision_core::graph::{Graph, GraphError};
use provision_core::input::Ref;
use provision_core::resource::Node;
use provision_iam::policy;
use provision_lambda::FunctionSpec;

use super::{
    FunctionHandle, FunctionOut, RoleParts, add_role, after_policies, fixed_document,
    function_name, function_role_name, statements_policy,
};
use crate::images::{Consumer, Images};
use crate::{Kinds, Project};

pub(super) fn add(
    g: &mut Graph,
    project: &Project,
    kinds: &Kinds,
    images: &mut Images<'_>,
    f: &LambdaFunction,
) -> Result<FunctionHandle, GraphError> {
    let stack = project.stack_name();
    let region = &project.config.region;
    let var = &f.environment_variable_name;
    let prefix = format!("function/{var}");
    let name = function_name(&stack, var);

    let (role, policies) = add_role(
        g,
        kinds,
        &prefix,
        RoleParts {
            name: function_role_name(&stack, var),
            // No `aws:SourceAccount`/`aws:SourceArn` condition: Lambda documents the execution
            // role's trust policy without one, and says `aws:SourceArn` "applies only to
            // policies where your Lambda function is the target resource" (Lambda Developer
            // Guide, lambda-intro-execution-role); a condition on a key Lambda does not set when
            // it assumes the role would make the function fail to start.
            trust: policy::trust("lambda.amazonaws.com"),
            description: format!("Runs the Lambda function {name}"),
            managed: BTreeSet::from([policy::aws_managed(region, policy::LAMBDA_BASIC_EXECUTION)]),
            inline: statements_policy(&f.policy_statements)
                .map(|d| ("policy", fixed_document(d)))
                .into_iter()
                .collect(),
            narrowed: false,
        },
    )?;
    let image = images.source(g, &f.image, f.platform, Consumer::Function)?;

    let (architecture, memory_size) = (f.platform.lambda_architecture(), f.memory_size);
    let timeout_seconds = f.timeout_minutes * 60;
    let environment = f.environment_variables.clone();
    let node = Node::new(prefix, kinds.backends.lambda.function.clone())
        .named(name.clone())
        .spec((role.ready(), image.ready()), move |(role, image)| {
            FunctionSpec {
                image_uri: image.image_uri,
                role_arn: role.role_arn,
                architecture: architecture.to_string(),
                memory_size,
                timeout_seconds,
                environment: environment.clone(),
            }
        });
    let function: Ref<FunctionOut> = g.insert(after_policies(node, &policies))?;
    Ok(FunctionHandle {
        environment_variable_name: var.clone(),
        function_name: name,
        function,
    })
}
