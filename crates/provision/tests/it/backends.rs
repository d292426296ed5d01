//! The machine-learning backends end to end against the emulator: SageMaker endpoints of both
//! types (serverless and on instances, with model data in S3 or not, two built from one
//! folder) and two image functions deploy with every setting as configured, a rerun changes
//! nothing, a function's memory changes with one call, and `down` leaves nothing behind.
//!
//! The emulator does not implement `UpdateEndpoint` (it answers 500). The switch of an
//! endpoint to a new configuration is therefore proved against the SDK's mock client in
//! provision-sagemaker's tests (new configuration, `UpdateEndpoint`, wait for `InService`,
//! then delete the old one); here the emulator shows the rest of that path for real: a
//! memory change plans a new configuration and an endpoint update, creates the configuration
//! under a new name, and when the switch fails the endpoint keeps serving the old
//! configuration, which is kept until a switch succeeds or the change is reverted.

// The helpers below are test code too (clippy only knows `#[test]` functions as such): a
// failed call is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{Stack, mutating_calls, mutating_operations};

const STACK: &str = "streamlit-app-local";
const MODELS_BUCKET: &str = "provision-test-models";
const DATA_BUCKET: &str = "provision-test-explanations";
const HF_IMAGE: &str = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:1.13-transformers4.26-cpu-py39-ubuntu20.04";

/// The original project's shape (a HuggingFace serverless endpoint with model data in S3, two
/// custom-image serverless endpoints from one folder with different environments, a function
/// that may invoke endpoints with a 9-minute timeout), plus an endpoint on instances and a
/// second function, for arm64, with no environment and no statements.
fn backends(config: &mut Value) {
    config["sagemaker_endpoints"] = json!([
        {
            "endpoint_type": "huggingface",
            "environment_variable_name": "SENTIMENT_UNMASKING_MODEL",
            "endpoint_name": "sentiment-unmasking",
            "model_name": "distilroberta-base",
            "model_task": "fill-mask",
            "model_data_url": format!("s3://{MODELS_BUCKET}/unmasking/model.tar.gz"),
            "serverless_config": {"memory_size_in_mb": 3072, "max_concurrency": 1}
        },
        {
            "endpoint_type": "image_and_model_data",
            "environment_variable_name": "SENTIMENT_EXPLANATIONS_MODEL",
            "endpoint_name": "sentiment-explanations",
            "dockerfile_folder": "serverless_explanations",
            "container_environment": {"HUB_MODEL_NAME": "distilbert-base-uncased-finetuned-sst-2-english"},
            "serverless_config": {"memory_size_in_mb": 4096, "max_concurrency": 2}
        },
        {
            "endpoint_type": "image_and_model_data",
            "environment_variable_name": "SENTIMENT_EXPLANATIONS_LARGE_MODEL",
            "endpoint_name": "sentiment-explanations-large",
            "dockerfile_folder": "serverless_explanations",
            "container_environment": {"HUB_MODEL_NAME": "distilbert-base-uncased", "MAX_LENGTH": 256},
            "model_data_bucket": DATA_BUCKET,
            "serverless_config": {"memory_size_in_mb": 2048, "max_concurrency": 2, "provisioned_concurrency": 1}
        },
        {
            "endpoint_type": "huggingface",
            "environment_variable_name": "TOXICITY_MODEL",
            "endpoint_name": "toxicity",
            "model_name": "unitary/toxic-bert",
            "model_task": "text-classification",
            "production_variants": {"instance_type": "ml.m5.large", "initial_instance_count": 1}
        }
    ]);
    let functions = config["lambda_functions"].as_array_mut().unwrap();
    functions.push(json!({
        "function_type": "from_docker_image",
        "environment_variable_name": "SUMMARY_LAMBDA",
        "folder_name": "text_counterfactuals",
        "platform": "arm64",
        "memory_size": 2048,
        "timeout": 1
    }));
}

use provision_iam::decode_document as document;

