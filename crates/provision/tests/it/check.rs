//! `provision check`, and the same checks before `up` (issue 13): each mistake a new user makes
//! is reported by `check`, naming the config key or the tool, and stops `up` with zero
//! mutating calls (counted by the proxy between the binary and the emulator). A good config
//! checks clean; on the emulator that is exit 2, because the quotas moto has no API for and
//! the HuggingFace image of AWS's registry account are "not checked".

use aws_sdk_iam::types::Tag;
use provision_testkit::dns::DnsResponder;
use serde_json::{Value, json};

use crate::support::{Run, Stack};

/// A DNS responder that delegates the test zone to the name servers Route 53 (moto) gave it.
async fn delegating(stack: &Stack) -> DnsResponder {
    let zone = stack.config()["hosted_zone_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = stack
        .route53()
        .get_hosted_zone()
        .id(zone)
        .send()
        .await
        .unwrap();
    let servers: Vec<String> = out.delegation_set().unwrap().name_servers().to_vec();
    let servers: Vec<&str> = servers.iter().map(String::as_str).collect();
    DnsResponder::start(&[("example.test", &servers)])
        .await
        .unwrap()
}

/// `provision check --json`, asking `dns` for the delegation.
async fn check(stack: &Stack, dns: &DnsResponder, extra: &[&str]) -> (Run, Value) {
    let mut args = vec!["check", "--json"];
    args.extend_from_slice(extra);
    let run: Run = stack
        .command(&args)
        .env("PROVISION_DNS_SERVER", dns.addr().to_string())
        .output()
        .await
        .unwrap()
        .into();
    let report = run.json();
    assert_eq!(
        report["exit_code"].as_i64(),
        Some(run.code as i64),
        "the report's exit code is the process's:\n{}",
        run.stderr
    );
    assert_eq!(
        report["api_calls"]["mutating"], 0,
        "check changes nothing: {report:#}"
    );
    (run, report)
}

/// The findings of `severity` whose subject contains `subject`.
fn findings<'r>(report: &'r Value, severity: &str, subject: &str) -> Vec<&'r Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == severity && f["subject"].as_str().unwrap().contains(subject))
        .collect()
}

