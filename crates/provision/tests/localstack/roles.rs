//! IAM on LocalStack: the app's roles (`--target web/role/`) and the backends' roles
//! (`--target function/<VAR>/role`, `--target endpoint/<name>/role`), each with the trust
//! policy, managed policies and inline policy the seed gives it, read back through IAM; a rerun
//! that changes nothing; and `down` that removes every role.

use std::collections::BTreeSet;

use provision_iam::decode_document;
use serde_json::{Value, json};

use crate::support::{ACCOUNT, Stack, mutating_calls, mutating_operations, state_ids};

/// A role as IAM reports it: its trust policy, managed policy ARNs and inline policies.
struct RoleSeen {
    trust: Value,
    managed: BTreeSet<String>,
    inline: Vec<(String, Value)>,
    tags: Vec<(String, String)>,
    arn: String,
}

async fn role(stack: &Stack, name: &str) -> RoleSeen {
    let iam = stack.iam();
    let got = iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("no role {name}: {e:?}"));
    let r = got.role().expect("a role in the reply");
    let managed = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .unwrap()
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_string))
        .collect();
    let mut inline = Vec::new();
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
        inline.push((p.clone(), decode_document(doc.policy_document())));
    }
    RoleSeen {
        trust: decode_document(r.assume_role_policy_document().unwrap_or_default()),
        managed,
        inline,
        tags: r
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
        arn: r.arn().to_string(),
    }
}