/// A role's trusted service, attached managed policies and inline policy documents.
async fn role(stack: &Stack, name: &str) -> (Value, Vec<String>, BTreeMap<String, Value>) {
    let iam = stack.iam();
    let r = iam.get_role().role_name(name).send().await.unwrap();
    let r = r.role().unwrap();
    let trust = document(r.assume_role_policy_document().unwrap());
    let tags: BTreeMap<&str, &str> = r.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(
        tags.get("provision:stack"),
        Some(&STACK),
        "{name} is tagged as the stack's"
    );
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .unwrap();
    let mut managed: Vec<String> = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_string))
        .collect();
    managed.sort();
    let mut inline = BTreeMap::new();
    for p in iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .unwrap()
        .policy_names()
    {
        let doc = iam
            .get_role_policy()
            .role_name(name)
            .policy_name(p)
            .send()
            .await
            .unwrap();
        inline.insert(p.clone(), document(doc.policy_document()));
    }
    (
        trust["Statement"][0]["Principal"]["Service"].clone(),
        managed,
        inline,
    )
}

/// What SageMaker says about an endpoint: its status, configuration's variant, and model.
struct Served {
    status: String,
    config_name: String,
    variant: aws_sdk_sagemaker::types::ProductionVariant,
    model: aws_sdk_sagemaker::operation::describe_model::DescribeModelOutput,
}

async fn served(stack: &Stack, endpoint: &str) -> Served {
    let sm = stack.sagemaker();
    let e = sm
        .describe_endpoint()
        .endpoint_name(endpoint)
        .send()
        .await
        .unwrap();
    let config_name = e.endpoint_config_name().unwrap().to_string();
    let c = sm
        .describe_endpoint_config()
        .endpoint_config_name(&config_name)
        .send()
        .await
        .unwrap();
    let variant = c.production_variants()[0].clone();
    let model = sm
        .describe_model()
        .model_name(variant.model_name().unwrap())
        .send()
        .await
        .unwrap();
    Served {
        status: e.endpoint_status().unwrap().as_str().to_string(),
        config_name,
        variant,
        model,
    }
}

