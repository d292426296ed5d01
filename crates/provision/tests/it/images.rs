//! Container images end to end, built for real (with whichever builder is detected: buildah
//! on the test machines) from `examples/offline/` and pushed through the ECR API into the
//! emulator: each image is built and pushed once, a rerun builds and uploads nothing, an edit
//! rebuilds only its image, an image already in ECR is checked and left alone, and `down`
//! removes exactly the repositories the stack made.

// The helpers below are test code too (clippy only knows `#[test]` functions as such): a
// failed call is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use aws_sdk_ecr::types::{ImageIdentifier, LayerAvailability};
use serde_json::{Value, json};

use crate::support::{Run, Stack, mutating_calls, mutating_operations};

const STACK: &str = "streamlit-app-local";
const APP: &str = "streamlit-app-local/streamlit_app";
const FUNCTION: &str = "streamlit-app-local/functions/text_counterfactuals";
const ENDPOINT: &str = "streamlit-app-local/endpoints/serverless_explanations";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const GZIP_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// How many calls of an ECR operation a `--json` result reports.
fn ecr_calls(result: &Value, operation: &str) -> u64 {
    result["api_calls"]["operations"]
        .as_object()
        .map(|ops| {
            ops.iter()
                .filter(|(op, _)| {
                    op.split_once(':').is_some_and(|(svc, name)| {
                        svc.eq_ignore_ascii_case("ecr") && name == operation
                    })
                })
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// The image outputs the state records, by logical id.
fn image_outputs(stack: &Stack) -> BTreeMap<String, Value> {
    let state = stack.state();
    state["resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(id, r)| id.starts_with("image/") && r["outputs"]["image_uri"].is_string())
        .map(|(id, r)| (id.clone(), r["outputs"].clone()))
        .collect()
}

/// Names of the emulator's repositories.
async fn repositories(stack: &Stack) -> Vec<String> {
    let out = stack.ecr().describe_repositories().send().await.unwrap();
    let mut names: Vec<String> = out
        .repositories()
        .iter()
        .filter_map(|r| r.repository_name().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The tags of the images in a repository.
async fn tags(stack: &Stack, repository: &str) -> Vec<String> {
    let out = stack
        .ecr()
        .describe_images()
        .repository_name(repository)
        .send()
        .await
        .unwrap();
    let mut tags: Vec<String> = out
        .image_details()
        .iter()
        .flat_map(|d| d.image_tags().to_vec())
        .collect();
    tags.sort();
    tags
}

/// `up --yes --json` with its stderr (the builder's output), which must succeed.
async fn up(stack: &Stack) -> (Value, String) {
    let run: Run = stack.run(&["up", "--yes", "--json"]).await.success();
    (run.json(), run.stderr)
}

/// Checks the image a state output names: a single-platform Docker v2 manifest in ECR, under
/// a content-hash tag, whose layers are all there, gzipped.
async fn check_image(stack: &Stack, outputs: &Value, repository: &str) {
    let digest = outputs["digest"].as_str().unwrap();
    assert_eq!(outputs["repository_name"], repository);
    assert!(
        outputs["image_uri"].as_str().unwrap().ends_with(&format!(
            ".dkr.ecr.us-east-1.amazonaws.com/{repository}@{digest}"
        )),
        "{outputs}"
    );
    let ecr = stack.ecr();
    let got = ecr
        .batch_get_image()
        .repository_name(repository)
        .image_ids(ImageIdentifier::builder().image_digest(digest).build())
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.images().len(),
        1,
        "{repository}@{digest} is in ECR: {:?}",
        got.failures()
    );
    let image = &got.images()[0];
    let tag = image.image_id().and_then(|i| i.image_tag()).unwrap();
    assert!(
        tag.len() == 64 && tag.bytes().all(|b| b.is_ascii_hexdigit()),
        "the tag is a content hash: {tag}"
    );
    assert_eq!(image.image_manifest_media_type(), Some(DOCKER_MANIFEST));
    let manifest: Value = serde_json::from_str(image.image_manifest().unwrap()).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"], DOCKER_MANIFEST,
        "not an OCI index: one platform, one manifest"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    let mut digests = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for layer in layers {
        assert_eq!(layer["mediaType"], GZIP_LAYER);
        digests.push(layer["digest"].as_str().unwrap().to_string());
    }
    let available = ecr
        .batch_check_layer_availability()
        .repository_name(repository)
        .set_layer_digests(Some(digests.clone()))
        .send()
        .await
        .unwrap();
    assert!(
        available.failures().is_empty(),
        "{:?}",
        available.failures()
    );
    assert_eq!(available.layers().len(), digests.len());
    for l in available.layers() {
        assert_eq!(
            l.layer_availability(),
            Some(&LayerAvailability::Available),
            "{l:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_built_and_pushed_once_for_both_platforms_and_reruns_upload_nothing() {
    // The function runs on Graviton, the app and the endpoint on x86.
    let stack = Stack::new()
        .await
        .with_config(|c| c["lambda_functions"][0]["platform"] = json!("arm64"));
    let ecr = stack.ecr();
    // A repository someone else made must survive everything below.
    ecr.create_repository()
        .repository_name("someone-else/keep")
        .send()
        .await
        .unwrap();

    let (first, log) = up(&stack).await;
    assert_eq!(
        ecr_calls(&first, "PutImage"),
        3,
        "three images, each pushed once"
    );
    assert!(
        ecr_calls(&first, "InitiateLayerUpload") >= 6,
        "a config and a layer per image"
    );
    assert_eq!(
        ecr_calls(&first, "InitiateLayerUpload"),
        ecr_calls(&first, "CompleteLayerUpload")
    );
    for folder in [
        "streamlit_app",
        "functions/text_counterfactuals",
        "endpoints/serverless_explanations",
    ] {
        assert_eq!(
            log.matches(&format!("building {folder} for")).count(),
            1,
            "{folder} is built once:\n{log}"
        );
    }
    assert!(
        log.contains("building functions/text_counterfactuals for linux/arm64"),
        "{log}"
    );
    assert!(
        log.contains("building streamlit_app for linux/amd64"),
        "{log}"
    );

    let outputs = image_outputs(&stack);
    assert_eq!(
        outputs.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "image/endpoints/serverless_explanations/amd64",
            "image/functions/text_counterfactuals/arm64",
            "image/streamlit_app/amd64"
        ]
    );
    check_image(&stack, &outputs["image/streamlit_app/amd64"], APP).await;
    check_image(
        &stack,
        &outputs["image/functions/text_counterfactuals/arm64"],
        FUNCTION,
    )
    .await;
    check_image(
        &stack,
        &outputs["image/endpoints/serverless_explanations/amd64"],
        ENDPOINT,
    )
    .await;

    // Repositories: the stack's tags, scans on push, immutable content-hash tags, the last 10
    // images kept; Lambda may pull from the function's repository only.
    let described = ecr
        .describe_repositories()
        .repository_names(APP)
        .repository_names(FUNCTION)
        .repository_names(ENDPOINT)
        .send()
        .await
        .unwrap();
    assert_eq!(described.repositories().len(), 3);
    for r in described.repositories() {
        let name = r.repository_name().unwrap();
        assert_eq!(
            r.image_scanning_configuration().map(|c| c.scan_on_push()),
            Some(true),
            "{name}"
        );
        assert_eq!(
            r.image_tag_mutability().map(|m| m.as_str()),
            Some("IMMUTABLE"),
            "{name}"
        );
        let tags = ecr
            .list_tags_for_resource()
            .resource_arn(r.repository_arn().unwrap())
            .send()
            .await
            .unwrap();
        let tags: BTreeMap<&str, &str> = tags.tags().iter().map(|t| (t.key(), t.value())).collect();
        assert_eq!(tags.get("provision:stack"), Some(&STACK), "{name}");
        assert!(
            tags.get("provision:id")
                .is_some_and(|id| id.ends_with("/repository")),
            "{name}: {tags:?}"
        );
        let lifecycle = ecr
            .get_lifecycle_policy()
            .repository_name(name)
            .send()
            .await
            .unwrap();
        let lifecycle: Value =
            serde_json::from_str(lifecycle.lifecycle_policy_text().unwrap()).unwrap();
        assert_eq!(
            lifecycle["rules"][0]["selection"]["countNumber"], 10,
            "{name}"
        );
        let policy = ecr
            .get_repository_policy()
            .repository_name(name)
            .send()
            .await;
        if name == FUNCTION {
            let policy: Value =
                serde_json::from_str(policy.unwrap().policy_text().unwrap()).unwrap();
            let statement = &policy["Statement"][0];
            assert_eq!(statement["Principal"]["Service"], "lambda.amazonaws.com");
            assert_eq!(
                statement["Action"],
                json!(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"])
            );
        } else {
            assert!(
                policy.is_err_and(|e| e
                    .as_service_error()
                    .is_some_and(|s| s.is_repository_policy_not_found_exception())),
                "{name} grants nothing"
            );
        }
    }

    // A rerun reads each image once, and builds and uploads nothing.
    let (second, log) = up(&stack).await;
    assert_eq!(
        mutating_calls(&second),
        0,
        "a rerun changes nothing: {:?}",
        mutating_operations(&second)
    );
    assert_eq!(
        ecr_calls(&second, "DescribeImages"),
        3,
        "one read per image"
    );
    assert_eq!(
        ecr_calls(&second, "InitiateLayerUpload") + ecr_calls(&second, "PutImage"),
        0
    );
    assert!(!log.contains("building "), "nothing is built:\n{log}");
    assert_eq!(image_outputs(&stack), outputs, "the same images, by digest");
    let (code, plan) = stack.plan().await;
    assert_eq!(code, 0, "plan agrees: {plan:#}");

    // down removes the stack's repositories with their images, and nothing else.
    stack.down().await;
    assert_eq!(repositories(&stack).await, ["someone-else/keep"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_one_file_rebuilds_only_that_image_and_ignored_files_rebuild_nothing() {
    let stack = Stack::new().await;
    std::fs::write(
        stack.root().join("streamlit_app/.dockerignore"),
        "# scratch space, never in the image\nnotes/\n*.log\n",
    )
    .unwrap();
    up(&stack).await;
    let before = image_outputs(&stack);
    let old_function_tags = tags(&stack, FUNCTION).await;

    // Files .dockerignore excludes do not count.
    std::fs::create_dir_all(stack.root().join("streamlit_app/notes")).unwrap();
    std::fs::write(stack.root().join("streamlit_app/notes/todo.txt"), "ship it").unwrap();
    std::fs::write(stack.root().join("streamlit_app/debug.log"), "noise").unwrap();
    let (code, plan) = stack.plan().await;
    assert_eq!(code, 0, "ignored files change nothing: {plan:#}");

    // One edited file rebuilds its image and nothing else.
    let readme = stack
        .root()
        .join("functions/text_counterfactuals/README.txt");
    let text = std::fs::read_to_string(&readme).unwrap();
    std::fs::write(&readme, format!("{text}\nEdited.\n")).unwrap();
    let (code, plan) = stack.plan().await;
    assert_eq!(code, 2);
    let changed: Vec<&str> = plan["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] != "noop")
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        changed,
        ["image/functions/text_counterfactuals/amd64"],
        "{plan:#}"
    );

    let (second, log) = up(&stack).await;
    assert_eq!(
        ecr_calls(&second, "PutImage"),
        1,
        "{:?}",
        mutating_operations(&second)
    );
    assert!(
        log.contains("building functions/text_counterfactuals for linux/amd64"),
        "{log}"
    );
    assert_eq!(
        log.matches("building ").count(),
        1,
        "only the edited folder is built:\n{log}"
    );
    let after = image_outputs(&stack);
    let id = "image/functions/text_counterfactuals/amd64";
    assert_ne!(
        after[id]["digest"], before[id]["digest"],
        "the function image is new"
    );
    for other in [
        "image/streamlit_app/amd64",
        "image/endpoints/serverless_explanations/amd64",
    ] {
        assert_eq!(after[other], before[other], "{other} is untouched");
    }
    // The old image stays for rollbacks (the lifecycle rule trims old ones).
    let new_tags = tags(&stack, FUNCTION).await;
    assert_eq!(new_tags.len(), 2);
    assert!(old_function_tags.iter().all(|t| new_tags.contains(t)));

    stack.down().await;
    assert!(repositories(&stack).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_already_in_ecr_is_checked_at_plan_time_used_by_digest_and_left_alone() {
    let use_image = |tag: &'static str| {
        move |c: &mut Value| {
            let f = c["lambda_functions"][0].as_object_mut().unwrap();
            f.remove("folder_name");
            f.insert("ecr_repo".into(), json!("shared/counterfactuals"));
            f.insert("tag".into(), json!(tag));
        }
    };
    let mut stack = Stack::new().await.with_config(use_image("v2"));
    let ecr = stack.ecr();
    ecr.create_repository()
        .repository_name("shared/counterfactuals")
        .send()
        .await
        .unwrap();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": format!("sha256:{}", "1".repeat(64))},
        "layers": [{"mediaType": GZIP_LAYER, "size": 3, "digest": format!("sha256:{}", "2".repeat(64))}],
    });
    let pushed = ecr
        .put_image()
        .repository_name("shared/counterfactuals")
        .image_manifest(manifest.to_string())
        .image_manifest_media_type(DOCKER_MANIFEST)
        .image_tag("v1")
        .send()
        .await
        .unwrap();
    let digest = pushed
        .image()
        .and_then(|i| i.image_id())
        .and_then(|i| i.image_digest())
        .unwrap()
        .to_string();

    // A tag that is not there fails the plan, before anything is made.
    let run = stack.run(&["up", "--yes", "--json"]).await;
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stderr.contains("shared/counterfactuals:v2"),
        "the error names the image:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("ecr_repo"),
        "and the config keys:\n{}",
        run.stderr
    );
    assert_eq!(
        repositories(&stack).await,
        ["shared/counterfactuals"],
        "nothing was created"
    );
    assert!(
        stack
            .ec2()
            .describe_vpcs()
            .send()
            .await
            .unwrap()
            .vpcs()
            .iter()
            .all(|v| v.is_default() == Some(true))
    );

    // The tag that is there is used by digest, with no repository made or built for it.
    stack.edit_config(use_image("v1"));
    let (_, log) = up(&stack).await;
    assert!(!log.contains("building functions/"), "{log}");
    let outputs = image_outputs(&stack);
    let image = &outputs["image/ecr/shared/counterfactuals/v1"];
    assert_eq!(image["digest"], digest.as_str());
    assert_eq!(
        image["image_uri"],
        format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/shared/counterfactuals@{digest}")
    );
    assert_eq!(
        repositories(&stack).await,
        ["shared/counterfactuals", ENDPOINT, APP]
    );

    // down never touches it.
    stack.down().await;
    assert_eq!(repositories(&stack).await, ["shared/counterfactuals"]);
    assert_eq!(tags(&stack, "shared/counterfactuals").await, ["v1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_build_names_the_folder_and_shows_the_builders_last_lines() {
    let stack = Stack::new().await;
    std::fs::write(
        stack
            .root()
            .join("endpoints/serverless_explanations/Dockerfile"),
        "FROM scratch\nCOPY no-such-file.txt /opt/program/\n",
    )
    .unwrap();
    let run = stack.run(&["up", "--yes", "--json"]).await;
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("building endpoints/serverless_explanations for linux/amd64 with"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("failed"), "{}", run.stderr);
    assert!(
        run.stderr.contains("no-such-file.txt"),
        "the builder's own words are shown:\n{}",
        run.stderr
    );
    assert!(
        tags(&stack, ENDPOINT).await.is_empty(),
        "nothing is pushed for it"
    );

    // Fixed, the next run builds just that image.
    std::fs::write(
        stack
            .root()
            .join("endpoints/serverless_explanations/Dockerfile"),
        "FROM scratch\nCOPY README.txt /opt/program/\n",
    )
    .unwrap();
    let (_, log) = up(&stack).await;
    assert!(
        log.contains("building endpoints/serverless_explanations"),
        "{log}"
    );
    assert_eq!(tags(&stack, ENDPOINT).await.len(), 1);
    stack.down().await;
}