#[track_caller]
fn trusts_only(seen: &RoleSeen, service: &str) {
    let statements = seen.trust["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 1, "{}", seen.trust);
    assert_eq!(statements[0]["Effect"], "Allow");
    assert_eq!(statements[0]["Principal"], json!({ "Service": service }));
    assert_eq!(statements[0]["Action"], "sts:AssumeRole");
}

#[track_caller]
fn tagged_for(seen: &RoleSeen, stack: &Stack, id: &str) {
    let tags: BTreeSet<(&str, &str)> = seen
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let name = stack.stack_name();
    assert!(
        tags.contains(&("provision:stack", name.as_str())) && tags.contains(&("provision:id", id)),
        "role {} is not tagged as {id} of {name}: {tags:?}",
        seen.arn
    );
}

async fn role_exists(stack: &Stack, name: &str) -> bool {
    match stack.iam().get_role().role_name(name).send().await {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            false
        }
        Err(e) => panic!("iam:GetRole {name}: {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_apps_roles_get_their_trust_and_policies_and_go_with_down() {
    // No backends: the task role's inline policy is then the config's statements alone, and
    // `web/role/` pulls in nothing LocalStack's free edition lacks (Lambda, SageMaker, ECR).
    let stack = Stack::new().await.with_config(|c| {
        c["lambda_functions"] = json!([]);
        c["sagemaker_endpoints"] = json!([]);
        c["ecs_policy_statements"] = json!([
            { "actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::app-assets/*"] }
        ]);
    });
    let first = stack.up(&["web/role/"]).await;
    assert!(mutating_calls(&first) > 0);
    let ids = state_ids(&stack.state());
    assert!(
        ids.iter().all(|id| id.starts_with("web/role/")),
        "--target web/role/ reached further: {ids:?}"
    );
    let stack_name = stack.stack_name();

    let execution = role(&stack, &format!("{stack_name}-app-execution-role")).await;
    assert!(
        execution
            .arn
            .starts_with(&format!("arn:aws:iam::{ACCOUNT}:role/")),
        "{}",
        execution.arn
    );
    trusts_only(&execution, "ecs-tasks.amazonaws.com");
    tagged_for(&execution, &stack, "web/role/execution");
    assert_eq!(
        execution.managed,
        BTreeSet::from([
            "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy".to_string()
        ])
    );
    assert!(execution.inline.is_empty(), "{:?}", execution.inline);

    let task = role(&stack, &format!("{stack_name}-app-task-role")).await;
    trusts_only(&task, "ecs-tasks.amazonaws.com");
    tagged_for(&task, &stack, "web/role/task");
    assert!(task.managed.is_empty(), "{:?}", task.managed);
    assert_eq!(task.inline.len(), 1, "{:?}", task.inline);
    let statements = task.inline[0].1["Statement"]
        .as_array()
        .expect("statements");
    assert!(
        statements.iter().any(|s| s["Effect"] == "Allow"
            && s["Action"] == json!(["s3:GetObject"])
            && s["Resource"] == json!(["arn:aws:s3:::app-assets/*"])),
        "the config's statement is in the task role's policy: {}",
        task.inline[0].1
    );

    let again = stack.up(&["web/role/"]).await;
    assert_eq!(
        mutating_calls(&again),
        0,
        "a rerun changes nothing: {:?}",
        mutating_operations(&again)
    );
    let (code, plan) = stack.plan(&["web/role/"]).await;
    assert_eq!(code, 0, "{plan:#}");

    stack.down().await;
    for name in ["app-execution-role", "app-task-role"] {
        assert!(
            !role_exists(&stack, &format!("{stack_name}-{name}")).await,
            "{name} is still there after down"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backends_roles_get_their_managed_and_inline_policies() {
    // config/local.json's backends: a function that may invoke endpoints, a HuggingFace
    // endpoint, and a custom endpoint, here with a model-data bucket to read.
    let stack = Stack::new().await.with_config(|c| {
        c["sagemaker_endpoints"][1]["model_data_bucket"] = json!("team-models");
    });
    let targets = [
        "function/COUNTERFACTUAL_LAMBDA/role",
        "endpoint/sentiment-unmasking/role",
        "endpoint/sentiment-explanations/role",
    ];
    stack.up(&targets).await;
    let ids = state_ids(&stack.state());
    assert!(
        ids.iter()
            .all(|id| targets.iter().any(|t| id.starts_with(t))),
        "the run reached beyond the roles: {ids:?}"
    );
    let stack_name = stack.stack_name();

    let function = role(
        &stack,
        &format!("{stack_name}-counterfactual-lambda-function"),
    )
    .await;
    trusts_only(&function, "lambda.amazonaws.com");
    tagged_for(&function, &stack, "function/COUNTERFACTUAL_LAMBDA/role");
    assert_eq!(
        function.managed,
        BTreeSet::from([
            "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole".to_string()
        ])
    );
    assert_eq!(function.inline.len(), 1);
    assert_eq!(
        function.inline[0].1["Statement"][0]["Action"],
        json!(["sagemaker:InvokeEndpoint"]),
        "{}",
        function.inline[0].1
    );

    for (endpoint, reads_bucket) in [
        ("sentiment-unmasking", false),
        ("sentiment-explanations", true),
    ] {
        let seen = role(&stack, &format!("{stack_name}-{endpoint}-endpoint")).await;
        trusts_only(&seen, "sagemaker.amazonaws.com");
        tagged_for(&seen, &stack, &format!("endpoint/{endpoint}/role"));
        assert_eq!(
            seen.managed,
            BTreeSet::from(["arn:aws:iam::aws:policy/AmazonSageMakerFullAccess".to_string()])
        );
        if reads_bucket {
            assert_eq!(seen.inline.len(), 1, "{:?}", seen.inline);
            let text = seen.inline[0].1.to_string();
            assert!(
                text.contains("arn:aws:s3:::team-models/*") && text.contains("s3:GetObject"),
                "the endpoint may read its model data: {text}"
            );
        } else {
            assert!(seen.inline.is_empty(), "{:?}", seen.inline);
        }
    }

    let again = stack.up(&targets).await;
    assert_eq!(
        mutating_calls(&again),
        0,
        "a rerun changes nothing: {:?}",
        mutating_operations(&again)
    );

    stack.down().await;
    for name in [
        "counterfactual-lambda-function",
        "sentiment-unmasking-endpoint",
        "sentiment-explanations-endpoint",
    ] {
        assert!(
            !role_exists(&stack, &format!("{stack_name}-{name}")).await,
            "{name} is still there after down"
        );
    }
}
