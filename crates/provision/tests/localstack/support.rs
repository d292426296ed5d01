//! The harness: one LocalStack for the whole test binary, a temporary project per test made from
//! `examples/offline/` with a config shaped like `config/local.json` (LocalStack's account, a
//! hosted zone and an environment of its own), and the `provision` binary run inside it.
//!
//! Tests share LocalStack, so each one works in its own environment (and so its own stack name,
//! resource names and tags) and its own hosted zone, and checks AWS by those, never by counting
//! everything LocalStack holds.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use aws_sdk_ec2::types::Filter;
use provision_testkit::proxy::{Proxy, ProxyConfig, is_mutating};
use provision_testkit::{copy_dir, workspace_root};
use serde_json::Value;

/// LocalStack's account (moto's is 123456789012).
pub const ACCOUNT: &str = "000000000000";
pub const REGION: &str = "us-east-1";

/// The LocalStack all tests of this binary use: `PROVISION_LOCALSTACK_URL` when set (it must be
/// on loopback), else the one `scripts/localstack start` starts (or finds running).
pub fn localstack_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("PROVISION_LOCALSTACK_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let url = url.trim().trim_end_matches('/').to_string();
            assert!(
                is_loopback_url(&url),
                "PROVISION_LOCALSTACK_URL={url}: the tests only talk to loopback (http://127.0.0.1:PORT)"
            );
            url
        }
        _ => start_localstack(),
    })
}

fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = host
        .rsplit_once(':')
        .map(|(h, _)| h)
        .filter(|h| !h.is_empty() && !h.ends_with(':'))
        .unwrap_or(host);
    host == "127.0.0.1" || host == "localhost" || host == "[::1]"
}

/// Runs `scripts/localstack start`. If this process started it (it was not running before), a
/// watcher stops it when this process exits: it waits on a pipe only this process holds open,
/// so the kernel closing the pipe at exit (however the process ends) is its signal.
fn start_localstack() -> String {
    let script = workspace_root().join("scripts/localstack");
    let running_before = Command::new(&script)
        .arg("status")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let started = Command::new(&script)
        .arg("start")
        .stdin(Stdio::null())
        .output()
        .expect("scripts/localstack runs");
    assert!(
        started.status.success(),
        "scripts/localstack start failed:\n{}",
        String::from_utf8_lossy(&started.stderr)
    );
    if !running_before {
        // Never waited for: it outlives this process by design (its parent becomes init).
        #[allow(clippy::zombie_processes)]
        let watcher = Command::new("bash")
            .arg("-c")
            .arg("read -r _; exec \"$0\" stop")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the LocalStack watcher starts");
        // Never written to: it must stay open for as long as this process lives.
        static PIPE: OnceLock<std::sync::Mutex<std::process::ChildStdin>> = OnceLock::new();
        if let Some(stdin) = watcher.stdin {
            let _ = PIPE.set(std::sync::Mutex::new(stdin));
        }
    }
    let url = Command::new(&script)
        .arg("url")
        .output()
        .expect("scripts/localstack url runs");
    String::from_utf8_lossy(&url.stdout).trim().to_string()
}

/// A short environment name no other test of any run uses (lower-case letters and digits, as
/// `environment` allows), so tests can share one LocalStack.
fn unique_environment() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    format!(
        "ls{:06x}{}",
        (nanos ^ std::process::id().rotate_left(12)) & 0xffffff,
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

/// Test credentials: LocalStack accepts any, and answers for account 000000000000 unless the
/// access key is itself a 12-digit account id.
const ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", REGION),
    ("NO_COLOR", "1"),
    // Scaled-down polling: LocalStack answers at once; its only wait is ACM's 10 seconds.
    ("PROVISION_WAIT_SCALE", "0.02"),
];

/// A project of its own, deploying to the shared LocalStack.
pub struct Stack {
    endpoint: String,
    environment: String,
    dir: tempfile::TempDir,
    config: Value,
    sdk: aws_config::SdkConfig,
    /// When set, the binary's calls go through this proxy (kill points); the harness's own
    /// checks still go straight to LocalStack.
    proxy: Option<Proxy>,
    /// The `--state` the test deploys with, when not the local file (for the clean-up).
    remote_state: std::sync::Mutex<Option<String>>,
}

