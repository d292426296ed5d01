//! IAM policy documents, as JSON values: trust policies, statements, and the ARNs they name.
//!
//! Every document here is built to grant what a role is used for and nothing more; the
//! sources for what each service needs are cited where the document is made.

use serde_json::{Map, Value, json};

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

/// A trust policy letting one AWS service assume the role, on any of its resources' behalf.
pub fn trust(service: &str) -> Value {
    trust_when(service, None)
}

/// A trust policy letting one AWS service assume the role when `condition` holds (an IAM
/// `Condition` block), or always when it is `None`.
pub fn trust_when(service: &str, condition: Option<Value>) -> Value {
    let mut statement = Map::new();
    statement.insert("Effect".into(), json!("Allow"));
    statement.insert("Principal".into(), json!({ "Service": service }));
    statement.insert("Action".into(), json!("sts:AssumeRole"));
    if let Some(c) = condition {
        statement.insert("Condition".into(), c);
    }
    json!({ "Version": "2012-10-17", "Statement": [Value::Object(statement)] })
}

/// The trust policy of an ECS task role: ECS tasks of this account and region only.
///
/// ECS recommends both keys in the task role's trust relationship against the confused deputy
/// problem, with the ARN wildcarded after the account (a cluster cannot be named there):
/// "When creating your task IAM role, it is recommended that you use the `aws:SourceAccount` or
/// `aws:SourceArn` condition keys ... Using the `aws:SourceArn` condition key to specify a
/// specific cluster is not currently supported" (Amazon ECS Developer Guide, task-iam-roles).
pub fn ecs_task_trust(region: &str, account: &str) -> Value {
    trust_when(
        "ecs-tasks.amazonaws.com",
        Some(json!({
            "ArnLike": { "aws:SourceArn": format!("arn:{}:ecs:{region}:{account}:*", partition(region)) },
            "StringEquals": { "aws:SourceAccount": account },
        })),
    )
}

