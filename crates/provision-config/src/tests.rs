//! The config validator: the example configs pass, and every kind of mistake is reported
//! with its key path and a message that says what is wanted.

use std::path::Path;

use serde_json::{Value, json};

use super::*;

/// A project folder with the three build folders the example config names.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for folder in [
        "streamlit_app",
        "functions/text_counterfactuals",
        "endpoints/serverless_explanations",
    ] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        std::fs::write(dir.path().join(folder).join("Dockerfile"), "FROM scratch\n").unwrap();
    }
    std::fs::create_dir_all(dir.path().join("functions/no_dockerfile")).unwrap();
    dir
}

fn example() -> Value {
    serde_json::from_str(include_str!("../../../config/default.json")).unwrap()
}

fn check(config: &Value, root: &Path) -> Result<Config, ConfigError> {
    parse(&config.to_string(), Path::new("test.json"), root)
}

#[test]
fn the_example_configs_are_valid() {
    let dir = project();
    for text in [
        include_str!("../../../config/default.json"),
        include_str!("../../../config/local.json"),
    ] {
        let c = parse(text, Path::new("x.json"), dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.lambda_functions.len(), 1);
        assert_eq!(c.sagemaker_endpoints.len(), 2);
        assert_eq!(c.lambda_functions[0].timeout_minutes, 9);
        assert_eq!(
            c.lambda_functions[0].image,
            ImageSource::Build {
                folder: "functions/text_counterfactuals".into()
            }
        );
    }
}

#[test]
fn defaults_follow_the_cdk_stack() {
    let dir = project();
    let c = check(
        &json!({
            "account": "123456789012", "region": "eu-west-1", "environment": "prod",
            "hosted_zone_id": "/hostedzone/Z1", "domain_name": "Example.COM.",
            "lambda_functions": [{"function_type": "from_docker_image", "environment_variable_name": "F", "ecr_repo": "repo", "tag": "v1"}]
        }),
        dir.path(),
    )
    .unwrap();
    assert_eq!(c.platform, Platform::Amd64);
    assert_eq!(c.hosted_zone_id, "Z1");
    assert_eq!(c.domain_name, "example.com");
    assert_eq!(c.app_domain(), "example.com", "prod serves the bare domain");
    let f = &c.lambda_functions[0];
    assert_eq!(
        (f.timeout_minutes, f.memory_size, f.platform),
        (5, 512, Platform::Amd64)
    );
    assert!(c.sagemaker_endpoints.is_empty() && c.ecs_policy_statements.is_empty());
}

/// An endpoint's role gets AmazonSageMakerFullAccess only when its config asks for it.
#[test]
fn sagemaker_full_access_is_off_unless_asked_for() {
    let dir = project();
    let mut config = example();
    set(
        &mut config,
        "sagemaker_endpoints[1].sagemaker_full_access",
        json!(true),
    );
    let c = check(&config, dir.path()).unwrap();
    let asked: Vec<bool> = c
        .sagemaker_endpoints
        .iter()
        .map(|e| e.sagemaker_full_access)
        .collect();
    assert_eq!(asked, [false, true]);
}

#[test]
fn non_prod_environments_get_a_subdomain() {
    assert_eq!(app_domain("dev", "example.com"), "dev.example.com");
    assert_eq!(app_domain("prod", "example.com"), "example.com");
}

#[test]
fn a_whole_cdk_json_is_accepted() {
    let dir = project();
    let cdk = json!({
        "app": "python3 app.py",
        "watch": {"include": ["**"]},
        "context": {
            "@aws-cdk/aws-lambda:recognizeLayerVersion": true,
            "@aws-cdk/core:checkSecretUsage": true,
            "account": "123456789012", "region": "us-east-1", "environment": "dev",
            "hosted_zone_id": "Z1", "domain_name": "example.com"
        }
    });
    let c = check(&cdk, dir.path()).unwrap();
    assert_eq!(c.environment, "dev");
}

#[test]
fn environment_values_may_be_numbers_or_booleans() {
    let dir = project();
    let mut c = example();
    c["streamlit_environment_variables"] = json!({"RETRIES": 3, "DEBUG": false, "NAME": "x"});
    let cfg = check(&c, dir.path()).unwrap();
    assert_eq!(cfg.streamlit_environment_variables["RETRIES"], "3");
    assert_eq!(cfg.streamlit_environment_variables["DEBUG"], "false");
}

