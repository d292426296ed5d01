//! Bad input through the real binary: broken configs and broken state files each give one
//! clear message naming the key or the file, a non-zero exit, no panic, and not a single call
//! to AWS (the proxy counts every call). The exhaustive table of broken configs (every key)
//! is in provision-core's unit tests; this is the same promise end to end.

use serde_json::{Value, json};

use crate::support::Stack;

type Mutation = fn(&mut Value);

/// (what is broken, the change, what the message must contain)
const CONFIGS: &[(&str, Mutation, &str)] = &[
    (
        "wrong type",
        |c| c["lambda_functions"][0]["memory_size"] = json!("lots"),
        "lambda_functions[0].memory_size",
    ),
    (
        "out of range",
        |c| c["sagemaker_endpoints"][0]["serverless_config"]["max_concurrency"] = json!(9999),
        "sagemaker_endpoints[0].serverless_config.max_concurrency",
    ),
    (
        "missing",
        |c| {
            c.as_object_mut().map(|o| o.remove("hosted_zone_id"));
        },
        "hosted_zone_id",
    ),
    (
        "unknown key",
        |c| c["lambda_functions"][0]["memory"] = json!(512),
        "lambda_functions[0].memory",
    ),
    (
        "path escaping the project",
        |c| c["lambda_functions"][0]["folder_name"] = json!("../../etc"),
        "lambda_functions[0].folder_name",
    ),
    (
        "duplicate names",
        |c| c["sagemaker_endpoints"][1]["endpoint_name"] = json!("sentiment-unmasking"),
        "sagemaker_endpoints[1].endpoint_name",
    ),
    (
        "folder that does not exist",
        |c| c["sagemaker_endpoints"][1]["dockerfile_folder"] = json!("nowhere"),
        "sagemaker_endpoints[1].dockerfile_folder",
    ),
    (
        "bad platform",
        |c| c["platform"] = json!("sparc"),
        "platform",
    ),
];

#[track_caller]
fn assert_refused(run: &crate::support::Run, must_name: &str, context: &str) {
    assert_ne!(run.code, 0, "{context}: accepted:\n{}", run.stderr);
    assert!(
        !run.stderr.contains("panicked"),
        "{context}: panicked:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(must_name),
        "{context}: the message does not name {must_name:?}:\n{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{context}: stdout: {}", run.stdout);
}

#[tokio::test]
async fn broken_configs_are_refused_before_any_call_to_aws() {
    let mut stack = Stack::new().await.through_proxy(|c| c).await;
    let good = stack.config().clone();
    for (what, mutate, key) in CONFIGS {
        stack.edit_config(|c| {
            *c = good.clone();
            mutate(c);
        });
        for command in [&["up", "--yes"][..], &["plan"]] {
            stack.proxy().reset();
            let run = stack.run(command).await;
            let context = format!("{what}, `provision {}`", command.join(" "));
            assert_refused(&run, key, &context);
            assert_eq!(
                stack.proxy().stats().total,
                0,
                "{context}: called AWS: {:?}",
                stack.proxy().stats().operations.keys()
            );
        }
    }
    assert!(!stack.state_path().exists(), "a state file was written");

    // Not JSON at all: the message names the file and the line.
    std::fs::write(
        stack.config_path(),
        "{\n  \"account\": \"123456789012\",\n  oops\n}\n",
    )
    .unwrap();
    stack.proxy().reset();
    let run = stack.run(&["up", "--yes"]).await;
    assert_refused(&run, "default.json", "a config that is not JSON");
    assert!(run.stderr.contains("line 3"), "{}", run.stderr);
    assert_eq!(stack.proxy().stats().total, 0);

    // No config file where it is looked for.
    let run = stack
        .run(&["plan", "--config", "config/missing.json"])
        .await;
    assert_refused(&run, "config/missing.json", "a missing config");
}

#[tokio::test]
async fn broken_state_files_are_refused_named_and_left_as_they_were() {
    let stack = Stack::new().await.through_proxy(|c| c).await;
    let path = stack.state_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let good = json!({
        "schema_version": 1,
        "stack": stack.stack_name(),
        "resources": {}
    })
    .to_string();
    let cases: Vec<(&str, String)> = vec![
        ("not JSON", "this is not a state file".to_string()),
        (
            "truncated",
            r#"{"schema_version": 1, "resources": {"#.to_string(),
        ),
        ("empty", String::new()),
        (
            "a newer schema",
            good.replace("\"schema_version\":1", "\"schema_version\":99"),
        ),
        ("no schema version", r#"{"resources": {}}"#.to_string()),
        (
            "wrong shape",
            r#"{"schema_version": 1, "resources": []}"#.to_string(),
        ),
    ];
    let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
    for (what, text) in &cases {
        std::fs::write(&path, text).unwrap();
        for command in [
            &["up", "--yes"][..],
            &["plan"],
            &["down", "--yes"],
            &["outputs"],
        ] {
            stack.proxy().reset();
            let run = stack.run(command).await;
            let context = format!("state {what}, `provision {}`", command.join(" "));
            assert_refused(&run, &file_name, &context);
            let stats = stack.proxy().stats();
            assert_eq!(
                stats.mutating,
                0,
                "{context}: changed AWS: {:?}",
                stats.operations.keys()
            );
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                *text,
                "{context}: the broken state file was changed"
            );
        }
    }
}