fn environment(
    model: &aws_sdk_sagemaker::operation::describe_model::DescribeModelOutput,
) -> BTreeMap<String, String> {
    model
        .primary_container()
        .and_then(|c| c.environment())
        .map(|e| e.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// The image outputs the state records for a built folder and platform.
fn image_uri(stack: &Stack, id: &str) -> String {
    stack.state()["resources"][id]["outputs"]["image_uri"]
        .as_str()
        .unwrap_or_else(|| panic!("no image {id}"))
        .to_string()
}

async fn sagemaker_names(stack: &Stack) -> (Vec<String>, Vec<String>, Vec<String>) {
    let sm = stack.sagemaker();
    let endpoints = sm.list_endpoints().send().await.unwrap();
    let configs = sm.list_endpoint_configs().send().await.unwrap();
    let models = sm.list_models().send().await.unwrap();
    (
        endpoints
            .endpoints()
            .iter()
            .map(|e| e.endpoint_name().unwrap_or_default().to_string())
            .collect(),
        configs
            .endpoint_configs()
            .iter()
            .map(|c| c.endpoint_config_name().unwrap_or_default().to_string())
            .collect(),
        models
            .models()
            .iter()
            .map(|m| m.model_name().unwrap_or_default().to_string())
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_and_functions_deploy_as_configured_rerun_unchanged_update_in_place_and_tear_down()
 {
    let mut stack = Stack::new().await.with_config(backends);
    // The model data must exist: `up` checks it before creating anything.
    stack
        .put_object(&format!("s3://{MODELS_BUCKET}/unmasking/model.tar.gz"))
        .await;
    let run = stack.run(&["up", "--yes", "--json"]).await.success();
    // up finishes when every endpoint is in service, and says so for each.
    for e in [
        "sentiment-unmasking",
        "sentiment-explanations",
        "sentiment-explanations-large",
        "toxicity",
    ] {
        assert!(
            run.stderr
                .contains(&format!("endpoint/{e}: endpoint {e} is InService")),
            "{e}:\n{}",
            run.stderr
        );
    }
    let first = run.json();

    // The app receives each backend's name under its variable.
    let outputs = &first["outputs"];
    assert_eq!(
        outputs["COUNTERFACTUAL_LAMBDA"],
        "streamlit-app-local-counterfactual-lambda"
    );
    assert_eq!(
        outputs["SUMMARY_LAMBDA"],
        "streamlit-app-local-summary-lambda"
    );
    assert_eq!(outputs["SENTIMENT_UNMASKING_MODEL"], "sentiment-unmasking");
    assert_eq!(
        outputs["SENTIMENT_EXPLANATIONS_MODEL"],
        "sentiment-explanations"
    );
    assert_eq!(
        outputs["SENTIMENT_EXPLANATIONS_LARGE_MODEL"],
        "sentiment-explanations-large"
    );
    assert_eq!(outputs["TOXICITY_MODEL"], "toxicity");

    // HuggingFace, serverless, model data in S3: the region's container, the model's id and
    // task, the data, and read access to exactly that object and bucket.
    let hf = served(&stack, "sentiment-unmasking").await;
    assert_eq!(hf.status, "InService");
    assert!(
        hf.config_name
            .starts_with("streamlit-app-local-sentiment-unmasking-"),
        "{}",
        hf.config_name
    );
    let serverless = hf.variant.serverless_config().unwrap();
    assert_eq!(
        (
            serverless.memory_size_in_mb(),
            serverless.max_concurrency(),
            serverless.provisioned_concurrency()
        ),
        (Some(3072), Some(1), None)
    );
    let container = hf.model.primary_container().unwrap();
    assert_eq!(container.image(), Some(HF_IMAGE));
    assert_eq!(
        container.model_data_url(),
        Some(format!("s3://{MODELS_BUCKET}/unmasking/model.tar.gz").as_str())
    );
    assert_eq!(
        environment(&hf.model),
        BTreeMap::from([
            ("HF_MODEL_ID".into(), "distilroberta-base".into()),
            ("HF_TASK".into(), "fill-mask".into())
        ])
    );
    let role_name = "streamlit-app-local-sentiment-unmasking-endpoint";
    assert_eq!(
        hf.model.execution_role_arn(),
        Some(format!("arn:aws:iam::123456789012:role/{role_name}").as_str())
    );
    let (service, managed, inline) = role(&stack, role_name).await;
    assert_eq!(service, "sagemaker.amazonaws.com");
    assert!(
        managed.is_empty(),
        "no full access unless asked: {managed:?}"
    );
    assert_eq!(
        inline["model-data"]["Statement"],
        json!([
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [format!("arn:aws:s3:::{MODELS_BUCKET}/unmasking/model.tar.gz")]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [format!("arn:aws:s3:::{MODELS_BUCKET}")],
             "Condition": {"StringLike": {"s3:prefix": ["unmasking/model.tar.gz"]}}},
        ])
    );
    assert_eq!(
        inline["execution"]["Statement"][1]["Resource"],
        json!(["arn:aws:ecr:us-east-1:763104351884:repository/huggingface-pytorch-inference"]),
        "it pulls its own image's repository only"
    );

    // Two endpoints built from one folder: one image, pushed once, with their own environments.
    let image = image_uri(&stack, "image/endpoints/serverless_explanations/amd64");
    let small = served(&stack, "sentiment-explanations").await;
    let large = served(&stack, "sentiment-explanations-large").await;
    assert_eq!(
        small.model.primary_container().unwrap().image(),
        Some(image.as_str())
    );
    assert_eq!(
        large.model.primary_container().unwrap().image(),
        Some(image.as_str())
    );
    assert_eq!(
        environment(&small.model),
        BTreeMap::from([(
            "HUB_MODEL_NAME".into(),
            "distilbert-base-uncased-finetuned-sst-2-english".into()
        )])
    );
    assert_eq!(
        environment(&large.model),
        BTreeMap::from([
            ("HUB_MODEL_NAME".into(), "distilbert-base-uncased".into()),
            ("MAX_LENGTH".into(), "256".into())
        ])
    );
    let s = small.variant.serverless_config().unwrap();
    assert_eq!(
        (s.memory_size_in_mb(), s.max_concurrency()),
        (Some(4096), Some(2))
    );
    let l = large.variant.serverless_config().unwrap();
    assert_eq!(
        (
            l.memory_size_in_mb(),
            l.max_concurrency(),
            l.provisioned_concurrency()
        ),
        (Some(2048), Some(2), Some(1))
    );
    let (_, _, inline) = role(
        &stack,
        "streamlit-app-local-sentiment-explanations-endpoint",
    )
    .await;
    assert_eq!(
        inline.keys().collect::<Vec<_>>(),
        ["execution"],
        "no model data, no S3 access: {inline:?}"
    );
    let (_, managed, inline) = role(
        &stack,
        "streamlit-app-local-sentiment-explanations-large-endpoint",
    )
    .await;
    assert!(managed.is_empty(), "{managed:?}");
    assert_eq!(
        inline["model-data"]["Statement"],
        json!([
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [format!("arn:aws:s3:::{DATA_BUCKET}/*")]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [format!("arn:aws:s3:::{DATA_BUCKET}")]},
        ])
    );

    // On instances.
    let toxicity = served(&stack, "toxicity").await;
    assert_eq!(
        toxicity.variant.instance_type().map(|t| t.as_str()),
        Some("ml.m5.large")
    );
    assert_eq!(toxicity.variant.initial_instance_count(), Some(1));
    assert_eq!(toxicity.variant.initial_variant_weight(), Some(1.0));
    assert!(toxicity.variant.serverless_config().is_none());

    // Functions: image by digest, architecture, memory, timeout in seconds, environment, role.
    let lambda = stack.lambda();
    let f = lambda
        .get_function()
        .function_name("streamlit-app-local-counterfactual-lambda")
        .send()
        .await
        .unwrap();
    let c = f.configuration().unwrap();
    assert_eq!(
        f.code().unwrap().image_uri(),
        Some(image_uri(&stack, "image/functions/text_counterfactuals/amd64").as_str())
    );
    assert_eq!(c.package_type().map(|p| p.as_str()), Some("Image"));
    assert_eq!(
        c.architectures()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        ["x86_64"]
    );
    assert_eq!((c.memory_size(), c.timeout()), (Some(1024), Some(540)));
    let env: BTreeMap<String, String> = c
        .environment()
        .and_then(|e| e.variables())
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([
            ("MLM_ENDPOINT_NAME".into(), "sentiment-unmasking".into()),
            (
                "CLASSIFIER_ENDPOINT_NAME".into(),
                "sentiment-explanations".into()
            )
        ])
    );
    let role_name = "streamlit-app-local-counterfactual-lambda-function";
    assert_eq!(
        c.role(),
        Some(format!("arn:aws:iam::123456789012:role/{role_name}").as_str())
    );
    let (service, managed, inline) = role(&stack, role_name).await;
    assert_eq!(service, "lambda.amazonaws.com");
    assert_eq!(
        managed,
        ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]
    );
    assert_eq!(
        inline["policy"]["Statement"],
        json!([{"Effect": "Allow", "Action": ["sagemaker:InvokeEndpoint"], "Resource": ["*"]}])
    );

    let f = lambda
        .get_function()
        .function_name("streamlit-app-local-summary-lambda")
        .send()
        .await
        .unwrap();
    let c = f.configuration().unwrap();
    assert_eq!(
        f.code().unwrap().image_uri(),
        Some(image_uri(&stack, "image/functions/text_counterfactuals/arm64").as_str())
    );
    assert_eq!(
        c.architectures()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        ["arm64"]
    );
    assert_eq!((c.memory_size(), c.timeout()), (Some(2048), Some(60)));
    assert!(
        c.environment()
            .and_then(|e| e.variables())
            .is_none_or(|v| v.is_empty())
    );
    let (_, managed, inline) = role(&stack, "streamlit-app-local-summary-lambda-function").await;
    assert_eq!(
        managed,
        ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]
    );
    assert!(inline.is_empty(), "no statements, no inline policy");

    // A rerun reads and changes nothing.
    let second = stack.up().await;
    assert_eq!(
        mutating_calls(&second),
        0,
        "a rerun must not change anything: {:?}",
        mutating_operations(&second)
    );

    // A function's memory: one UpdateFunctionConfiguration, nothing else.
    stack.edit_config(|c| c["lambda_functions"][0]["memory_size"] = json!(3008));
    let third = stack.up().await;
    let changes = mutating_operations(&third);
    assert!(
        changes.len() == 1
            && changes[0].eq_ignore_ascii_case("lambda:UpdateFunctionConfiguration x1"),
        "one configuration update and nothing else: {changes:?}"
    );
    let c = lambda
        .get_function()
        .function_name("streamlit-app-local-counterfactual-lambda")
        .send()
        .await
        .unwrap();
    assert_eq!(c.configuration().unwrap().memory_size(), Some(3008));
    assert_eq!(
        c.configuration().unwrap().timeout(),
        Some(540),
        "the rest is unchanged"
    );

    // down leaves no endpoint, configuration, model, function or role.
    stack.down().await;
    let (endpoints, configs, models) = sagemaker_names(&stack).await;
    assert!(
        endpoints.is_empty() && configs.is_empty() && models.is_empty(),
        "{endpoints:?} {configs:?} {models:?}"
    );
    let functions = lambda.list_functions().send().await.unwrap();
    assert!(
        functions.functions().is_empty(),
        "{:?}",
        functions.functions()
    );
    let roles = stack.iam().list_roles().send().await.unwrap();
    let ours: Vec<&str> = roles
        .roles()
        .iter()
        .map(|r| r.role_name())
        .filter(|n| n.starts_with(STACK))
        .collect();
    assert!(ours.is_empty(), "{ours:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_serverless_memory_change_makes_a_new_configuration_and_a_failed_switch_keeps_the_old_one()
 {
    let mut stack = Stack::new().await;
    stack.up().await;
    let before = served(&stack, "sentiment-explanations").await;
    let (_, configs, models) = sagemaker_names(&stack).await;
    assert_eq!((configs.len(), models.len()), (2, 2));

    // The plan: a new configuration (its settings cannot change in place, its name follows
    // them) and an endpoint update; the model stays.
    stack.edit_config(|c| {
        c["sagemaker_endpoints"][1]["serverless_config"]["memory_size_in_mb"] = json!(6144)
    });
    let (code, plan) = stack.plan().await;
    assert_eq!(code, 2);
    let steps = plan["plan"]["steps"].as_array().unwrap();
    let step = |id: &str| {
        steps
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no step {id}: {plan:#}"))
    };
    let config = step("endpoint/sentiment-explanations/config");
    assert_eq!(config["action"], "replace");
    assert_eq!(config["changes"][0]["setting"], "capacity");
    assert_eq!(config["changes"][0]["new"]["memory_size_in_mb"], 6144);
    assert_eq!(step("endpoint/sentiment-explanations")["action"], "update");
    assert_eq!(
        step("endpoint/sentiment-explanations/model")["action"],
        "noop"
    );
    assert_eq!(
        step("endpoint/sentiment-unmasking/config")["action"],
        "noop"
    );

    // up creates the configuration under a new name and calls UpdateEndpoint, which the
    // emulator cannot do: the switch fails, and the endpoint keeps serving the old
    // configuration, which is not deleted.
    let run = stack.run(&["up", "--yes", "--json"]).await;
    assert_ne!(run.code, 0, "the emulator has no UpdateEndpoint");
    assert!(run.stderr.contains("UpdateEndpoint"), "{}", run.stderr);
    let after = served(&stack, "sentiment-explanations").await;
    assert_eq!(
        after.config_name, before.config_name,
        "still serving the old configuration"
    );
    let (_, configs, _) = sagemaker_names(&stack).await;
    assert_eq!(
        configs.len(),
        3,
        "the new configuration exists beside the old: {configs:?}"
    );
    let new_name = configs
        .iter()
        .find(|c| {
            **c != before.config_name
                && c.starts_with("streamlit-app-local-sentiment-explanations-")
        })
        .unwrap()
        .clone();
    let new = stack
        .sagemaker()
        .describe_endpoint_config()
        .endpoint_config_name(&new_name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        new.production_variants()[0]
            .serverless_config()
            .unwrap()
            .memory_size_in_mb(),
        Some(6144)
    );
    assert_eq!(
        new.production_variants()[0].model_name(),
        before.variant.model_name(),
        "the same model"
    );
    let state = stack.state();
    let deposed = state["deposed"].as_array().unwrap();
    assert_eq!(
        deposed.len(),
        1,
        "the old configuration waits for a switch that succeeds: {state:#}"
    );
    assert_eq!(
        deposed[0]["record"]["physical_id"],
        before.config_name.as_str()
    );

    // Reverting the change: the configuration in service is kept, the unused new one goes.
    stack.edit_config(|c| {
        c["sagemaker_endpoints"][1]["serverless_config"]["memory_size_in_mb"] = json!(4096)
    });
    stack.up().await;
    let (_, configs, models) = sagemaker_names(&stack).await;
    assert!(
        configs.contains(&before.config_name) && !configs.contains(&new_name),
        "{configs:?}"
    );
    assert_eq!((configs.len(), models.len()), (2, 2));
    assert_eq!(
        served(&stack, "sentiment-explanations").await.config_name,
        before.config_name
    );
    assert!(
        stack.state()["deposed"]
            .as_array()
            .is_none_or(|d| d.is_empty()),
        "nothing waits for deletion"
    );
    let (code, _) = stack.plan().await;
    assert_eq!(code, 0, "nothing left to do");

    stack.down().await;
    let (endpoints, configs, models) = sagemaker_names(&stack).await;
    assert!(
        endpoints.is_empty() && configs.is_empty() && models.is_empty(),
        "{endpoints:?} {configs:?} {models:?}"
    );
}
