//! The backends' graph without AWS: which nodes each function and endpoint gets, what each
//! waits for, their names, and the settings and policy documents they would apply.

use std::collections::HashMap;
use std::path::Path;

use provision_core::input::Until;
use provision_core::resource::LogicalId;
use serde_json::{Value, json};

use super::*;
use crate::images::Images;

/// `config/local.json` over `examples/offline`, changed by `edit`.
fn project(edit: impl FnOnce(&mut Value)) -> Project {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(repo.join("config/local.json")).unwrap();
    let mut config: Value = serde_json::from_str(&text).unwrap();
    edit(&mut config);
    let root = repo.join("examples/offline");
    let config = provision_config::parse(&config.to_string(), Path::new("local.json"), &root)
        .unwrap_or_else(|e| panic!("{e}"));
    Project {
        config,
        root,
        builder: None,
    }
}

fn kinds(project: &Project) -> Kinds {
    let sdk = provision_aws::SdkConfig::builder()
        .region(aws_sdk_ec2::config::Region::new("us-east-1"))
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .build();
    Kinds::new(&Clients::new(&provision_aws::Aws::from_sdk(sdk)), project)
}

fn graph(project: &Project, kinds: &Kinds) -> (Graph, Backends) {
    let mut g = Graph::new();
    let mut images = Images::new(project, &kinds.images);
    let backends = add(&mut g, project, kinds, &mut images).unwrap();
    images.finish(&mut g).unwrap();
    g.order().unwrap();
    (g, backends)
}

fn deps(g: &Graph, id: &str) -> Vec<(String, Until)> {
    let mut d: Vec<(String, Until)> = g
        .get(&id.into())
        .unwrap_or_else(|| panic!("no node {id}"))
        .deps()
        .iter()
        .map(|d| (d.id.to_string(), d.until))
        .collect();
    d.sort_by(|a, b| a.0.cmp(&b.0));
    d
}