/// Each case: a change to the example config, the key path the error must name, and a
/// fragment of the message.
type Case = (&'static str, fn(&mut Value), &'static str, &'static str);

fn set(v: &mut Value, path: &str, value: Value) {
    let mut at = v;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        let (key, index) = match p.split_once('[') {
            Some((k, rest)) => (
                k,
                Some(rest.trim_end_matches(']').parse::<usize>().unwrap()),
            ),
            None => (*p, None),
        };
        if last && index.is_none() {
            at[key] = value;
            return;
        }
        at = &mut at[key];
        if let Some(i) = index {
            if last {
                at[i] = value;
                return;
            }
            at = &mut at[i];
        }
    }
}

fn remove(v: &mut Value, path: &str) {
    let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
    let target = if parent.is_empty() {
        v
    } else {
        let mut at = v;
        for p in parent.split('.') {
            match p.split_once('[') {
                Some((k, rest)) => {
                    at = &mut at[k][rest.trim_end_matches(']').parse::<usize>().unwrap()]
                }
                None => at = &mut at[p],
            }
        }
        at
    };
    target.as_object_mut().unwrap().remove(key);
}

const CASES: &[Case] = &[
    // Top level: missing, wrong type, out of range, unknown.
    (
        "account missing",
        |c| remove(c, "account"),
        "account",
        "is required",
    ),
    (
        "account short",
        |c| set(c, "account", json!("12345")),
        "account",
        "12-digit",
    ),
    (
        "account number",
        |c| set(c, "account", json!(123456789012u64)),
        "account",
        "must be a string",
    ),
    (
        "region bogus",
        |c| set(c, "region", json!("mars-1")),
        "region",
        "not an AWS region",
    ),
    (
        "region missing",
        |c| remove(c, "region"),
        "region",
        "is required",
    ),
    (
        "environment upper",
        |c| set(c, "environment", json!("Dev")),
        "environment",
        "lower-case",
    ),
    (
        "environment long",
        |c| set(c, "environment", json!("a-very-long-environment-name")),
        "environment",
        "1 to 20",
    ),
    (
        "environment empty",
        |c| set(c, "environment", json!("")),
        "environment",
        "must not be empty",
    ),
    (
        "zone bad",
        |c| set(c, "hosted_zone_id", json!("zone one")),
        "hosted_zone_id",
        "hosted zone id",
    ),
    (
        "domain bad",
        |c| set(c, "domain_name", json!("not a domain")),
        "domain_name",
        "not a valid domain",
    ),
    (
        "domain single label",
        |c| set(c, "domain_name", json!("localhost")),
        "domain_name",
        "not a valid domain",
    ),
    (
        "domain too long for ACM",
        |c| {
            set(
                c,
                "domain_name",
                json!(format!("{}.example.com", "a".repeat(60))),
            )
        },
        "domain_name",
        "64 characters",
    ),
    (
        "platform wrong",
        |c| set(c, "platform", json!("x86_64")),
        "platform",
        "write `amd64`",
    ),
    (
        "platform type",
        |c| set(c, "platform", json!(64)),
        "platform",
        "\"arm64\" or \"amd64\"",
    ),
    (
        "unknown top key",
        |c| set(c, "platfrom", json!("arm64")),
        "platfrom",
        "did you mean `platform`",
    ),
    (
        "unknown far key",
        |c| set(c, "zzz", json!(1)),
        "zzz",
        "expected one of",
    ),
    (
        "functions not list",
        |c| set(c, "lambda_functions", json!({})),
        "lambda_functions",
        "must be a list",
    ),
    (
        "endpoints not list",
        |c| set(c, "sagemaker_endpoints", json!("x")),
        "sagemaker_endpoints",
        "must be a list",
    ),
    (
        "env vars not object",
        |c| set(c, "streamlit_environment_variables", json!(["A"])),
        "streamlit_environment_variables",
        "NAME: value",
    ),
    (
        "env var name bad",
        |c| set(c, "streamlit_environment_variables", json!({"1BAD": "x"})),
        "streamlit_environment_variables.1BAD",
        "not a valid environment variable name",
    ),
    (
        "env var value object",
        |c| set(c, "streamlit_environment_variables", json!({"A": {"b": 1}})),
        "streamlit_environment_variables.A",
        "string, number or boolean",
    ),
    (
        "ecs statements not list",
        |c| set(c, "ecs_policy_statements", json!({})),
        "ecs_policy_statements",
        "must be a list",
    ),
    (
        "ecs statement bad action",
        |c| {
            set(
                c,
                "ecs_policy_statements",
                json!([{"actions": ["InvokeEndpoint"], "resources": ["*"]}]),
            )
        },
        "ecs_policy_statements[0].actions[0]",
        "not an IAM action",
    ),
    (
        "ecs statement bad resource",
        |c| {
            set(
                c,
                "ecs_policy_statements",
                json!([{"actions": ["s3:GetObject"], "resources": ["my-bucket"]}]),
            )
        },
        "ecs_policy_statements[0].resources[0]",
        "not an ARN",
    ),
    (
        "ecs statement empty actions",
        |c| {
            set(
                c,
                "ecs_policy_statements",
                json!([{"actions": [], "resources": ["*"]}]),
            )
        },
        "ecs_policy_statements[0].actions",
        "must not be empty",
    ),
    (
        "ecs statement missing resources",
        |c| {
            set(
                c,
                "ecs_policy_statements",
                json!([{"actions": ["s3:GetObject"]}]),
            )
        },
        "ecs_policy_statements[0].resources",
        "is required",
    ),
    (
        "ecs statement unknown key",
        |c| {
            set(
                c,
                "ecs_policy_statements",
                json!([{"actions": ["s3:GetObject"], "resources": ["*"], "effect": "Deny"}]),
            )
        },
        "ecs_policy_statements[0].effect",
        "unknown key",
    ),
    // Functions.
    (
        "function type",
        |c| set(c, "lambda_functions[0].function_type", json!("from_zip")),
        "lambda_functions[0].function_type",
        "from_docker_image",
    ),
    (
        "function env name missing",
        |c| remove(c, "lambda_functions[0].environment_variable_name"),
        "lambda_functions[0].environment_variable_name",
        "is required",
    ),
    (
        "function env name bad",
        |c| {
            set(
                c,
                "lambda_functions[0].environment_variable_name",
                json!("A-B"),
            )
        },
        "lambda_functions[0].environment_variable_name",
        "not a valid environment variable name",
    ),
    (
        "function timeout high",
        |c| set(c, "lambda_functions[0].timeout", json!(16)),
        "lambda_functions[0].timeout",
        "between 1 and 15",
    ),
    (
        "function timeout zero",
        |c| set(c, "lambda_functions[0].timeout", json!(0)),
        "lambda_functions[0].timeout",
        "between 1 and 15",
    ),
    (
        "function timeout fraction",
        |c| set(c, "lambda_functions[0].timeout", json!(2.5)),
        "lambda_functions[0].timeout",
        "whole number",
    ),
    (
        "function timeout string",
        |c| set(c, "lambda_functions[0].timeout", json!("9")),
        "lambda_functions[0].timeout",
        "must be a number",
    ),
    (
        "function memory low",
        |c| set(c, "lambda_functions[0].memory_size", json!(64)),
        "lambda_functions[0].memory_size",
        "between 128 and 10240",
    ),
    (
        "function memory negative",
        |c| set(c, "lambda_functions[0].memory_size", json!(-1)),
        "lambda_functions[0].memory_size",
        "between 128 and 10240",
    ),
    (
        "function folder missing",
        |c| set(c, "lambda_functions[0].folder_name", json!("nope")),
        "lambda_functions[0].folder_name",
        "does not exist",
    ),
    (
        "function folder without Dockerfile",
        |c| set(c, "lambda_functions[0].folder_name", json!("no_dockerfile")),
        "lambda_functions[0].folder_name",
        "has no Dockerfile",
    ),
    (
        "function folder escapes",
        |c| set(c, "lambda_functions[0].folder_name", json!("../../etc")),
        "lambda_functions[0].folder_name",
        "not a path that leaves it",
    ),
    (
        "function folder absolute",
        |c| set(c, "lambda_functions[0].folder_name", json!("/etc")),
        "lambda_functions[0].folder_name",
        "not a path that leaves it",
    ),
    (
        "function folder and repo",
        |c| set(c, "lambda_functions[0].ecr_repo", json!("repo")),
        "lambda_functions[0]",
        "not both",
    ),
    (
        "function repo without tag",
        |c| {
            remove(c, "lambda_functions[0].folder_name");
            set(c, "lambda_functions[0].ecr_repo", json!("repo"))
        },
        "lambda_functions[0].tag",
        "is required with `ecr_repo`",
    ),
    (
        "function no image",
        |c| remove(c, "lambda_functions[0].folder_name"),
        "lambda_functions[0]",
        "needs an image",
    ),
    (
        "function repo upper",
        |c| {
            remove(c, "lambda_functions[0].folder_name");
            set(c, "lambda_functions[0].ecr_repo", json!("Repo"));
            set(c, "lambda_functions[0].tag", json!("v1"))
        },
        "lambda_functions[0].ecr_repo",
        "not a valid ECR repository name",
    ),
    (
        "function tag bad",
        |c| {
            remove(c, "lambda_functions[0].folder_name");
            set(c, "lambda_functions[0].ecr_repo", json!("repo"));
            set(c, "lambda_functions[0].tag", json!("v 1"))
        },
        "lambda_functions[0].tag",
        "not a valid image tag",
    ),
    (
        "function platform",
        |c| set(c, "lambda_functions[0].platform", json!("arm")),
        "lambda_functions[0].platform",
        "write `arm64`",
    ),
    (
        "function reserved env",
        |c| {
            set(
                c,
                "lambda_functions[0].environment_variables",
                json!({"AWS_REGION": "x"}),
            )
        },
        "lambda_functions[0].environment_variables.AWS_REGION",
        "set by Lambda itself",
    ),
    (
        "function env too big",
        |c| {
            set(
                c,
                "lambda_functions[0].environment_variables",
                json!({"BIG": "x".repeat(5000)}),
            )
        },
        "lambda_functions[0].environment_variables",
        "4 KB",
    ),
    (
        "function statement action",
        |c| {
            set(
                c,
                "lambda_functions[0].policy_statements[0].actions[0]",
                json!("sagemaker InvokeEndpoint"),
            )
        },
        "lambda_functions[0].policy_statements[0].actions[0]",
        "not an IAM action",
    ),
    (
        "function unknown key",
        |c| set(c, "lambda_functions[0].timout", json!(3)),
        "lambda_functions[0].timout",
        "did you mean `timeout`",
    ),
    (
        "function not object",
        |c| set(c, "lambda_functions[0]", json!("f")),
        "lambda_functions[0]",
        "must be an object",
    ),
    // Endpoints.
    (
        "endpoint type missing",
        |c| remove(c, "sagemaker_endpoints[0].endpoint_type"),
        "sagemaker_endpoints[0].endpoint_type",
        "is required",
    ),
    (
        "endpoint type typo",
        |c| {
            set(
                c,
                "sagemaker_endpoints[0].endpoint_type",
                json!("hugingface"),
            )
        },
        "sagemaker_endpoints[0].endpoint_type",
        "did you mean `huggingface`",
    ),
    (
        "endpoint name bad",
        |c| set(c, "sagemaker_endpoints[0].endpoint_name", json!("bad_name")),
        "sagemaker_endpoints[0].endpoint_name",
        "not a valid SageMaker endpoint name",
    ),
    (
        "endpoint name long",
        |c| {
            set(
                c,
                "sagemaker_endpoints[0].endpoint_name",
                json!("a".repeat(64)),
            )
        },
        "sagemaker_endpoints[0].endpoint_name",
        "1 to 63",
    ),
    (
        "endpoint name missing",
        |c| remove(c, "sagemaker_endpoints[0].endpoint_name"),
        "sagemaker_endpoints[0].endpoint_name",
        "is required",
    ),
    (
        "endpoint names duplicate",
        |c| {
            set(
                c,
                "sagemaker_endpoints[1].endpoint_name",
                json!("Sentiment-Unmasking"),
            )
        },
        "sagemaker_endpoints[1].endpoint_name",
        "already the name of sagemaker_endpoints[0]",
    ),
    (
        "serverless memory step",
        |c| {
            set(
                c,
                "sagemaker_endpoints[1].serverless_config.memory_size_in_mb",
                json!(2000),
            )
        },
        "sagemaker_endpoints[1].serverless_config.memory_size_in_mb",
        "steps of 1024",
    ),
    (
        "serverless memory high",
        |c| {
            set(
                c,
                "sagemaker_endpoints[1].serverless_config.memory_size_in_mb",
                json!(7168),
            )
        },
        "sagemaker_endpoints[1].serverless_config.memory_size_in_mb",
        "1024 to 6144",
    ),
    (
        "serverless concurrency high",
        |c| {
            set(
                c,
                "sagemaker_endpoints[0].serverless_config.max_concurrency",
                json!(201),
            )
        },
        "sagemaker_endpoints[0].serverless_config.max_concurrency",
        "between 1 and 200",
    ),
    (
        "serverless concurrency missing",
        |c| {
            remove(
                c,
                "sagemaker_endpoints[0].serverless_config.max_concurrency",
            )
        },
        "sagemaker_endpoints[0].serverless_config.max_concurrency",
        "is required",
    ),
    (
        "provisioned above max",
        |c| {
            set(
                c,
                "sagemaker_endpoints[0].serverless_config.provisioned_concurrency",
                json!(5),
            )
        },
        "sagemaker_endpoints[0].serverless_config.provisioned_concurrency",
        "must not exceed max_concurrency",
    ),
    (
        "serverless unknown key",
        |c| {
            set(
                c,
                "sagemaker_endpoints[0].serverless_config.memory",
                json!(1024),
            )
        },
        "sagemaker_endpoints[0].serverless_config.memory",
        "unknown key",
    ),
    (
        "no capacity",
        |c| remove(c, "sagemaker_endpoints[0].serverless_config"),
        "sagemaker_endpoints[0]",
        "needs `serverless_config`",
    ),
    (
        "both capacities",
        |c| {
            set(
                c,
                "sagemaker_endpoints[0].production_variants",
                json!({"instance_type": "ml.m5.large"}),
            )
        },
        "sagemaker_endpoints[0]",
        "not both",
    ),
    (
        "variants as list",
        |c| {
            remove(c, "sagemaker_endpoints[0].serverless_config");
            set(
                c,
                "sagemaker_endpoints[0].production_variants",
                json!([{"instance_type": "ml.m5.large"}]),
            )
        },
        "sagemaker_endpoints[0].production_variants",
        "not a list",
    ),
    (
        "variant instance type",
        |c| {
            remove(c, "sagemaker_endpoints[0].serverless_config");
            set(
                c,
                "sagemaker_endpoints[0].production_variants",
                json!({"instance_type": "m5.large"}),
            )
        },
        "sagemaker_endpoints[0].production_variants.instance_type",
        "not a SageMaker instance type",
    ),
    (
        "variant count zero",
        |c| {
            remove(c, "sagemaker_endpoints[0].serverless_config");
            set(
                c,
                "sagemaker_endpoints[0].production_variants",
                json!({"instance_type": "ml.m5.large", "initial_instance_count": 0}),
            )
        },
        "sagemaker_endpoints[0].production_variants.initial_instance_count",
        "between 1 and 100",
    ),
    (
        "huggingface without model",
        |c| remove(c, "sagemaker_endpoints[0].model_name"),
        "sagemaker_endpoints[0]",
        "needs `model_name`",
    ),
    (
        "huggingface model data url",
        |c| {
            set(
                c,
                "sagemaker_endpoints[0].model_data_url",
                json!("https://bucket/model.tar.gz"),
            )
        },
        "sagemaker_endpoints[0].model_data_url",
        "not an S3 object URI",
    ),
    (
        "huggingface gpu serverless",
        |c| set(c, "sagemaker_endpoints[0].use_gpu", json!(true)),
        "sagemaker_endpoints[0].use_gpu",
        "no GPUs",
    ),
    (
        "sagemaker_full_access type",
        |c| {
            set(
                c,
                "sagemaker_endpoints[1].sagemaker_full_access",
                json!("yes"),
            )
        },
        "sagemaker_endpoints[1].sagemaker_full_access",
        "true or false",
    ),
    (
        "huggingface use_gpu type",
        |c| set(c, "sagemaker_endpoints[0].use_gpu", json!("yes")),
        "sagemaker_endpoints[0].use_gpu",
        "true or false",
    ),
    (
        "huggingface version",
        |c| set(c, "sagemaker_endpoints[0].pytorch_version", json!("latest")),
        "sagemaker_endpoints[0].pytorch_version",
        "not a version number",
    ),
    (
        "huggingface image uri",
        |c| set(c, "sagemaker_endpoints[0].image_uri", json!("no-tag-here")),
        "sagemaker_endpoints[0].image_uri",
        "tag or digest",
    ),
    (
        "huggingface custom key",
        |c| set(c, "sagemaker_endpoints[0].dockerfile_folder", json!("x")),
        "sagemaker_endpoints[0].dockerfile_folder",
        "unknown key",
    ),
    (
        "custom folder missing",
        |c| {
            set(
                c,
                "sagemaker_endpoints[1].dockerfile_folder",
                json!("missing"),
            )
        },
        "sagemaker_endpoints[1].dockerfile_folder",
        "does not exist",
    ),
    (
        "custom folder escapes",
        |c| {
            set(
                c,
                "sagemaker_endpoints[1].dockerfile_folder",
                json!("../streamlit_app"),
            )
        },
        "sagemaker_endpoints[1].dockerfile_folder",
        "not a path that leaves it",
    ),
    (
        "custom image tag without repo",
        |c| {
            remove(c, "sagemaker_endpoints[1].dockerfile_folder");
            set(c, "sagemaker_endpoints[1].image_tag", json!("v1"))
        },
        "sagemaker_endpoints[1].image_repo_name",
        "is required with `image_tag`",
    ),
    (
        "custom bucket bad",
        |c| {
            set(
                c,
                "sagemaker_endpoints[1].model_data_bucket",
                json!("Bad_Bucket"),
            )
        },
        "sagemaker_endpoints[1].model_data_bucket",
        "not a valid S3 bucket name",
    ),
    (
        "custom arm serverless",
        |c| set(c, "sagemaker_endpoints[1].platform", json!("arm64")),
        "sagemaker_endpoints[1].platform",
        "x86_64 only",
    ),
    (
        "custom env not object",
        |c| {
            set(
                c,
                "sagemaker_endpoints[1].container_environment",
                json!("HUB=x"),
            )
        },
        "sagemaker_endpoints[1].container_environment",
        "NAME: value",
    ),
    (
        "custom huggingface key",
        |c| set(c, "sagemaker_endpoints[1].model_task", json!("fill-mask")),
        "sagemaker_endpoints[1].model_task",
        "unknown key",
    ),
    (
        "huggingface region without image",
        |c| set(c, "region", json!("ap-southeast-9")),
        "sagemaker_endpoints[0].image_uri",
        "no HuggingFace inference image",
    ),
    (
        "function name without letters",
        |c| {
            set(
                c,
                "lambda_functions[0].environment_variable_name",
                json!("__"),
            )
        },
        "lambda_functions[0].environment_variable_name",
        "needs a letter or digit",
    ),
    (
        "function names collide",
        |c| {
            let mut second = c["lambda_functions"][0].clone();
            second["environment_variable_name"] = json!("Counterfactual__Lambda");
            c["lambda_functions"].as_array_mut().unwrap().push(second);
        },
        "lambda_functions[1].environment_variable_name",
        "same function name (`counterfactual-lambda`) as lambda_functions[0]",
    ),
    // Names the app receives must be distinct.
    (
        "duplicate env var with app",
        |c| {
            set(
                c,
                "streamlit_environment_variables",
                json!({"COUNTERFACTUAL_LAMBDA": "x"}),
            )
        },
        "lambda_functions[0].environment_variable_name",
        "already used by streamlit_environment_variables.COUNTERFACTUAL_LAMBDA",
    ),
    (
        "duplicate env var between backends",
        |c| {
            set(
                c,
                "sagemaker_endpoints[1].environment_variable_name",
                json!("COUNTERFACTUAL_LAMBDA"),
            )
        },
        "sagemaker_endpoints[1].environment_variable_name",
        "already used by lambda_functions[0]",
    ),
];

