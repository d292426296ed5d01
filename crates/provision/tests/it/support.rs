//! The harness: an emulator, a temporary project made from `examples/offline/` with a config
//! shaped like `config/local.json`, and the `provision` binary run inside it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use provision_testkit::proxy::{Proxy, ProxyConfig, is_mutating};
use provision_testkit::{Emulator, copy_dir, workspace_root};
use serde_json::Value;

/// A project and the emulator it deploys to.
pub struct Stack {
    /// `None` when the tests run against an endpoint given in `PROVISION_TEST_ENDPOINT`
    /// (LocalStack, say) instead of a moto server of their own.
    emulator: Option<Emulator>,
    endpoint: String,
    environment: String,
    dir: tempfile::TempDir,
    config: Value,
    sdk: aws_config::SdkConfig,
    /// When set, the binary's calls go through this proxy (faults, latency, kill points);
    /// the harness's own checks still go straight to the emulator.
    proxy: Option<Proxy>,
}

/// A short name no other test of this run uses, for tests sharing one external endpoint.
fn unique_environment() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "t{:x}{}",
        (nanos ^ std::process::id()) & 0xfffff,
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as JSON (for `--json` runs).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(
            self.code, 0,
            "provision failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Test credentials only: the emulator accepts anything.
const ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
    ("NO_COLOR", "1"),
    // Scaled-down polling: the emulator answers at once, real AWS waits are not modelled here.
    ("PROVISION_WAIT_SCALE", "0.02"),
];

impl Stack {
    /// An emulator with the hosted zone `example.test`, and a project copied from
    /// `examples/offline/` whose config is `config/local.json` pointed at that zone.
    pub async fn new() -> Stack {
        // Each test has its own emulator, so names never collide; on a shared endpoint each
        // test gets its own environment (and so its own stack and names) instead.
        let (emulator, endpoint, environment) = match std::env::var("PROVISION_TEST_ENDPOINT") {
            Ok(url) if !url.is_empty() => (None, url, unique_environment()),
            _ => {
                let emulator =
                    Emulator::start().expect("the emulator starts (run scripts/setup first)");
                let url = emulator.url().to_string();
                (Some(emulator), url, "local".to_string())
            }
        };
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await;
        let route53 = aws_sdk_route53::Client::new(&sdk);
        let zone = route53
            .create_hosted_zone()
            .name("example.test")
            .caller_reference("provision-tests")
            .send()
            .await
            .expect("hosted zone");
        let zone_id = zone
            .hosted_zone()
            .unwrap()
            .id()
            .trim_start_matches("/hostedzone/")
            .to_string();

        let dir = tempfile::tempdir().unwrap();
        let root = workspace_root();
        copy_dir(&root.join("examples/offline"), dir.path()).expect("the offline example copies");
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("config/local.json")).unwrap())
                .unwrap();
        config["hosted_zone_id"] = Value::String(zone_id);
        config["environment"] = Value::String(environment.clone());
        let stack = Stack {
            emulator,
            endpoint,
            environment,
            dir,
            config,
            sdk,
            proxy: None,
        };
        stack.write_config();
        stack
    }

    /// The same project in another environment (its stack, state and names its own).
    pub fn with_environment(mut self, environment: &str) -> Self {
        self.environment = environment.to_string();
        self.config["environment"] = Value::String(environment.to_string());
        self.write_config();
        self
    }

    /// Another project, made from `examples/offline/` like this one, deploying to the same
    /// emulator and hosted zone in `environment`: for environments side by side in one account
    /// and region. This stack keeps the emulator running; drop the sibling first.
    pub fn sibling(&self, environment: &str) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&workspace_root().join("examples/offline"), dir.path())
            .expect("the offline example copies");
        let mut config = self.config.clone();
        config["environment"] = Value::String(environment.to_string());
        let sibling = Stack {
            emulator: None,
            endpoint: self.endpoint.clone(),
            environment: environment.to_string(),
            dir,
            config,
            sdk: self.sdk.clone(),
            proxy: None,
        };
        sibling.write_config();
        sibling
    }

    /// Sends the binary's calls through a proxy, configured by `f` from a plain forwarding one.
    pub async fn through_proxy(mut self, f: impl FnOnce(ProxyConfig) -> ProxyConfig) -> Self {
        let proxy = Proxy::start(f(ProxyConfig::new(self.endpoint.clone())))
            .await
            .expect("the proxy starts");
        self.proxy = Some(proxy);
        self
    }

    pub fn proxy(&self) -> &Proxy {
        self.proxy
            .as_ref()
            .expect("this stack has a proxy (through_proxy)")
    }

    /// Changes the config (and writes it).
    pub fn with_config(mut self, f: impl FnOnce(&mut Value)) -> Self {
        f(&mut self.config);
        self.write_config();
        self
    }

    pub fn edit_config(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.config);
        self.write_config();
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    fn write_config(&self) {
        std::fs::create_dir_all(self.root().join("config")).unwrap();
        std::fs::write(
            self.config_path(),
            serde_json::to_string_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// The project folder (the binary's working directory).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.root().join("config/default.json")
    }

    pub fn state_path(&self) -> PathBuf {
        self.root()
            .join(format!(".provision/{}.state.json", self.environment))
    }

    /// The config's environment: `local`, or unique per test on a shared endpoint.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// `streamlit-app-<environment>`: the value of every resource's `provision:stack` tag.
    pub fn stack_name(&self) -> String {
        format!("streamlit-app-{}", self.environment)
    }

    pub fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.state_path()).unwrap()).unwrap()
    }

    /// Replaces the state file with `state` (for tests that play an earlier version's state or
    /// a hand-edited one).
    pub fn write_state(&self, state: &Value) {
        std::fs::write(
            self.state_path(),
            serde_json::to_string_pretty(state).unwrap(),
        )
        .unwrap();
    }

    /// The EC2 filter for this stack's `provision:stack` tag.
    pub fn tag_filter(&self) -> aws_sdk_ec2::types::Filter {
        aws_sdk_ec2::types::Filter::builder()
            .name("tag:provision:stack")
            .values(self.stack_name())
            .build()
    }

    /// Every record set of the test's hosted zone.
    pub async fn records(&self) -> Vec<aws_sdk_route53::types::ResourceRecordSet> {
        let zone = self.config["hosted_zone_id"].as_str().unwrap().to_string();
        let out = self
            .route53()
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .send()
            .await
            .unwrap();
        out.resource_record_sets().to_vec()
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether this test has a moto server of its own (its `/moto-api` is available).
    pub fn is_moto(&self) -> bool {
        self.emulator.is_some()
    }

    pub fn sdk(&self) -> &aws_config::SdkConfig {
        &self.sdk
    }

    /// The binary, in the project folder, pointed at the emulator.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_provision"));
        cmd.args(args)
            .current_dir(self.root())
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_DEFAULT_PROFILE")
            .env_remove("PROVISION_BUILDER")
            .env(
                "AWS_ENDPOINT_URL",
                self.proxy
                    .as_ref()
                    .map(|p| p.url())
                    .unwrap_or(self.endpoint()),
            )
            .envs(ENV.iter().copied())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        self.command(args)
            .output()
            .await
            .expect("the binary runs")
            .into()
    }

    /// `provision up --yes --json`, which must succeed; returns its JSON result.
    pub async fn up(&self) -> Value {
        self.run(&["up", "--yes", "--json"]).await.success().json()
    }

    /// `provision down --yes --json`, which must succeed.
    pub async fn down(&self) -> Value {
        self.run(&["down", "--yes", "--json"])
            .await
            .success()
            .json()
    }

    /// `provision plan --json`: its exit code and plan.
    pub async fn plan(&self) -> (i32, Value) {
        let run = self.run(&["plan", "--json"]).await;
        assert!(
            run.code == 0 || run.code == 2,
            "plan failed:\n{}",
            run.stderr
        );
        (run.code, run.json())
    }

    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk)
    }
    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.sdk)
    }
    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk)
    }
    pub fn acm(&self) -> aws_sdk_acm::Client {
        aws_sdk_acm::Client::new(&self.sdk)
    }
    pub fn route53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&self.sdk)
    }
    pub fn elbv2(&self) -> aws_sdk_elasticloadbalancingv2::Client {
        aws_sdk_elasticloadbalancingv2::Client::new(&self.sdk)
    }
    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.sdk)
    }
    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.sdk)
    }
    pub fn sagemaker(&self) -> aws_sdk_sagemaker::Client {
        aws_sdk_sagemaker::Client::new(&self.sdk)
    }
    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.sdk)
    }
    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk)
                .force_path_style(true)
                .build(),
        )
    }
}

