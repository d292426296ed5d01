//! The benchmark behind `scripts/bench` and BENCHMARKS.md.
//!
//! Every scenario runs the real `provision` binary against a fresh emulator behind the test
//! proxy with its latency model on: slow resources read back pending for their (scaled) AWS
//! time, new roles cannot be used at once. The critical path is computed from the same model
//! over the stack's own dependency graph (`provision graph --json`), so "wall time / critical
//! path" says how much time provision adds on top of AWS's own waits.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use provision_testkit::proxy::{Latency, Modelled, Proxy, ProxyConfig, is_mutating};
use provision_testkit::{Emulator, copy_dir, workspace_root};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Benchmarks provision against the emulator with AWS's latencies modelled")]
struct Args {
    /// The provision binary to measure.
    #[arg(long, default_value = "target/release/provision")]
    provision: PathBuf,
    /// AWS time to real time: 0.05 turns an AWS minute into 3 seconds.
    #[arg(long, default_value_t = 0.05)]
    scale: f64,
    /// Endpoint counts for the scaling scenario.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 20])]
    endpoints: Vec<usize>,
    /// Write the results into this markdown file (replacing the previous results section).
    #[arg(long)]
    write: Option<PathBuf>,
}

type Error = Box<dyn std::error::Error>;

/// One run of the binary.
struct Measured {
    wall: Duration,
    result: Value,
}

