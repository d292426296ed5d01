//! The command line. The contract (`up`, `down`, `plan`, `outputs` and their flags) is fixed:
//! scripts depend on it. New commands and flags extend it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "provision",
    version,
    about = "Deploys the Streamlit ML app stack to AWS by calling the AWS APIs directly",
    long_about = "Deploys the Streamlit ML app stack (VPC, container images, Lambda functions, SageMaker endpoints, HTTPS load balancer, Fargate service) to AWS by calling the AWS APIs directly, and records every resource in a local state file. Reruns are idempotent; `down` deletes everything the state records."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The config file (the CDK stack's cdk.json context, or a whole cdk.json).
    /// [default: config/default.json]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// The state file [default: .provision/<environment>.state.json]
    #[arg(long, global = true, value_name = "PATH")]
    pub state: Option<String>,

    /// The folder holding streamlit_app/, functions/ and endpoints/ [default: .]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// The AWS profile to use (else the standard credential chain).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,

    /// Send every AWS call to this endpoint (LocalStack, moto). AWS_ENDPOINT_URL works too.
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// More detail on stderr: -v shows provision's debug log (every AWS call with its request
    /// id, every decision) and the SDK's warnings; -vv adds the SDK's own debug log. RUST_LOG
    /// overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors and results.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Write the run's full debug log to FILE: provision's debug events (every AWS call with
    /// its request id) and the SDK's, with timestamps. Without it, commands that read the
    /// config keep the log of their last run in .provision/logs/<command>.log.
    #[arg(long, global = true, value_name = "FILE", env = "PROVISION_LOG")]
    pub log: Option<PathBuf>,
}

#[derive(Debug, Args, Default)]
pub struct ApplyOptions {
    /// Apply without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Allow more (or less) time for a kind of wait or retry, e.g. `--timeout certificate=90m`
    /// (repeatable; s, m or h).
    #[arg(long = "timeout", value_name = "KIND=DURATION", value_parser = parse_timeout, long_help = timeout_help())]
    pub timeouts: Vec<(String, Duration)>,

    /// How many resources to work on at once.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub concurrency: usize,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update everything, in dependency order, and print the outputs.
    Up {
        #[command(flatten)]
        apply: ApplyOptions,
        /// The image builder: docker, podman or buildah [default: detected]
        #[arg(long, env = "PROVISION_BUILDER", value_name = "NAME")]
        builder: Option<String>,
        /// Do not run the checks that stop `up` before anything is created (the AWS profile,
        /// the hosted zone, the app's DNS records, model data in S3, HuggingFace images, the
        /// image builder). The plan still refuses names taken by other stacks.
        #[arg(long)]
        skip_checks: bool,
    },
    /// Delete everything the state records, dependents first; leaves an empty state.
    Down {
        #[command(flatten)]
        apply: ApplyOptions,
    },
    /// Show what `up` would do, without changing anything. Exits 0 when there is nothing
    /// to do, 2 when there are changes, 1 on error.
    Plan {
        /// Print the plan as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// The image builder `up` would use, checked when an image needs building [default: detected]
        #[arg(long, env = "PROVISION_BUILDER", value_name = "NAME")]
        builder: Option<String>,
        /// Do not run the checks `up` runs first (see `up --help`).
        #[arg(long)]
        skip_checks: bool,
    },
    /// Check, without changing anything, what would make `up` fail, and report every problem
    /// at once: credentials and account, the hosted zone and its DNS delegation, the image
    /// builder, image folders and images in ECR, model data in S3, HuggingFace images, the
    /// quotas a first deploy hits, and names already taken by resources this stack does not
    /// own. Exits 0 when all is well, 2 with warnings only (or checks that could not be made),
    /// 1 when `up` would fail. `-v` also lists the checks that passed. The delegation is asked
    /// of the first `nameserver` of /etc/resolv.conf, or of PROVISION_DNS_SERVER=IP[:PORT].
    Check {
        /// Print the findings as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// The image builder to check: docker, podman or buildah [default: detected]
        #[arg(long, env = "PROVISION_BUILDER", value_name = "NAME")]
        builder: Option<String>,
    },
    /// Print the recorded outputs (api_url and the names the app receives).
    Outputs {
        #[arg(long)]
        json: bool,
    },
    /// Report what changed in AWS behind provision's back (deleted resources, changed
    /// settings), without changing anything. Exits 0 without drift, 2 with drift, 1 on error.
    Refresh {
        #[arg(long)]
        json: bool,
    },
    /// Show each recorded resource's live state (endpoint status, service tasks running,
    /// certificate status), read from AWS.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Print the resource graph: every resource the config asks for and what it waits for.
    /// No AWS call.
    Graph {
        /// As JSON (nodes with kinds, names and dependencies).
        #[arg(long, conflicts_with = "dot")]
        json: bool,
        /// As Graphviz DOT (`provision graph --dot | dot -Tsvg > graph.svg`).
        #[arg(long)]
        dot: bool,
    },
    /// Remove a lock left by a run that can no longer release it (a crashed machine).
    Unlock,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// `--timeout`'s long help: every key, its default and what it bounds.
fn timeout_help() -> String {
    let mut s = String::from(
        "Allow more (or less) time for a kind of wait or retry, e.g. `--timeout certificate=90m` (repeatable; s, m or h; a bare number is minutes). Keys and defaults:\n",
    );
    for t in provision_aws::timeouts::ALL {
        s.push_str(&format!(
            "\n  {:<26} {:>4}  {}",
            t.key,
            provision_core::wait::human(t.default),
            t.about
        ));
    }
    s
}

/// `certificate=90m`, `nat-gateway=300s`, `endpoint=1h`, `service=10` (minutes). The key must be
/// one of `provision_aws::timeouts::ALL`: a typo would otherwise be accepted and ignored.
pub fn parse_timeout(s: &str) -> Result<(String, Duration), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KIND=DURATION (for example certificate=90m)"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("`{s}` names no kind of wait"));
    }
    if provision_aws::timeouts::find(key).is_none() {
        let keys: Vec<&str> = provision_aws::timeouts::ALL.iter().map(|t| t.key).collect();
        let suggestion = provision_core::suggest::did_you_mean(key, &keys)
            .map(|k| format!("did you mean `{k}`? "))
            .unwrap_or_default();
        return Err(format!(
            "`{key}` is not a kind of wait; {suggestion}`provision up --help` lists them: {}",
            keys.join(", ")
        ));
    }
    Ok((key.to_string(), parse_duration(value.trim())?))
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "m"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (for example 90s, 30m, 2h)"))?;
    let secs = match unit {
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use s, m or h)")),
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("`{s}` must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}