#[test]
fn every_broken_config_is_refused_with_its_key_path() {
    let dir = project();
    assert!(
        CASES.len() >= 40,
        "the suite covers at least 40 broken configs"
    );
    for (name, mutate, path, fragment) in CASES {
        let mut c = example();
        mutate(&mut c);
        let err = match check(&c, dir.path()) {
            Ok(_) => panic!("{name}: accepted a broken config"),
            Err(e) => e,
        };
        let issues = err.issues();
        let hit = issues.iter().find(|i| i.path == *path);
        match hit {
            Some(i) => assert!(
                i.message.contains(fragment),
                "{name}: {path}: {:?} should contain {fragment:?}",
                i.message
            ),
            None => panic!("{name}: no issue at {path}; got {issues:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("test.json"),
            "{name}: the message names the file: {text}"
        );
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let dir = project();
    let mut c = example();
    set(&mut c, "account", json!("1"));
    set(&mut c, "lambda_functions[0].timeout", json!(99));
    set(
        &mut c,
        "sagemaker_endpoints[0].serverless_config.max_concurrency",
        json!(0),
    );
    let err = check(&c, dir.path()).unwrap_err();
    let paths: Vec<&str> = err.issues().iter().map(|i| i.path.as_str()).collect();
    assert!(paths.contains(&"account"));
    assert!(paths.contains(&"lambda_functions[0].timeout"));
    assert!(paths.contains(&"sagemaker_endpoints[0].serverless_config.max_concurrency"));
}

#[test]
fn broken_json_names_the_line() {
    let dir = project();
    let err = parse(
        "{\n  \"account\": \"1\",\n  oops\n}",
        Path::new("c.json"),
        dir.path(),
    )
    .unwrap_err();
    match &err {
        ConfigError::Syntax { line, .. } => assert_eq!(*line, 3),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("c.json"));
    for text in ["", "[]", "42", "null", "\"x\""] {
        assert!(
            parse(text, Path::new("c.json"), dir.path()).is_err(),
            "{text:?}"
        );
    }
}

#[test]
fn a_folder_that_symlinks_out_of_the_project_is_refused() {
    let dir = project();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outside.path(), dir.path().join("functions/escape")).unwrap();
        let mut c = example();
        set(&mut c, "lambda_functions[0].folder_name", json!("escape"));
        let err = check(&c, dir.path()).unwrap_err();
        assert!(
            err.issues()[0].message.contains("outside the project"),
            "{err}"
        );
    }
}