/// `up --yes --json` through the proxy: it must fail before its first mutating call, with a
/// message naming every `words`.
async fn up_refused(stack: &Stack, extra: &[&str], words: &[&str]) -> Run {
    let mut args = vec!["up", "--yes", "--json"];
    args.extend_from_slice(extra);
    let run = stack.run(&args).await;
    let stats = stack.proxy().stats();
    assert_eq!(run.code, 1, "up must fail:\n{}", run.stderr);
    assert_eq!(
        stats.mutating, 0,
        "up changed things before failing: {:?}\n{}",
        stats.operations, run.stderr
    );
    for w in words {
        assert!(
            run.stderr.contains(w),
            "the error names `{w}`:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("nothing was changed in AWS"),
        "{}",
        run.stderr
    );
    run
}

async fn proxied() -> Stack {
    Stack::new().await.through_proxy(|c| c).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_good_config_checks_clean_with_only_what_the_emulator_cannot_answer_unchecked() {
    let stack = proxied().await;
    let dns = delegating(&stack).await;
    let (run, report) = check(&stack, &dns, &[]).await;
    assert_eq!(run.code, 2, "{report:#}");
    assert_eq!(report["problems"], 0, "{report:#}");
    assert_eq!(report["warnings"], 0, "{report:#}");
    let unchecked: Vec<&Value> = findings(&report, "not_checked", "");
    assert!(
        unchecked
            .iter()
            .all(|f| f["area"] == "quotas" || f["area"] == "backends"),
        "only quotas moto has no API for, and AWS's HuggingFace registry, go unchecked: {unchecked:#?}"
    );
    for (area, subject) in [
        ("credentials", "account"),
        ("hosted_zone", "hosted_zone_id"),
        ("delegation", "hosted_zone_id"),
        ("images", "build folders"),
        ("quotas", "VPCs"),
        ("names", "web/dns/app"),
    ] {
        assert!(
            findings(&report, "ok", subject)
                .iter()
                .any(|f| f["area"] == area),
            "{area} {subject} passes: {report:#}"
        );
    }
    assert!(
        dns.asked() >= 1,
        "the delegation was asked of the DNS server"
    );
    assert_eq!(stack.proxy().stats().mutating, 0);

    // The text report says the same.
    let text: Run = stack
        .command(&["check"])
        .env("PROVISION_DNS_SERVER", dns.addr().to_string())
        .output()
        .await
        .unwrap()
        .into();
    assert_eq!(text.code, 2, "{}", text.stderr);
    assert!(text.stdout.contains("0 problem(s)"), "{}", text.stdout);
    assert!(text.stdout.contains("not checked"), "{}", text.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hosted_zone_that_does_not_exist() {
    let stack = proxied()
        .await
        .with_config(|c| c["hosted_zone_id"] = json!("Z0NOSUCHZONE00"));
    up_refused(
        &stack,
        &[],
        &["hosted_zone_id", "Z0NOSUCHZONE00", "no hosted zone"],
    )
    .await;

    let dns = DnsResponder::start(&[]).await.unwrap();
    let (run, report) = check(&stack, &dns, &[]).await;
    assert_eq!(run.code, 1);
    let found = findings(&report, "problem", "hosted_zone_id");
    assert_eq!(found.len(), 1, "{report:#}");
    assert_eq!(found[0]["area"], "hosted_zone");
    assert!(
        found[0]["hint"]
            .as_str()
            .unwrap()
            .contains("list-hosted-zones-by-name")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hosted_zone_for_another_domain() {
    let stack = proxied().await;
    let other = stack
        .route53()
        .create_hosted_zone()
        .name("other.test")
        .caller_reference("check-other-domain")
        .send()
        .await
        .unwrap();
    let other = other
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string();
    let stack = stack.with_config(|c| c["hosted_zone_id"] = json!(other));
    up_refused(
        &stack,
        &[],
        &["hosted_zone_id", "other.test", "example.test"],
    )
    .await;

    let dns = DnsResponder::start(&[]).await.unwrap();
    let (run, report) = check(&stack, &dns, &[]).await;
    assert_eq!(run.code, 1);
    let found = findings(&report, "problem", "hosted_zone_id");
    assert!(
        found
            .iter()
            .any(|f| f["area"] == "hosted_zone"
                && f["message"].as_str().unwrap().contains("other.test")),
        "{report:#}"
    );
}

/// A `docker` that is installed but has no daemon, first on PATH.
fn broken_docker(dir: &std::path::Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let docker = bin.join("docker");
    std::fs::write(
        &docker,
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_builder_that_does_not_work() {
    let stack = proxied().await;
    let tools = tempfile::tempdir().unwrap();
    let path = broken_docker(tools.path());
    let run: Run = stack
        .command(&["up", "--yes", "--json", "--builder", "docker"])
        .env("PATH", &path)
        .output()
        .await
        .unwrap()
        .into();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(stack.proxy().stats().mutating, 0, "{}", run.stderr);
    for w in [
        "--builder docker",
        "Docker daemon",
        "streamlit_app",
        "nothing was changed in AWS",
    ] {
        assert!(
            run.stderr.contains(w),
            "the error names `{w}`:\n{}",
            run.stderr
        );
    }

    let dns = delegating(&stack).await;
    let run: Run = stack
        .command(&["check", "--json", "--builder", "docker"])
        .env("PATH", &path)
        .env("PROVISION_DNS_SERVER", dns.addr().to_string())
        .output()
        .await
        .unwrap()
        .into();
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    let found = findings(&report, "problem", "--builder docker");
    assert_eq!(found.len(), 1, "{report:#}");
    assert_eq!(found[0]["area"], "builder");
    assert!(found[0]["hint"].as_str().unwrap().contains("start Docker"));
    // The one problem; everything else still checked and reported.
    assert_eq!(report["problems"], 1, "{report:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_image_folder() {
    let stack = proxied().await;
    std::fs::remove_dir_all(stack.root().join("functions/text_counterfactuals")).unwrap();
    let run = up_refused(
        &stack,
        &[],
        &["lambda_functions[0].folder_name", "does not exist"],
    )
    .await;
    assert_eq!(
        stack.proxy().stats().total,
        0,
        "no AWS call at all: {}",
        run.stderr
    );

    let dns = delegating(&stack).await;
    let (run, report) = check(&stack, &dns, &[]).await;
    assert_eq!(run.code, 1);
    let found = findings(&report, "problem", "lambda_functions[0].folder_name");
    assert_eq!(found.len(), 1, "{report:#}");
    assert_eq!(found[0]["area"], "images");
    // Reported with everything else, not instead of it.
    assert!(
        !findings(&report, "ok", "hosted_zone_id").is_empty(),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_ecr_image_reference() {
    let stack = proxied().await.with_config(|c| {
        let f = c["lambda_functions"][0].as_object_mut().unwrap();
        f.remove("folder_name");
        f.insert("ecr_repo".into(), json!("shared/counterfactuals"));
        f.insert("tag".into(), json!("v9"));
    });
    up_refused(&stack, &[], &["ecr_repo", "shared/counterfactuals"]).await;

    let dns = delegating(&stack).await;
    let (run, report) = check(&stack, &dns, &[]).await;
    assert_eq!(run.code, 1);
    let found = findings(&report, "problem", "lambda_functions[0].ecr_repo");
    assert_eq!(found.len(), 1, "{report:#}");
    assert_eq!(found[0]["area"], "images");
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .contains("shared/counterfactuals")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_model_data_in_s3() {
    const BUCKET: &str = "provision-check-models";
    let stack = proxied().await.with_config(|c| {
        c["sagemaker_endpoints"][1]["model_data_url"] =
            json!(format!("s3://{BUCKET}/explanations/model.tar.gz"));
        c["sagemaker_endpoints"][0]["model_data_url"] =
            json!("s3://provision-check-no-such-bucket/unmasking/model.tar.gz");
    });
    stack
        .s3()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    up_refused(
        &stack,
        &[],
        &[
            "sagemaker_endpoints[1].model_data_url",
            "no object `explanations/model.tar.gz`",
            "sagemaker_endpoints[0].model_data_url",
            "bucket `provision-check-no-such-bucket`",
        ],
    )
    .await;

    let dns = delegating(&stack).await;
    let (run, report) = check(&stack, &dns, &[]).await;
    assert_eq!(run.code, 1);
    for key in [
        "sagemaker_endpoints[0].model_data_url",
        "sagemaker_endpoints[1].model_data_url",
    ] {
        let found = findings(&report, "problem", key);
        assert_eq!(found.len(), 1, "{key}: {report:#}");
        assert_eq!(found[0]["area"], "backends");
    }

    // Uploaded, that one passes.
    stack
        .s3()
        .put_object()
        .bucket(BUCKET)
        .key("explanations/model.tar.gz")
        .body(b"model".to_vec().into())
        .send()
        .await
        .unwrap();
    let (_, report) = check(&stack, &dns, &[]).await;
    assert_eq!(
        findings(&report, "ok", "sagemaker_endpoints[1].model_data_url").len(),
        1,
        "{report:#}"
    );
}

/// The name `provision graph` gives the first node of `kind`.
async fn name_of(stack: &Stack, kind: &str) -> (String, String) {
    let graph = stack.run(&["graph", "--json"]).await.success().json();
    let node = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == kind)
        .unwrap_or_else(|| panic!("a {kind} node: {graph:#}"));
    (
        node["id"].as_str().unwrap().to_string(),
        node["name"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_taken_by_a_foreign_resource() {
    let stack = proxied().await;
    // Another stack's role under the name this stack would give its role.
    let (id, role) = name_of(&stack, "iam.role").await;
    stack
        .iam()
        .create_role()
        .role_name(&role)
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}).to_string(),
        )
        .tags(Tag::builder().key("provision:stack").value("streamlit-app-prod").build().unwrap())
        .send()
        .await
        .unwrap();
    up_refused(&stack, &[], &[&role, "belongs to stack streamlit-app-prod"]).await;

    let dns = delegating(&stack).await;
    let (run, report) = check(&stack, &dns, &[]).await;
    assert_eq!(run.code, 1);
    let found = findings(&report, "problem", &id);
    assert_eq!(found.len(), 1, "{report:#}");
    assert_eq!(found[0]["area"], "names");
    assert!(found[0]["message"].as_str().unwrap().contains(&role));
    // The role is untouched.
    let tags = stack
        .iam()
        .list_role_tags()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dns_record_the_stack_would_write_is_taken() {
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    let stack = proxied().await;
    let zone = stack.config()["hosted_zone_id"]
        .as_str()
        .unwrap()
        .to_string();
    let app = format!("{}.example.test", stack.environment());
    stack
        .route53()
        .change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Create)
                        .resource_record_set(
                            ResourceRecordSet::builder()
                                .name(&app)
                                .r#type(RrType::A)
                                .ttl(300)
                                .resource_records(
                                    ResourceRecord::builder()
                                        .value("192.0.2.10")
                                        .build()
                                        .unwrap(),
                                )
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    up_refused(&stack, &[], &["web/dns/app", &app, "192.0.2.10"]).await;

    let dns = delegating(&stack).await;
    let (run, report) = check(&stack, &dns, &[]).await;
    assert_eq!(run.code, 1);
    let found = findings(&report, "problem", "web/dns/app");
    assert_eq!(found.len(), 1, "{report:#}");
    assert_eq!(found[0]["area"], "names");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_delegation_is_checked_against_dns_and_unreachable_dns_is_not_a_problem() {
    let stack = Stack::new().await;
    // The parent delegates the zone to someone else's servers.
    let elsewhere = DnsResponder::start(&[(
        "example.test",
        &["ns1.elsewhere.example.net", "ns2.elsewhere.example.net"],
    )])
    .await
    .unwrap();
    let (run, report) = check(&stack, &elsewhere, &[]).await;
    assert_eq!(run.code, 1, "{report:#}");
    let found: Vec<&Value> = findings(&report, "problem", "hosted_zone_id")
        .into_iter()
        .filter(|f| f["area"] == "delegation")
        .collect();
    assert_eq!(found.len(), 1, "{report:#}");
    let message = found[0]["message"].as_str().unwrap();
    assert!(
        message.contains("ns1.elsewhere.example.net") && message.contains("ACM"),
        "{message}"
    );

    // Not delegated at all.
    let nobody = DnsResponder::start(&[]).await.unwrap();
    let (_, report) = check(&stack, &nobody, &[]).await;
    assert!(
        findings(&report, "problem", "hosted_zone_id")
            .iter()
            .any(|f| f["area"] == "delegation"
                && f["message"].as_str().unwrap().contains("NXDOMAIN")),
        "{report:#}"
    );

    // A DNS server that never answers: said, and the rest goes on.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let run: Run = stack
        .command(&["check", "--json"])
        .env(
            "PROVISION_DNS_SERVER",
            silent.local_addr().unwrap().to_string(),
        )
        .output()
        .await
        .unwrap()
        .into();
    assert_eq!(run.code, 2, "{}", run.stdout);
    let report = run.json();
    assert!(
        findings(&report, "not_checked", "hosted_zone_id")
            .iter()
            .any(|f| f["area"] == "delegation"
                && f["message"]
                    .as_str()
                    .unwrap()
                    .contains("could not be reached")),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_that_does_not_exist_is_reported_as_a_bad_profile() {
    let stack = Stack::new().await;
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config");
    std::fs::write(&config, "[profile work]\nregion = us-east-1\n").unwrap();
    let run: Run = stack
        .command(&["up", "--yes", "--profile", "wrok"])
        .env("AWS_CONFIG_FILE", &config)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.path().join("credentials"),
        )
        .output()
        .await
        .unwrap()
        .into();
    assert_eq!(run.code, 1);
    for w in ["--profile", "`wrok` is not defined", "work"] {
        assert!(run.stderr.contains(w), "`{w}`:\n{}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_checks_says_what_it_skipped() {
    let stack = Stack::new()
        .await
        .with_config(|c| c["hosted_zone_id"] = json!("Z0NOSUCHZONE00"));
    let checked = stack.run(&["plan"]).await;
    assert_eq!(checked.code, 1, "plan runs the checks: {}", checked.stderr);
    assert!(
        checked.stderr.contains("hosted_zone_id"),
        "{}",
        checked.stderr
    );

    let skipped = stack.run(&["plan", "--skip-checks"]).await;
    assert_eq!(skipped.code, 2, "the plan is made: {}", skipped.stderr);
    assert!(
        skipped.stderr.contains("--skip-checks: not checked")
            && skipped.stderr.contains("the hosted zone"),
        "{}",
        skipped.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huggingface_image_that_does_not_exist() {
    // An `image_uri` in the emulator's own registry, so it can be read: the repository is
    // there, the tag is not.
    let uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/huggingface-pytorch-inference:9.9-missing";
    let stack = proxied()
        .await
        .with_config(|c| c["sagemaker_endpoints"][0]["image_uri"] = json!(uri));
    stack
        .ecr()
        .create_repository()
        .repository_name("mirror/huggingface-pytorch-inference")
        .send()
        .await
        .unwrap();
    up_refused(
        &stack,
        &[],
        &["sagemaker_endpoints[0].image_uri", "9.9-missing"],
    )
    .await;

    let dns = delegating(&stack).await;
    let (run, report) = check(&stack, &dns, &[]).await;
    assert_eq!(run.code, 1);
    let found = findings(&report, "problem", "sagemaker_endpoints[0].image_uri");
    assert_eq!(found.len(), 1, "{report:#}");
    assert_eq!(found[0]["area"], "backends");
    assert!(
        found[0]["hint"]
            .as_str()
            .unwrap()
            .contains("available_images.md")
    );
}