impl Measured {
    fn calls(&self) -> (u64, u64) {
        let c = &self.result["api_calls"];
        (
            c["total"].as_u64().unwrap_or(0),
            c["mutating"].as_u64().unwrap_or(0),
        )
    }
    fn operations(&self) -> BTreeMap<String, u64> {
        self.result["api_calls"]["operations"]
            .as_object()
            .map(|ops| {
                ops.iter()
                    .map(|(op, n)| (op.clone(), n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }
    fn mutating_operations(&self) -> BTreeMap<String, u64> {
        let mut ops = self.operations();
        ops.retain(|op, _| is_mutating(op.split(':').nth(1).unwrap_or("")));
        ops
    }
}

/// An emulator, the proxy in front of it, and a project deployed through them.
struct Bench {
    _emulator: Emulator,
    proxy: Proxy,
    project: tempfile::TempDir,
    provision: PathBuf,
    scale: f64,
}

/// Creates the hosted zone `example.test` in the emulator through Route 53's REST API.
async fn create_zone(endpoint: &str) -> Result<String, Error> {
    use http_body_util::{BodyExt, Full};
    let body = r#"<?xml version="1.0" encoding="UTF-8"?><CreateHostedZoneRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Name>example.test</Name><CallerReference>provision-bench</CallerReference></CreateHostedZoneRequest>"#;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let request = http::Request::post(format!("{endpoint}/2013-04-01/hostedzone"))
        .header("content-type", "application/xml")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/route53/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(Full::new(bytes::Bytes::from(body)))?;
    let response = client.request(request).await?;
    let text =
        String::from_utf8_lossy(&response.into_body().collect().await?.to_bytes()).into_owned();
    let id = text
        .split("<Id>/hostedzone/")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .ok_or_else(|| format!("no hosted zone id in {text}"))?;
    Ok(id.to_string())
}

impl Bench {
    async fn new(args: &Args, endpoints: Option<usize>) -> Result<Bench, Error> {
        let emulator = Emulator::start()?;
        let proxy = Proxy::start(ProxyConfig {
            latency: Some(Latency::new(args.scale)),
            ..ProxyConfig::new(emulator.url())
        })
        .await?;
        let zone = create_zone(emulator.url()).await?;
        let project = tempfile::tempdir()?;
        let root = workspace_root();
        copy_dir(&root.join("examples/offline"), project.path())?;
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("config/local.json"))?)?;
        config["hosted_zone_id"] = json!(zone);
        if let Some(n) = endpoints {
            // n custom-image serverless endpoints from one folder (one image), nothing else.
            let template = config["sagemaker_endpoints"][1].clone();
            config["lambda_functions"] = json!([]);
            config["sagemaker_endpoints"] = Value::Array(
                (0..n)
                    .map(|i| {
                        let mut e = template.clone();
                        e["endpoint_name"] = json!(format!("bench-endpoint-{i}"));
                        e["environment_variable_name"] = json!(format!("BENCH_ENDPOINT_{i}"));
                        e
                    })
                    .collect(),
            );
        }
        std::fs::create_dir_all(project.path().join("config"))?;
        std::fs::write(
            project.path().join("config/default.json"),
            serde_json::to_string_pretty(&config)?,
        )?;
        let provision = if args.provision.is_absolute() {
            args.provision.clone()
        } else {
            root.join(&args.provision)
        };
        Ok(Bench {
            _emulator: emulator,
            proxy,
            project,
            provision,
            scale: args.scale,
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.provision);
        cmd.args(args)
            .current_dir(self.project.path())
            .env("AWS_ENDPOINT_URL", self.proxy.url())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("NO_COLOR", "1")
            .env("PROVISION_WAIT_SCALE", self.scale.to_string())
            .env_remove("AWS_PROFILE");
        cmd
    }

    /// Reads everything once (a `plan`), so the emulator has loaded each service before the
    /// clock starts: moto initialises a service on its first request, which AWS does not make
    /// anyone wait for.
    fn warm_up(&self) -> Result<(), Error> {
        let out = self.command(&["plan", "-q"]).output()?;
        match out.status.code() {
            Some(0 | 2) => Ok(()),
            _ => Err(format!(
                "provision plan failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into()),
        }
    }

    fn up(&self) -> Result<Measured, Error> {
        let start = Instant::now();
        let out = self.command(&["up", "--yes", "--json", "-q"]).output()?;
        let wall = start.elapsed();
        if !out.status.success() {
            return Err(format!(
                "provision up failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(Measured {
            wall,
            result: serde_json::from_slice(&out.stdout)?,
        })
    }

    /// The critical path: the longest chain of modelled waits through the stack's graph.
    fn graph(&self) -> Result<Value, Error> {
        let out = self.command(&["graph", "--json"]).output()?;
        if !out.status.success() {
            return Err(format!(
                "provision graph failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn critical_path(&self) -> Result<Duration, Error> {
        let graph = self.graph()?;
        let latency = self
            .proxy
            .latency()
            .ok_or("the proxy has no latency model")?;
        Ok(critical_path(&graph, latency))
    }
}

/// How long AWS keeps a node's resource pending after its create call, per the model.
fn modelled_wait(node: &Value, latency: &Latency) -> Duration {
    let id = node["id"].as_str().unwrap_or("");
    match node["kind"].as_str().unwrap_or("") {
        "ec2.nat-gateway" => latency.scaled(Modelled::NatGateway),
        // Gateway endpoints (S3) are available at once; interface endpoints take minutes.
        "ec2.vpc-endpoint" if !id.ends_with("/s3") => latency.scaled(Modelled::VpcEndpoint),
        "elbv2.load-balancer" => latency.scaled(Modelled::LoadBalancer),
        "acm.certificate-validation" => latency.scaled(Modelled::Certificate),
        "sagemaker.endpoint" => latency.scaled(Modelled::Endpoint),
        "ecs.service" => latency.scaled(Modelled::EcsDeployment),
        "lambda.function" => latency.scaled(Modelled::Lambda),
        _ => Duration::ZERO,
    }
}

/// Earliest finish of every node if API calls took no time: a node starts when each dependency
/// is ready (or merely exists, for `until: exists`), and a function or model also waits for
/// its roles to propagate.
pub fn critical_path(graph: &Value, latency: &Latency) -> Duration {
    let nodes: &[Value] = graph["nodes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let by_id: HashMap<&str, &Value> = nodes
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let mut start: HashMap<&str, Duration> = HashMap::new();
    let mut finish: HashMap<&str, Duration> = HashMap::new();
    // `provision graph` lists nodes dependencies first.
    for n in nodes {
        let id = n["id"].as_str().unwrap_or("");
        let mut s = Duration::ZERO;
        for d in n["deps"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let dep = d["id"].as_str().unwrap_or("");
            let at = if d["until"] == "exists" {
                start.get(dep)
            } else {
                finish.get(dep)
            };
            s = s.max(at.copied().unwrap_or_default());
        }
        if matches!(
            n["kind"].as_str(),
            Some("lambda.function" | "sagemaker.model")
        ) {
            for role in ancestors(n, &by_id)
                .into_iter()
                .filter(|a| a["kind"] == "iam.role")
            {
                let created = start
                    .get(role["id"].as_str().unwrap_or(""))
                    .copied()
                    .unwrap_or_default();
                s = s.max(created + latency.scaled(Modelled::RolePropagation));
            }
        }
        start.insert(id, s);
        finish.insert(id, s + modelled_wait(n, latency));
    }
    finish.values().copied().max().unwrap_or_default()
}

fn ancestors<'a>(node: &'a Value, by_id: &HashMap<&str, &'a Value>) -> Vec<&'a Value> {
    let mut out = Vec::new();
    let mut stack = vec![node];
    let mut seen = std::collections::HashSet::new();
    while let Some(n) = stack.pop() {
        for d in n["deps"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(dep) = d["id"].as_str().and_then(|id| by_id.get(id))
                && seen.insert(dep["id"].as_str().unwrap_or(""))
            {
                out.push(*dep);
                stack.push(*dep);
            }
        }
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| format!("{} GiB", kb / 1024 / 1024))
        .unwrap_or_default();
    format!("{cpus} cores ({model}), {memory}")
}

fn commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Time from starting the process to its first API call (STS, the account check): the start-up
/// cost every command pays. The "endpoint" is a bare listener that notes when the first
/// connection arrives; the process is killed then.
async fn startup_to_first_call(provision: &Path, project: &Path) -> Result<Duration, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let start = Instant::now();
    let mut child = tokio::process::Command::new(provision)
        .args(["plan", "-q"])
        .current_dir(project)
        .env("AWS_ENDPOINT_URL", &url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let accepted = tokio::time::timeout(Duration::from_secs(30), listener.accept()).await;
    let elapsed = start.elapsed();
    let _ = child.start_kill();
    let _ = child.wait().await;
    match accepted {
        Ok(Ok(_)) => Ok(elapsed),
        _ => Err("provision made no API call within 30 s".into()),
    }
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Args::parse()).await {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let mut report = String::new();
    let mut line = |s: String| {
        println!("{s}");
        report.push_str(&s);
        report.push('\n');
    };
    line(format!(
        "Measured on {}, commit {}, latency scale {} (1 AWS minute = {:.1} s).",
        machine(),
        commit(),
        args.scale,
        60.0 * args.scale
    ));
    line(String::new());

    // The example stack: a full deploy, a no-op rerun, an app-code-only update.
    eprintln!("bench: full stack");
    let bench = Bench::new(&args, None).await?;
    let critical = bench.critical_path()?;
    bench.warm_up()?;
    let full = bench.up()?;
    let noop = bench.up()?;
    let app = bench.project.path().join("streamlit_app/README.txt");
    let mut text = std::fs::read_to_string(&app).unwrap_or_default();
    text.push_str("\nA change to the app's code.\n");
    std::fs::write(&app, text)?;
    let update = bench.up()?;
    let update_critical = bench
        .proxy
        .latency()
        .map(|l| l.scaled(Modelled::EcsDeployment))
        .unwrap_or_default();

    line("| scenario | wall time | critical path | ratio | API calls (mutating) |".into());
    line("|---|---|---|---|---|".into());
    let (total, mutating) = full.calls();
    line(format!(
        "| full `up` of `config/local.json` | {} | {} | {:.2} | {total} ({mutating}) |",
        secs(full.wall),
        secs(critical),
        full.wall.as_secs_f64() / critical.as_secs_f64()
    ));
    let (total, mutating) = noop.calls();
    line(format!(
        "| no-op rerun | {} | 0 | - | {total} ({mutating}) |",
        secs(noop.wall)
    ));
    let (total, mutating) = update.calls();
    line(format!(
        "| app-code-only update | {} | {} (ECS deployment) | {:.2} | {total} ({mutating}) |",
        secs(update.wall),
        secs(update_critical),
        update.wall.as_secs_f64() / update_critical.as_secs_f64().max(0.001)
    ));
    let mut startups = Vec::new();
    for _ in 0..7 {
        startups.push(startup_to_first_call(&bench.provision, bench.project.path()).await?);
    }
    startups.sort();
    line(format!(
        "| start-up to the first API call (median of 7) | {:.0} ms | - | - | - |",
        startups[startups.len() / 2].as_secs_f64() * 1000.0
    ));
    line(String::new());
    let resources = full.result["summary"]["created"].as_u64().unwrap_or(0);
    let (calls, changes) = noop.calls();
    let nodes = bench.graph()?["nodes"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    let account_checks = noop
        .operations()
        .get("sts:GetCallerIdentity")
        .copied()
        .unwrap_or(0);
    line(format!(
        "The full stack is {resources} resources, {nodes} graph nodes with the lookups and waits that make nothing. \
         The no-op rerun made {changes} mutating calls and {calls} reads: {} per graph node and {account_checks} account check. By operation: {}.",
        format_args!(
            "{:.2}",
            (calls - account_checks) as f64 / nodes.max(1) as f64
        ),
        noop.operations()
            .into_iter()
            .map(|(op, n)| format!("`{op}` x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let ops: Vec<String> = update
        .mutating_operations()
        .into_iter()
        .map(|(op, n)| format!("`{op}` x{n}"))
        .collect();
    line(format!(
        "The app-code-only update's mutating calls: {}.",
        ops.join(", ")
    ));
    drop(bench);

    // The cost as the config grows.
    line(String::new());
    line("| endpoints | wall time | critical path | ratio |".into());
    line("|---|---|---|---|".into());
    let full_ratio = full.wall.as_secs_f64() / critical.as_secs_f64();
    let startup = startups[startups.len() / 2];
    let reads_per_node = (calls - account_checks) as f64 / nodes.max(1) as f64;
    let update_ops = update.mutating_operations();
    let update_minimal = update_ops.get("ecs:RegisterTaskDefinition") == Some(&1)
        && update_ops.get("ecs:UpdateService") == Some(&1)
        && update_ops.keys().all(|op| {
            op.starts_with("ecr:")
                || op == "ecs:RegisterTaskDefinition"
                || op == "ecs:UpdateService"
        });
    let mut scaling = None;
    let mut first: Option<Duration> = None;
    for &n in &args.endpoints {
        eprintln!("bench: {n} endpoint(s)");
        let bench = Bench::new(&args, Some(n)).await?;
        let critical = bench.critical_path()?;
        bench.warm_up()?;
        let run = bench.up()?;
        line(format!(
            "| {n} | {} | {} | {:.2} |",
            secs(run.wall),
            secs(critical),
            run.wall.as_secs_f64() / critical.as_secs_f64()
        ));
        match first {
            None => first = Some(run.wall),
            Some(one) => {
                let ratio = run.wall.as_secs_f64() / one.as_secs_f64();
                scaling = Some((n, ratio));
                line(format!(
                    "\n{n} endpoints take {ratio:.2} x the time of {}.",
                    args.endpoints.first().copied().unwrap_or(1)
                ))
            }
        }
    }

    // Against the targets of the speed issue, from the figures above.
    let met = |ok: bool| if ok { "yes" } else { "**no**" };
    line(String::new());
    line("| target | measured | met |".into());
    line("|---|---|---|".into());
    line(format!(
        "| full `up` within 1.15 x the critical path | {full_ratio:.2} x | {} |",
        met(full_ratio <= 1.15)
    ));
    line(format!(
        "| no-op rerun: at most one read per resource, no mutating call | {reads_per_node:.2} per graph node, {changes} mutating | {} |",
        met(reads_per_node <= 1.0 && changes == 0)
    ));
    line(format!(
        "| no-op rerun under 2 s | {} | {} |",
        secs(noop.wall),
        met(noop.wall < Duration::from_secs(2))
    ));
    line(format!(
        "| app-code-only update: build, push, one `RegisterTaskDefinition`, one `UpdateService` | {} | {} |",
        update_ops
            .iter()
            .map(|(op, n)| format!("{op} x{n}"))
            .collect::<Vec<_>>()
            .join(", "),
        met(update_minimal)
    ));
    if let Some((n, ratio)) = scaling {
        line(format!(
            "| {n} endpoints within 1.2 x the time of {} | {ratio:.2} x | {} |",
            args.endpoints.first().copied().unwrap_or(1),
            met(ratio <= 1.2)
        ));
    }
    line(format!(
        "| start-up to the first API call under 50 ms | {:.0} ms | {} |",
        startup.as_secs_f64() * 1000.0,
        met(startup < Duration::from_millis(50))
    ));

    if let Some(path) = args.write {
        write_results(&path, &report)?;
        eprintln!("bench: results written to {}", path.display());
    }
    Ok(())
}

const BEGIN: &str = "<!-- bench results: begin -->";
const END: &str = "<!-- bench results: end -->";

/// Replaces the results section of the markdown file (between the markers).
fn write_results(path: &Path, report: &str) -> Result<(), Error> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{BEGIN}\n{report}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if a < b => format!("{}{section}{}", &old[..a], &old[b + END.len()..]),
        _ => format!("{old}\n{section}\n"),
    };
    std::fs::write(path, new)?;
    Ok(())
}