#[test]
fn down_needs_no_folders() {
    let empty = tempfile::tempdir().unwrap();
    let text = include_str!("../../../config/default.json");
    assert!(parse(text, Path::new("x"), empty.path()).is_err());
    assert!(parse_with(text, Path::new("x"), empty.path(), Checks::ConfigOnly).is_ok());
}

#[test]
fn no_input_panics() {
    // A cheap stand-in for the fuzz target: mangled versions of the example never panic.
    let dir = project();
    let base = include_str!("../../../config/default.json");
    for cut in (0..base.len()).step_by(7) {
        let _ = parse(&base[..cut], Path::new("x"), dir.path());
        let mut swapped = base.as_bytes().to_vec();
        swapped[cut] = b'"';
        let _ = parse(
            &String::from_utf8_lossy(&swapped),
            Path::new("x"),
            dir.path(),
        );
    }
}

#[test]
fn did_you_mean_suggests_close_words_only() {
    assert_eq!(did_you_mean("acount", TOP_KEYS), Some("account"));
    assert_eq!(did_you_mean("regoin", TOP_KEYS), Some("region"));
    assert_eq!(did_you_mean("completely_different", TOP_KEYS), None);
}

#[test]
fn an_image_uri_deploys_huggingface_models_in_any_region() {
    let dir = project();
    let mut c = example();
    set(&mut c, "region", json!("ap-southeast-9"));
    set(
        &mut c,
        "sagemaker_endpoints[0].image_uri",
        json!("123456789012.dkr.ecr.ap-southeast-9.amazonaws.com/hf:1"),
    );
    let cfg = check(&c, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        &cfg.sagemaker_endpoints[0].model,
        EndpointModel::Huggingface {
            image_uri: Some(_),
            ..
        }
    ));
}