/// A test that fails half-way must not leave live resources in the LocalStack other tests
/// share (a live NAT gateway would make the next network test fail, see `nat_gateway_turn`):
/// on a panic, `provision down` removes what the stack's state records.
impl Drop for Stack {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_provision"));
        cmd.args(["down", "--yes"]);
        if let Some(uri) = self.remote_state.lock().ok().and_then(|s| s.clone()) {
            cmd.args(["--state", &uri]);
        }
        // Straight to LocalStack: the proxy may be frozen at a kill point.
        let _ = cmd
            .current_dir(self.root())
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_DEFAULT_PROFILE")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .envs(ENV.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Stack {
    /// A hosted zone `<environment>.test` of its own, and a project copied from
    /// `examples/offline/` whose config is `config/local.json` in LocalStack's account, that
    /// zone and domain, and a unique environment.
    pub async fn new() -> Stack {
        let endpoint = localstack_url().to_string();
        let environment = unique_environment();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await;
        let domain = format!("{environment}.test");
        let zone = aws_sdk_route53::Client::new(&sdk)
            .create_hosted_zone()
            .name(&domain)
            .caller_reference(format!("provision-localstack-tests-{environment}"))
            .send()
            .await
            .expect("LocalStack creates the test's hosted zone");
        let zone_id = zone
            .hosted_zone()
            .expect("a hosted zone in the reply")
            .id()
            .trim_start_matches("/hostedzone/")
            .to_string();

        let dir = tempfile::tempdir().expect("a scratch folder");
        let root = workspace_root();
        copy_dir(&root.join("examples/offline"), dir.path()).expect("the offline example copies");
        let mut config: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("config/local.json")).expect("config/local.json"),
        )
        .expect("config/local.json is JSON");
        config["account"] = Value::String(ACCOUNT.into());
        config["region"] = Value::String(REGION.into());
        config["environment"] = Value::String(environment.clone());
        config["hosted_zone_id"] = Value::String(zone_id);
        config["domain_name"] = Value::String(domain);
        let stack = Stack {
            endpoint,
            environment,
            dir,
            config,
            sdk,
            proxy: None,
            remote_state: std::sync::Mutex::new(None),
        };
        stack.write_config();
        stack
    }

    /// Sends the binary's calls through a plain forwarding proxy (for kill points).
    pub async fn through_proxy(mut self) -> Self {
        let proxy = Proxy::start(ProxyConfig::new(self.endpoint.clone()))
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

    /// Records that the test deploys with `--state uri`, so a failed test's clean-up finds it.
    pub fn deploys_with_state(&self, uri: &str) {
        if let Ok(mut s) = self.remote_state.lock() {
            *s = Some(uri.to_string());
        }
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    fn write_config(&self) {
        std::fs::create_dir_all(self.root().join("config")).expect("config folder");
        let mut file = std::fs::File::create(self.config_path()).expect("config file");
        file.write_all(
            serde_json::to_string_pretty(&self.config)
                .expect("config serialises")
                .as_bytes(),
        )
        .expect("config written");
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

    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// `streamlit-app-<environment>`: the value of every resource's `provision:stack` tag.
    pub fn stack_name(&self) -> String {
        format!("streamlit-app-{}", self.environment)
    }

    pub fn domain(&self) -> String {
        self.config["domain_name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn zone_id(&self) -> String {
        self.config["hosted_zone_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The state file, parsed (an empty object when there is none).
    pub fn state(&self) -> Value {
        std::fs::read_to_string(self.state_path())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| serde_json::json!({}))
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The binary, in the project folder, pointed at LocalStack (or at the proxy).
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_provision"));
        cmd.args(args)
            .current_dir(self.root())
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_DEFAULT_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("PROVISION_BUILDER")
            .env(
                "AWS_ENDPOINT_URL",
                self.proxy
                    .as_ref()
                    .map(|p| p.url())
                    .unwrap_or(self.endpoint()),
            )
            .envs(ENV.iter().copied())
            .stdin(Stdio::null())
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

    /// `provision up --yes --json` limited to `targets` (each a `--target PREFIX`), which must
    /// succeed; returns its JSON result.
    pub async fn up(&self, targets: &[&str]) -> Value {
        let mut args = vec!["up", "--yes", "--json"];
        args.extend(target_args(targets));
        self.run(&args).await.success().json()
    }

    /// `provision down --yes --json` (everything the state records), which must succeed.
    pub async fn down(&self) -> Value {
        self.run(&["down", "--yes", "--json"])
            .await
            .success()
            .json()
    }

    /// `provision plan --json` limited to `targets`: its exit code and plan.
    pub async fn plan(&self, targets: &[&str]) -> (i32, Value) {
        let mut args = vec!["plan", "--json"];
        args.extend(target_args(targets));
        let run = self.run(&args).await;
        assert!(
            run.code == 0 || run.code == 2,
            "plan failed:\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
        (run.code, run.json())
    }

    pub fn sdk(&self) -> &aws_config::SdkConfig {
        &self.sdk
    }
    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk)
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
    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.sdk)
    }
    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk)
                .force_path_style(true)
                .build(),
        )
    }

    /// A filter matching this stack's `provision:stack` tag.
    pub fn stack_filter(&self) -> Filter {
        tag_filter("provision:stack", &self.stack_name())
    }
}

/// Waits for this test's turn to have a live NAT gateway, and holds it while the guard lives.
///
/// LocalStack (4.13, whose EC2 is moto's) and moto ignore tag filters on DescribeNatGateways
/// and list every NAT gateway of the account, where AWS lists only the matching ones (its API
/// reference lists `tag:<key>` among the filters). provision finds a NAT gateway by its tags
/// when its id is not recorded, so with a second stack's live gateway in the same LocalStack it
/// is shown that one, and (rightly) refuses to manage it. The tests that make a NAT gateway
/// therefore take turns; gateways `down` deleted read `deleted` and are passed over.
pub async fn nat_gateway_turn() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// `--target P` for each prefix.
pub fn target_args<'a>(targets: &[&'a str]) -> Vec<&'a str> {
    targets.iter().flat_map(|t| ["--target", *t]).collect()
}

pub fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

pub fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// The number of mutating API calls a `--json` result reports.
pub fn mutating_calls(result: &Value) -> u64 {
    result["api_calls"]["mutating"].as_u64().unwrap_or(u64::MAX)
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

/// The logical ids the state records (`resources` keys).
pub fn state_ids(state: &Value) -> Vec<String> {
    state["resources"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}