/// Outputs a run would have produced, enough for every backend node's spec.
fn outputs(g: &Graph) -> HashMap<LogicalId, Value> {
    let mut out = HashMap::new();
    for node in g.nodes() {
        let id = node.id.as_str();
        let value = if id.ends_with("/role") {
            let name = node.name.clone().unwrap_or_default();
            json!({"role_name": name, "role_arn": format!("arn:aws:iam::123456789012:role/{name}")})
        } else if id.starts_with("image/") && id.ends_with("/repository") {
            let name = node.name.clone().unwrap_or_default();
            json!({"repository_name": name, "repository_arn": format!("arn:aws:ecr:us-east-1:123456789012:repository/{name}"), "repository_uri": format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}"), "registry_id": "123456789012"})
        } else if id.starts_with("image/") {
            json!({"image_uri": format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{id}@sha256:abc"), "repository_name": id, "digest": "sha256:abc"})
        } else if id.ends_with("/model") {
            json!({"model_name": format!("{}-model", node.name.clone().unwrap_or_default()), "model_arn": "arn:model"})
        } else if id.ends_with("/config") {
            json!({"endpoint_config_name": format!("{}-config", node.name.clone().unwrap_or_default()), "endpoint_config_arn": "arn:config"})
        } else if id.starts_with("endpoint/") && !id.contains("/role") {
            json!({"endpoint_name": node.name, "endpoint_arn": format!("arn:aws:sagemaker:us-east-1:123456789012:endpoint/{}", node.name.clone().unwrap_or_default())})
        } else if id.starts_with("function/") && !id.contains("/role") {
            json!({"function_name": node.name, "function_arn": format!("arn:aws:lambda:us-east-1:123456789012:function:{}", node.name.clone().unwrap_or_default())})
        } else {
            continue;
        };
        out.insert(node.id.clone(), value);
    }
    out
}

fn spec(g: &Graph, id: &str, outputs: &HashMap<LogicalId, Value>) -> Value {
    let node = g.get(&id.into()).unwrap_or_else(|| panic!("no node {id}"));
    Value::Object(
        node.settings(outputs)
            .unwrap_or_else(|u| panic!("{id}: {u}")),
    )
}

#[test]
fn each_endpoint_and_function_gets_its_nodes_and_names() {
    let project = project(|_| {});
    let kinds = kinds(&project);
    let (g, backends) = graph(&project, &kinds);

    // What each node waits for is in the graph snapshots (crate::tests).
    // Names: functions after their variable, endpoints as the config says.
    assert_eq!(
        g.get(&"function/COUNTERFACTUAL_LAMBDA".into())
            .unwrap()
            .name
            .as_deref(),
        Some("streamlit-app-local-counterfactual-lambda")
    );
    assert_eq!(
        g.get(&"endpoint/sentiment-unmasking".into())
            .unwrap()
            .name
            .as_deref(),
        Some("sentiment-unmasking")
    );
    assert_eq!(
        g.get(&"endpoint/sentiment-unmasking/role".into())
            .unwrap()
            .name
            .as_deref(),
        Some("streamlit-app-local-sentiment-unmasking-endpoint")
    );
    assert_eq!(
        g.get(&"function/COUNTERFACTUAL_LAMBDA/role".into())
            .unwrap()
            .name
            .as_deref(),
        Some("streamlit-app-local-counterfactual-lambda-function")
    );
    assert_eq!(
        g.get(&"endpoint/sentiment-unmasking/model".into())
            .unwrap()
            .name
            .as_deref(),
        Some("streamlit-app-local-sentiment-unmasking")
    );

    // The handles the web tier reads.
    assert_eq!(backends.functions.len(), 1);
    assert_eq!(
        backends.functions[0].environment_variable_name,
        "COUNTERFACTUAL_LAMBDA"
    );
    assert_eq!(
        backends.functions[0].function_name,
        "streamlit-app-local-counterfactual-lambda"
    );
    assert_eq!(
        backends.functions[0].function.id().as_str(),
        "function/COUNTERFACTUAL_LAMBDA"
    );
    let names: Vec<(&str, &str)> = backends
        .endpoints
        .iter()
        .map(|e| {
            (
                e.environment_variable_name.as_str(),
                e.endpoint_name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("SENTIMENT_UNMASKING_MODEL", "sentiment-unmasking"),
            ("SENTIMENT_EXPLANATIONS_MODEL", "sentiment-explanations")
        ]
    );
}

#[test]
fn settings_follow_the_config() {
    let project = project(|_| {});
    let kinds = kinds(&project);
    let (g, _) = graph(&project, &kinds);
    let out = outputs(&g);

    let f = spec(&g, "function/COUNTERFACTUAL_LAMBDA", &out);
    assert_eq!(f["timeout_seconds"], 540, "9 minutes");
    assert_eq!(f["memory_size"], 1024);
    assert_eq!(f["architecture"], "x86_64");
    assert_eq!(
        f["environment"],
        json!({"MLM_ENDPOINT_NAME": "sentiment-unmasking", "CLASSIFIER_ENDPOINT_NAME": "sentiment-explanations"})
    );
    assert_eq!(
        f["role_arn"],
        "arn:aws:iam::123456789012:role/streamlit-app-local-counterfactual-lambda-function"
    );
    assert!(
        f["image_uri"]
            .as_str()
            .unwrap()
            .contains("image/functions/text_counterfactuals/amd64@sha256:")
    );

    let role = spec(&g, "function/COUNTERFACTUAL_LAMBDA/role", &out);
    assert_eq!(
        role["assume_role_policy"]["Statement"][0]["Principal"],
        json!({"Service": "lambda.amazonaws.com"})
    );
    let managed = spec(
        &g,
        "function/COUNTERFACTUAL_LAMBDA/role/managed-policies",
        &out,
    );
    assert_eq!(
        managed["policy_arns"],
        json!(["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"])
    );
    let statements = spec(&g, "function/COUNTERFACTUAL_LAMBDA/role/policy", &out);
    assert_eq!(
        statements["document"],
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sagemaker:InvokeEndpoint"], "Resource": ["*"]}]})
    );

    let role = spec(&g, "endpoint/sentiment-unmasking/role", &out);
    assert_eq!(
        role["assume_role_policy"],
        provision_iam::policy::sagemaker_inference_trust("us-east-1", "123456789012")
    );
    let managed = spec(
        &g,
        "endpoint/sentiment-unmasking/role/managed-policies",
        &out,
    );
    assert_eq!(
        managed["policy_arns"],
        json!([]),
        "no managed policy unless `sagemaker_full_access` asks for one"
    );
    let execution = spec(&g, "endpoint/sentiment-unmasking/role/execution", &out);
    assert_eq!(
        execution["document"]["Statement"],
        json!([
            {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": ["*"]},
            {"Effect": "Allow", "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
             "Resource": ["arn:aws:ecr:us-east-1:763104351884:repository/huggingface-pytorch-inference"]},
            {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
             "Resource": [
                "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/sentiment-unmasking",
                "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/sentiment-unmasking:*",
             ]},
            {"Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": ["*"]},
        ])
    );
    assert!(
        g.get(&"endpoint/sentiment-unmasking/role/model-data".into())
            .is_none(),
        "no model data in S3, no S3 access"
    );
    // A built image: its role pulls from the folder's repository, known once it exists.
    let built = spec(&g, "endpoint/sentiment-explanations/role/execution", &out);
    assert_eq!(
        built["document"]["Statement"][1]["Resource"],
        json!([
            "arn:aws:ecr:us-east-1:123456789012:repository/streamlit-app-local/endpoints/serverless_explanations"
        ])
    );
    assert!(
        deps(&g, "endpoint/sentiment-explanations/role/execution")
            .iter()
            .any(
                |(d, u)| d == "image/endpoints/serverless_explanations/repository"
                    && *u == Until::Ready
            )
    );

    let hf = spec(&g, "endpoint/sentiment-unmasking/model", &out);
    assert_eq!(
        hf["image"],
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:1.13-transformers4.26-cpu-py39-ubuntu20.04"
    );
    assert_eq!(
        hf["environment"],
        json!({"HF_MODEL_ID": "distilroberta-base", "HF_TASK": "fill-mask"})
    );
    assert_eq!(hf["model_data_url"], Value::Null);
    assert_eq!(
        hf["execution_role_arn"],
        "arn:aws:iam::123456789012:role/streamlit-app-local-sentiment-unmasking-endpoint"
    );

    let custom = spec(&g, "endpoint/sentiment-explanations/model", &out);
    assert!(
        custom["image"]
            .as_str()
            .unwrap()
            .contains("image/endpoints/serverless_explanations/amd64@sha256:")
    );
    assert_eq!(
        custom["environment"],
        json!({"HUB_MODEL_NAME": "distilbert-base-uncased-finetuned-sst-2-english"})
    );

    let config = spec(&g, "endpoint/sentiment-unmasking/config", &out);
    assert_eq!(
        config["model_name"],
        "streamlit-app-local-sentiment-unmasking-model"
    );
    assert_eq!(
        config["capacity"],
        json!({"type": "serverless", "memory_size_in_mb": 3072, "max_concurrency": 1, "provisioned_concurrency": null})
    );
    let endpoint = spec(&g, "endpoint/sentiment-explanations", &out);
    assert_eq!(
        endpoint,
        json!({"endpoint_config_name": "streamlit-app-local-sentiment-explanations-config", "failed": false})
    );
}

#[test]
fn instances_gpu_image_overrides_and_model_data_reach_the_specs() {
    let project = project(|c| {
        let e = &mut c["sagemaker_endpoints"][0];
        e.as_object_mut().unwrap().remove("serverless_config");
        e["production_variants"] = json!({"instance_type": "ml.g4dn.xlarge", "initial_instance_count": 2, "initial_variant_weight": 0.5});
        e["use_gpu"] = json!(true);
        e["model_data_url"] = json!("s3://models-bucket/mlm/model.tar.gz");
        let e = &mut c["sagemaker_endpoints"][1];
        e["model_data_bucket"] = json!("explanations-data");
        e["platform"] = json!("amd64");
    });
    let kinds = kinds(&project);
    let (g, _) = graph(&project, &kinds);
    let out = outputs(&g);

    let hf = spec(&g, "endpoint/sentiment-unmasking/model", &out);
    assert!(
        hf["image"]
            .as_str()
            .unwrap()
            .ends_with(":1.13-transformers4.26-gpu-py36-cu111-ubuntu20.04"),
        "{hf}"
    );
    assert_eq!(hf["model_data_url"], "s3://models-bucket/mlm/model.tar.gz");
    let config = spec(&g, "endpoint/sentiment-unmasking/config", &out);
    assert_eq!(
        config["capacity"],
        json!({"type": "instances", "instance_type": "ml.g4dn.xlarge", "initial_instance_count": 2, "initial_variant_weight": 0.5})
    );
    let policy = spec(&g, "endpoint/sentiment-unmasking/role/model-data", &out);
    assert_eq!(policy["policy_name"], "model-data");
    assert_eq!(
        policy["document"]["Statement"],
        json!([
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::models-bucket/mlm/model.tar.gz"]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::models-bucket"],
             "Condition": {"StringLike": {"s3:prefix": ["mlm/model.tar.gz"]}}},
        ])
    );
    assert!(
        deps(&g, "endpoint/sentiment-unmasking/model")
            .iter()
            .any(|(d, _)| d == "endpoint/sentiment-unmasking/role/model-data")
    );

    let bucket = spec(&g, "endpoint/sentiment-explanations/role/model-data", &out);
    assert_eq!(
        bucket["document"]["Statement"],
        json!([
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::explanations-data/*"]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::explanations-data"]},
        ])
    );

    let overridden = self::project(|c| {
        c["sagemaker_endpoints"][0]["image_uri"] =
            json!("123456789012.dkr.ecr.us-east-1.amazonaws.com/my-hf:1")
    });
    let overridden_kinds = self::kinds(&overridden);
    let (g, _) = graph(&overridden, &overridden_kinds);
    let hf = spec(&g, "endpoint/sentiment-unmasking/model", &outputs(&g));
    assert_eq!(
        hf["image"],
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-hf:1"
    );
}

#[test]
fn two_endpoints_from_one_folder_share_its_image_and_differ_in_environment() {
    let project = project(|c| {
        let mut second = c["sagemaker_endpoints"][1].clone();
        second["endpoint_name"] = json!("sentiment-explanations-large");
        second["environment_variable_name"] = json!("LARGE_MODEL");
        second["container_environment"] = json!({"HUB_MODEL_NAME": "distilbert-base-uncased"});
        c["sagemaker_endpoints"]
            .as_array_mut()
            .unwrap()
            .push(second);
    });
    let kinds = kinds(&project);
    let (g, _) = graph(&project, &kinds);
    let images: Vec<&str> = g
        .nodes()
        .iter()
        .map(|n| n.id.as_str())
        .filter(|i| i.starts_with("image/endpoints/"))
        .collect();
    assert_eq!(
        images,
        [
            "image/endpoints/serverless_explanations/repository",
            "image/endpoints/serverless_explanations/amd64"
        ]
    );
    let out = outputs(&g);
    let a = spec(&g, "endpoint/sentiment-explanations/model", &out);
    let b = spec(&g, "endpoint/sentiment-explanations-large/model", &out);
    assert_eq!(a["image"], b["image"]);
    assert_ne!(a["environment"], b["environment"]);
    assert_ne!(
        g.get(&"endpoint/sentiment-explanations/model".into())
            .unwrap()
            .name,
        g.get(&"endpoint/sentiment-explanations-large/model".into())
            .unwrap()
            .name
    );
}

#[test]
fn an_existing_ecr_image_is_used_as_is() {
    let project = project(|c| {
        let f = &mut c["lambda_functions"][0];
        f.as_object_mut().unwrap().remove("folder_name");
        f["ecr_repo"] = json!("shared/counterfactuals");
        f["tag"] = json!("v3");
        f["platform"] = json!("arm64");
        let e = &mut c["sagemaker_endpoints"][1];
        e.as_object_mut().unwrap().remove("dockerfile_folder");
        e["image_repo_name"] = json!("shared/explanations");
        e["image_tag"] = json!("v7");
    });
    let kinds = kinds(&project);
    let (g, _) = graph(&project, &kinds);
    assert!(
        deps(&g, "function/COUNTERFACTUAL_LAMBDA")
            .iter()
            .any(|(d, _)| d == "image/ecr/shared/counterfactuals/v3")
    );
    assert!(
        deps(&g, "endpoint/sentiment-explanations/model")
            .iter()
            .any(|(d, _)| d == "image/ecr/shared/explanations/v7")
    );
    let f = spec(&g, "function/COUNTERFACTUAL_LAMBDA", &outputs(&g));
    assert_eq!(f["architecture"], "arm64");
    // The endpoint's role pulls from that repository of the account, and nothing waits for a
    // repository the stack does not make.
    let execution = spec(
        &g,
        "endpoint/sentiment-explanations/role/execution",
        &outputs(&g),
    );
    assert_eq!(
        execution["document"]["Statement"][1]["Resource"],
        json!(["arn:aws:ecr:us-east-1:123456789012:repository/shared/explanations"])
    );
    assert_eq!(
        deps(&g, "endpoint/sentiment-explanations/role/execution"),
        [(
            "endpoint/sentiment-explanations/role".to_string(),
            Until::Ready
        )]
    );
}

#[test]
fn full_sagemaker_access_only_when_asked_and_only_after_the_scoped_grants() {
    let project = project(|c| c["sagemaker_endpoints"][1]["sagemaker_full_access"] = json!(true));
    let kinds = kinds(&project);
    let (g, _) = graph(&project, &kinds);
    let out = outputs(&g);
    let asked = spec(
        &g,
        "endpoint/sentiment-explanations/role/managed-policies",
        &out,
    );
    assert_eq!(
        asked["policy_arns"],
        json!(["arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"])
    );
    let not_asked = spec(
        &g,
        "endpoint/sentiment-unmasking/role/managed-policies",
        &out,
    );
    assert_eq!(not_asked["policy_arns"], json!([]));
    // A role an earlier version gave full access loses it only once the scoped grants are in.
    for endpoint in ["sentiment-unmasking", "sentiment-explanations"] {
        assert!(
            deps(&g, &format!("endpoint/{endpoint}/role/managed-policies"))
                .contains(&(format!("endpoint/{endpoint}/role/execution"), Until::Ready)),
            "{endpoint}"
        );
    }
    // A function's basic execution policy is not going anywhere: no need to wait.
    assert_eq!(
        deps(&g, "function/COUNTERFACTUAL_LAMBDA/role/managed-policies"),
        [(
            "function/COUNTERFACTUAL_LAMBDA/role".to_string(),
            Until::Ready
        )]
    );
    let role = spec(&g, "function/COUNTERFACTUAL_LAMBDA/role", &out);
    assert!(
        role["assume_role_policy"]["Statement"][0]
            .get("Condition")
            .is_none(),
        "Lambda documents no source condition for execution roles: {role}"
    );
}

#[test]
fn an_image_uri_outside_ecr_is_refused_naming_the_key() {
    let project = project(|c| {
        c["sagemaker_endpoints"][0]["image_uri"] = json!("docker.io/huggingface/inference:1")
    });
    let kinds = kinds(&project);
    let mut g = Graph::new();
    let mut images = Images::new(&project, &kinds.images);
    let err = match add(&mut g, &project, &kinds, &mut images) {
        Ok(_) => panic!("a non-ECR image was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("sagemaker_endpoints[0].image_uri") && err.contains("ECR"),
        "{err}"
    );
}

#[test]
fn the_app_receives_each_backend_name_under_its_variable() {
    let project = project(|_| {});
    let kinds = kinds(&project);
    let (g, backends) = graph(&project, &kinds);
    let out = outputs(&g);
    let values = backends.outputs().eval(&out).unwrap();
    assert_eq!(
        values["COUNTERFACTUAL_LAMBDA"],
        "streamlit-app-local-counterfactual-lambda"
    );
    assert_eq!(values["SENTIMENT_UNMASKING_MODEL"], "sentiment-unmasking");
    assert_eq!(
        values["SENTIMENT_EXPLANATIONS_MODEL"],
        "sentiment-explanations"
    );
    assert!(
        backends.outputs().eval(&HashMap::new()).is_err(),
        "known only once created"
    );
}

#[test]
fn model_data_policies_grant_exactly_what_is_read() {
    assert_eq!(model_data_policy("us-east-1", None, None), None);
    let both = model_data_policy("us-east-1", Some("b1"), Some("s3://b1/m/model.tar.gz")).unwrap();
    assert_eq!(
        both["Statement"],
        json!([
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b1/*"]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::b1"]},
        ]),
        "the bucket grant covers the object"
    );
    let two = model_data_policy("us-east-1", Some("b1"), Some("s3://b2/model.tar.gz")).unwrap();
    assert_eq!(
        two["Statement"],
        json!([
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b1/*", "arn:aws:s3:::b2/model.tar.gz"]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::b1"]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::b2"],
             "Condition": {"StringLike": {"s3:prefix": ["model.tar.gz"]}}},
        ]),
        "listing the object's bucket is limited to the object's key"
    );
    let china = model_data_policy("cn-north-1", None, Some("s3://b/k")).unwrap();
    assert_eq!(
        china["Statement"][0]["Resource"],
        json!(["arn:aws-cn:s3:::b/k"])
    );
    assert_eq!(statements_policy(&[]), None);
}

#[test]
fn names_fit_their_services() {
    let stack = format!("streamlit-app-{}", "e".repeat(20));
    let var = "A_VERY_LONG_ENVIRONMENT_VARIABLE_NAME_FOR_A_FUNCTION_THAT_COUNTS";
    let endpoint = "e".repeat(63);
    assert!(function_name(&stack, var).len() <= 64);
    assert!(function_role_name(&stack, var).len() <= 64);
    assert!(endpoint_role_name(&stack, &endpoint).len() <= 64);
    assert_ne!(
        function_name(&stack, var),
        function_name(&stack, &format!("{var}2"))
    );
    let stem = endpoint_resource_stem(&stack, &endpoint);
    let name =
        provision_sagemaker::physical_name(&stem, &provision_core::resource::Settings::new());
    assert!(name.len() <= 63, "{name}");
    assert_eq!(
        function_name("streamlit-app-dev", "COUNTERFACTUAL_LAMBDA"),
        "streamlit-app-dev-counterfactual-lambda"
    );
    assert_eq!(
        endpoint_role_name("streamlit-app-dev", "Sentiment-Unmasking"),
        "streamlit-app-dev-sentiment-unmasking-endpoint"
    );
}