impl Stack {
    /// Puts a small object at `s3://bucket/key` (model data for endpoints: `up` checks it is
    /// there before creating anything), creating the bucket if needed.
    pub async fn put_object(&self, url: &str) {
        let (bucket, key) = url
            .strip_prefix("s3://")
            .and_then(|r| r.split_once('/'))
            .expect("an s3://bucket/key URL");
        let s3 = self.s3();
        if s3.head_bucket().bucket(bucket).send().await.is_err() {
            s3.create_bucket().bucket(bucket).send().await.unwrap();
        }
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(b"model".to_vec().into())
            .send()
            .await
            .unwrap();
    }
}

/// The number of mutating API calls a `--json` result reports.
pub fn mutating_calls(result: &Value) -> u64 {
    result["api_calls"]["mutating"].as_u64().unwrap_or(u64::MAX)
}

/// The record of type `t` named `name` (with or without the trailing dot) among `all`.
pub fn record<'a>(
    all: &'a [aws_sdk_route53::types::ResourceRecordSet],
    name: &str,
    t: &str,
) -> Option<&'a aws_sdk_route53::types::ResourceRecordSet> {
    let name = format!("{}.", name.trim_end_matches('.'));
    all.iter()
        .find(|r| r.name() == name && r.r#type().as_str() == t)
}

/// The mutating operations a `--json` result reports, for assertion messages.
pub fn mutating_operations(result: &Value) -> Vec<String> {
    result["api_calls"]["operations"]
        .as_object()
        .map(|ops| {
            ops.iter()
                .filter(|(op, _)| is_mutating(op.split(':').nth(1).unwrap_or("")))
                .map(|(op, n)| format!("{op} x{n}"))
                .collect()
        })
        .unwrap_or_default()
}

/// Resources of the emulator tagged with this stack, by EC2 resource type.
pub async fn tagged_ec2(stack: &Stack) -> Vec<(String, String)> {
    let out = stack
        .ec2()
        .describe_tags()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("key")
                .values("provision:stack")
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("value")
                .values(stack.stack_name())
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.tags()
        .iter()
        .map(|t| {
            (
                t.resource_type()
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_default(),
                t.resource_id().unwrap_or_default().to_string(),
            )
        })
        .collect()
}
