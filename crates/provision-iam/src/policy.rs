//! IAM policy documents, as JSON values.

use serde_json::{Value, json};

/// The partition of a region's ARNs (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The ARN of an AWS managed policy, such as `service-role/AWSLambdaBasicExecutionRole`.
pub fn aws_managed(region: &str, name: &str) -> String {
    format!("arn:{}:iam::aws:policy/{name}", partition(region))
}

pub const LAMBDA_BASIC_EXECUTION: &str = "service-role/AWSLambdaBasicExecutionRole";
pub const SAGEMAKER_FULL_ACCESS: &str = "AmazonSageMakerFullAccess";
pub const ECS_TASK_EXECUTION: &str = "service-role/AmazonECSTaskExecutionRolePolicy";

/// A trust policy letting one AWS service assume the role.
pub fn trust(service: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": service },
            "Action": "sts:AssumeRole"
        }]
    })
}

/// One `Allow` statement. Actions and resources are sorted and deduplicated, so the same
/// grant always reads the same and a reorder in the config is not a change.
pub fn allow<A: AsRef<str>, R: AsRef<str>>(actions: &[A], resources: &[R]) -> Value {
    let mut actions: Vec<&str> = actions.iter().map(AsRef::as_ref).collect();
    actions.sort_unstable();
    actions.dedup();
    let mut resources: Vec<&str> = resources.iter().map(AsRef::as_ref).collect();
    resources.sort_unstable();
    resources.dedup();
    json!({ "Effect": "Allow", "Action": actions, "Resource": resources })
}

/// A policy document of these statements.
pub fn document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_names_exactly_one_service() {
        let t = trust("ecs-tasks.amazonaws.com");
        assert_eq!(
            t["Statement"][0]["Principal"],
            json!({"Service": "ecs-tasks.amazonaws.com"})
        );
        assert_eq!(t["Statement"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn statements_are_normalised() {
        let a = allow(&["b:X", "a:Y", "a:Y"], &["arn:2", "arn:1"]);
        assert_eq!(
            a,
            json!({"Effect": "Allow", "Action": ["a:Y", "b:X"], "Resource": ["arn:1", "arn:2"]})
        );
    }

    #[test]
    fn managed_policy_arns_follow_the_partition() {
        assert_eq!(
            aws_managed("us-east-1", SAGEMAKER_FULL_ACCESS),
            "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
        );
        assert_eq!(
            aws_managed("cn-north-1", LAMBDA_BASIC_EXECUTION),
            "arn:aws-cn:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        );
    }
}