/// The trust policy of a SageMaker endpoint's execution role: SageMaker inference of this
/// account and region only.
///
/// This is SageMaker's documented template for real-time, serverless and asynchronous
/// inference, and only that: "Note that because the account number is part of the
/// `aws:SourceArn` value, you do not need to specify an `aws:SourceAccount` value ... Do not
/// replace the `aws:SourceArn` in this template with the full ARN of a specific model or
/// endpoint. The ARN must be in the format provided above. The asterisk in the ARN template
/// does not stand for wildcard" (SageMaker Developer Guide, security-confused-deputy-prevention,
/// "SageMaker Inference"). A condition on a key SageMaker does not document for inference could
/// deny the AssumeRole an endpoint depends on, so `aws:SourceAccount` is not added.
pub fn sagemaker_inference_trust(region: &str, account: &str) -> Value {
    trust_when(
        "sagemaker.amazonaws.com",
        Some(json!({
            "ArnLike": { "aws:SourceArn": format!("arn:{}:sagemaker:{region}:{account}:*", partition(region)) },
        })),
    )
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

/// One `Allow` statement that applies only when `condition` (an IAM `Condition` block) holds.
pub fn allow_when<A: AsRef<str>, R: AsRef<str>>(
    actions: &[A],
    resources: &[R],
    condition: Value,
) -> Value {
    let mut statement = allow(actions, resources);
    if let Some(s) = statement.as_object_mut() {
        s.insert("Condition".into(), condition);
    }
    statement
}

/// A policy document of these statements.
pub fn document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

// ---------------------------------------------------------------------------------------------
// ARNs

/// The ARN of an ECR repository.
pub fn ecr_repository_arn(region: &str, account: &str, repository: &str) -> String {
    format!(
        "arn:{}:ecr:{region}:{account}:repository/{repository}",
        partition(region)
    )
}

/// The ARN of the ECR repository an image URI names
/// (`<account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>[:tag|@digest]`), or `None` if
/// the URI is not an ECR image.
pub fn ecr_repository_arn_of_image(image_uri: &str) -> Option<String> {
    let (host, path) = image_uri.split_once('/')?;
    let mut labels = host.split('.');
    let account = labels.next()?;
    let (dkr, ecr, region) = (labels.next()?, labels.next()?, labels.next()?);
    let valid_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    if !valid_account || dkr != "dkr" || ecr != "ecr" || region.is_empty() {
        return None;
    }
    // The digest goes first: a tag never contains '@', and a registry path never ':'.
    let path = path.split_once('@').map_or(path, |(p, _)| p);
    let repository = path.rsplit_once(':').map_or(path, |(p, _)| p);
    (!repository.is_empty()).then(|| ecr_repository_arn(region, account, repository))
}

/// The ARNs a role needs to write a log group: the group (`CreateLogGroup`,
/// `CreateLogStream`, `DescribeLogStreams`) and its streams (`PutLogEvents`, which CloudWatch
/// Logs authorises on `log-group:<name>:log-stream:<stream>`).
pub fn log_group_arns(region: &str, account: &str, log_group: &str) -> [String; 2] {
    let group = format!(
        "arn:{}:logs:{region}:{account}:log-group:{log_group}",
        partition(region)
    );
    [group.clone(), format!("{group}:*")]
}

/// The ARN of an S3 bucket, or of objects in it (`bucket/key`, `bucket/*`).
pub fn s3_arn(region: &str, resource: &str) -> String {
    format!("arn:{}:s3:::{resource}", partition(region))
}

// ---------------------------------------------------------------------------------------------
// Grants

/// Pulling images from exactly `repositories`: what CDK's `Repository.grantPull` grants
/// (aws-cdk-lib/aws-ecr/lib/repository.ts: `ecr:BatchCheckLayerAvailability`,
/// `ecr:GetDownloadUrlForLayer`, `ecr:BatchGetImage` on the repository, and
/// `ecr:GetAuthorizationToken` on `*`, an action with no resource of its own).
pub fn ecr_pull(repositories: &[String]) -> Vec<Value> {
    vec![
        allow(&["ecr:GetAuthorizationToken"], &["*"]),
        allow(
            &[
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            repositories,
        ),
    ]
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
        assert!(t["Statement"][0].get("Condition").is_none());
    }

    #[test]
    fn task_roles_trust_ecs_tasks_of_the_account_only() {
        let t = ecs_task_trust("eu-west-1", "123456789012");
        assert_eq!(
            t["Statement"][0],
            json!({
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "ArnLike": {"aws:SourceArn": "arn:aws:ecs:eu-west-1:123456789012:*"},
                    "StringEquals": {"aws:SourceAccount": "123456789012"},
                },
            })
        );
        let china = ecs_task_trust("cn-north-1", "123456789012");
        assert_eq!(
            china["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"],
            "arn:aws-cn:ecs:cn-north-1:123456789012:*"
        );
    }

    #[test]
    fn endpoint_roles_trust_sagemaker_inference_of_the_account_as_documented() {
        let t = sagemaker_inference_trust("us-east-1", "123456789012");
        assert_eq!(
            t["Statement"][0]["Condition"],
            json!({"ArnLike": {"aws:SourceArn": "arn:aws:sagemaker:us-east-1:123456789012:*"}})
        );
        assert_eq!(
            t["Statement"][0]["Principal"],
            json!({"Service": "sagemaker.amazonaws.com"})
        );
    }

    #[test]
    fn statements_are_normalised() {
        let a = allow(&["b:X", "a:Y", "a:Y"], &["arn:2", "arn:1"]);
        assert_eq!(
            a,
            json!({"Effect": "Allow", "Action": ["a:Y", "b:X"], "Resource": ["arn:1", "arn:2"]})
        );
        let c = allow_when(
            &["s3:ListBucket"],
            &["arn:aws:s3:::b"],
            json!({"StringLike": {"s3:prefix": ["k"]}}),
        );
        assert_eq!(c["Condition"], json!({"StringLike": {"s3:prefix": ["k"]}}));
        assert_eq!(c["Action"], json!(["s3:ListBucket"]));
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

    #[test]
    fn image_uris_name_their_repository() {
        let hf = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:1.13-transformers4.26-cpu-py39-ubuntu20.04";
        assert_eq!(
            ecr_repository_arn_of_image(hf).as_deref(),
            Some("arn:aws:ecr:us-east-1:763104351884:repository/huggingface-pytorch-inference")
        );
        let built =
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/streamlit-app-dev/endpoints/x@sha256:abc";
        assert_eq!(
            ecr_repository_arn_of_image(built).as_deref(),
            Some("arn:aws:ecr:eu-west-1:123456789012:repository/streamlit-app-dev/endpoints/x")
        );
        let china =
            "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/huggingface-pytorch-inference:1.13-x";
        assert_eq!(
            ecr_repository_arn_of_image(china).as_deref(),
            Some("arn:aws-cn:ecr:cn-north-1:727897471807:repository/huggingface-pytorch-inference")
        );
        for not_ecr in [
            "docker.io/library/python:3.12",
            "python:3.12",
            "123.dkr.ecr.us-east-1.amazonaws.com/r:1",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/",
        ] {
            assert_eq!(ecr_repository_arn_of_image(not_ecr), None, "{not_ecr}");
        }
    }

    #[test]
    fn pulls_name_the_repositories_and_only_the_token_is_unscoped() {
        let pull = ecr_pull(&["arn:aws:ecr:us-east-1:1:repository/r".to_string()]);
        assert_eq!(
            pull,
            [
                json!({"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": ["*"]}),
                json!({"Effect": "Allow", "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": ["arn:aws:ecr:us-east-1:1:repository/r"]}),
            ]
        );
        assert_eq!(
            log_group_arns("us-east-1", "1", "/ecs/s/app"),
            [
                "arn:aws:logs:us-east-1:1:log-group:/ecs/s/app",
                "arn:aws:logs:us-east-1:1:log-group:/ecs/s/app:*"
            ]
        );
        assert_eq!(s3_arn("us-gov-west-1", "b/k"), "arn:aws-us-gov:s3:::b/k");
    }
}
