//! `provision-proxy`: the test proxy as a process, for scripts (the benchmark, manual runs).
//! Prints `http://127.0.0.1:PORT` on stdout once it listens, serves until killed, and on
//! SIGINT/SIGTERM prints its stats as JSON on stderr. Control it over HTTP (`/__proxy/...`,
//! see the library docs).

// One line of output (the URL, or the model with --print-model) and the final stats.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use provision_testkit::proxy::{
    DropReply, FaultFilter, Faults, Latency, Modelled, Proxy, ProxyConfig, Strict,
};

#[derive(Parser, Debug)]
#[command(
    name = "provision-proxy",
    about = "Fault-injecting, latency-modelling proxy in front of an AWS emulator"
)]
struct Args {
    /// The emulator to forward to (http://127.0.0.1:PORT).
    #[arg(long, required_unless_present = "print_model")]
    upstream: Option<String>,
    /// The loopback port to listen on (0: any free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seeds the fault decisions (same seed and request order, same faults).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Share of calls answered with the service's throttling error.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    throttle: f64,
    /// Share of calls answered with the service's 500 internal error.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    server_error: f64,
    /// Share of successful mutating calls whose reply is dropped after the emulator did them.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    drop_reply: f64,
    /// How a dropped reply looks: reset (closed connection), server-error, either.
    #[arg(long, default_value = "either", value_parser = drop_style)]
    drop_reply_as: DropReply,
    /// Share of calls delayed (uniformly up to --delay-max-ms).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    delay: f64,
    #[arg(long, default_value_t = 200)]
    delay_max_ms: u64,
    /// Faults only for calls that change something.
    #[arg(long)]
    mutating_only: bool,
    /// Faults only for this service (SDK or signing name; repeatable).
    #[arg(long = "service")]
    services: Vec<String>,
    /// Faults only for this operation (`CreateVpc` or `EC2:CreateVpc`; repeatable).
    #[arg(long = "operation")]
    operations: Vec<String>,
    /// Turns the latency model on, with every AWS time multiplied by this (0.05: 1 min → 3 s).
    #[arg(long)]
    latency_scale: Option<f64>,
    /// Overrides one modelled AWS time in seconds, before scaling: KIND=SECONDS (repeatable).
    #[arg(long = "latency", value_parser = latency_override)]
    latency_overrides: Vec<(Modelled, Duration)>,
    /// Certificates issue after their time whether or not their validation records were seen.
    #[arg(long)]
    certificates_without_records: bool,
    /// Strict mode: AWS's input rules and transient errors. `--strict` alone is `all`; `rules`
    /// or `injections` turns on one part.
    #[arg(long, num_args = 0..=1, default_missing_value = "all", value_parser = strict_mode)]
    strict: Option<Strict>,
    /// Prints the latency model's times as JSON (for a critical path) and exits.
    #[arg(long)]
    print_model: bool,
}

fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?} is not a share between 0 and 1")),
    }
}

fn drop_style(s: &str) -> Result<DropReply, String> {
    match s {
        "reset" => Ok(DropReply::Reset),
        "server-error" => Ok(DropReply::ServerError),
        "either" => Ok(DropReply::Either),
        _ => Err(format!("{s:?} is not reset, server-error or either")),
    }
}

fn strict_mode(s: &str) -> Result<Strict, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn latency_override(s: &str) -> Result<(Modelled, Duration), String> {
    let (kind, secs) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KIND=SECONDS"))?;
    let kind: Modelled = kind.parse().map_err(|e| format!("{e}"))?;
    let secs: f64 = secs
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("{secs:?} is not a number of seconds"))?;
    Ok((kind, Duration::from_secs_f64(secs)))
}

fn latency(args: &Args) -> Option<Latency> {
    let scale = match (args.latency_scale, args.print_model) {
        (Some(scale), _) => scale,
        (None, true) => 1.0,
        (None, false) => return None,
    };
    let mut latency = Latency::new(scale);
    for (kind, time) in &args.latency_overrides {
        latency = latency.with(*kind, *time);
    }
    latency.certificate_needs_validation_record = !args.certificates_without_records;
    Some(latency)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let latency = latency(&args);
    if args.print_model {
        let table = latency.map(|l| l.table()).unwrap_or_default();
        match serde_json::to_string_pretty(&table) {
            Ok(json) => {
                println!("{json}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("provision-proxy: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let Some(upstream) = args.upstream.clone() else {
        eprintln!("provision-proxy: --upstream is required");
        return ExitCode::FAILURE;
    };
    let config = ProxyConfig {
        upstream,
        listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), args.port),
        seed: args.seed,
        faults: Faults {
            throttle: args.throttle,
            server_error: args.server_error,
            drop_reply: args.drop_reply,
            delay: args.delay,
            delay_max: Duration::from_millis(args.delay_max_ms),
            drop_reply_as: args.drop_reply_as,
            only: FaultFilter {
                mutating_only: args.mutating_only,
                services: args.services.clone(),
                operations: args.operations.clone(),
            },
        },
        latency,
        strict: args.strict,
    };
    let proxy = match Proxy::start(config).await {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("provision-proxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", proxy.url());
    wait_for_signal().await;
    match serde_json::to_string(&proxy.stats()) {
        Ok(stats) => eprintln!("{stats}"),
        Err(e) => eprintln!("provision-proxy: {e}"),
    }
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
