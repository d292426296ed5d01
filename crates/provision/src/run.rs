//! The commands: each validates before it touches AWS, checks the account before it changes
//! anything, holds the state lock while it changes things, and reports one clear error.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use provision_aws::{Aws, Options};
use provision_config::{self as config, Checks, Config, ConfigError};
use provision_core::engine::{Engine, RunError};

use provision_core::resource::{RunSettings, Stack};
use provision_core::state::{LocalStore, LockInfo, State, StateError, StateStore};
use provision_s3::{S3Location, S3Store};
use provision_stack::{Clients, Kinds, Project};

use tokio::sync::{Notify, watch};

use crate::cli::{ApplyOptions, Cli, Command, Global};
use crate::commands;
use crate::printer::{Printer, StdoutError, Verbosity};

/// The one error a command ends with: what failed, and what to do about it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
pub struct Failure {
    pub message: String,
    #[help]
    pub hint: Option<String>,
    /// How the run ended; `main` turns it into the exit code.
    pub ending: Ending,
}

/// How a failed run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Something went wrong.
    Error,
    /// Ctrl-C: once (calls in flight finished) or twice (stopped at once).
    Interrupted,
    /// The reader of stdout went away (`provision graph --dot | head -1`).
    StdoutClosed,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            hint: None,
            ending: Ending::Error,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<StdoutError> for Failure {
    fn from(e: StdoutError) -> Self {
        if e.is_closed_pipe() {
            Failure {
                message: "stdout was closed before the result was written".into(),
                hint: None,
                ending: Ending::StdoutClosed,
            }
        } else {
            Failure::new(format!("could not write the result to stdout: {}", e.0))
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        let hint = match &e {
            ConfigError::Read { .. } => Some("pass the config with --config (the default is config/default.json in the current folder)".to_string()),
            ConfigError::Syntax { .. } => Some("fix the JSON at that line; nothing was changed in AWS".to_string()),
            ConfigError::Invalid { .. } => Some("fix these keys and run again; nothing was changed in AWS".to_string()),
        };
        Failure {
            message: e.to_string(),
            hint,
            ending: Ending::Error,
        }
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        let hint = e.hint();
        Failure {
            message: e.to_string(),
            hint,
            ending: Ending::Error,
        }
    }
}

impl From<provision_core::resource::ResourceError> for Failure {
    fn from(e: provision_core::resource::ResourceError) -> Self {
        Failure {
            message: e.message,
            hint: e.hint,
            ending: Ending::Error,
        }
    }
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Self {
        match e {
            RunError::State(s) => s.into(),
            RunError::Failed { failures, .. } => {
                let mut hints: Vec<String> = Vec::new();
                for f in &failures {
                    if let Some(h) = &f.error.hint
                        && !hints.contains(h)
                    {
                        hints.push(h.clone());
                    }
                }
                let message = RunError::Failed { failures, summary: Default::default() }.to_string();
                let hint = if hints.is_empty() {
                    Some("fix the cause and run again: the state records everything that was done, so a rerun continues where this one stopped".to_string())
                } else {
                    Some(hints.join("\n"))
                };
                Failure { message, hint, ending: Ending::Error }
            }
            RunError::Cancelled { .. } => Failure {
                message: "interrupted".into(),
                hint: Some("the state records everything done so far; run the same command again to continue".into()),
                ending: Ending::Interrupted,
            },
            other => Failure::new(other.to_string()),
        }
    }
}

/// What every command starts from: a validated config and where its state lives.
pub(crate) struct Session {
    pub(crate) project: Project,
    state_at: StateAt,
    pub(crate) printer: Arc<Printer>,
    global_endpoint: Option<String>,
    profile: Option<String>,
}

fn verbosity(g: &Global) -> Verbosity {
    if g.quiet {
        Verbosity::Quiet
    } else if g.verbose > 0 {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    }
}

fn wait_scale() -> Result<f64, Failure> {
    match std::env::var("PROVISION_WAIT_SCALE") {
        Err(_) => Ok(1.0),
        Ok(s) => match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
            _ => Err(Failure::new(format!(
                "PROVISION_WAIT_SCALE is `{s}`, not a positive number"
            ))
            .hint("unset it, or set it to a factor such as 0.05")),
        },
    }
}

pub(crate) fn session(
    global: &Global,
    printer: &Arc<Printer>,
    checks: Checks,
    builder: Option<String>,
) -> Result<Session, Failure> {
    let root = global.root.clone().unwrap_or_else(|| PathBuf::from("."));
    if !root.is_dir() {
        return Err(Failure::new(format!(
            "--root {} is not a folder",
            root.display()
        )));
    }
    let config_path = global
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("config/default.json"));
    let config: Config = config::load_with(&config_path, &root, checks)?;
    // A project folder: the run's default debug log may be written here.
    crate::debug_log::opened_for_project();
    let state_at = match global.state.as_deref() {
        Some(s) if s.starts_with("s3://") => {
            StateAt::S3(S3Location::parse(s).map_err(|e| Failure::new(format!("--state: {e}")))?)
        }
        Some(path) => StateAt::Local(PathBuf::from(path)),
        None => StateAt::Local(default_state_path(&config)),
    };
    Ok(Session {
        project: Project {
            config,
            root,
            builder,
        },
        state_at,
        printer: printer.clone(),
        global_endpoint: global.endpoint_url.clone(),
        profile: global.profile.clone(),
    })
}

/// Where the state lives.
enum StateAt {
    Local(PathBuf),
    S3(S3Location),
}

/// `.provision/<environment>.state.json`, in the current folder.
pub fn default_state_path(config: &Config) -> PathBuf {
    Path::new(".provision").join(format!("{}.state.json", config.environment))
}

impl Session {
    pub(crate) fn stack(&self) -> Stack {
        Stack {
            name: self.project.stack_name(),
            account: self.project.config.account.clone(),
            region: self.project.config.region.clone(),
        }
    }

    /// Connects to AWS and refuses to go on in the wrong account.
    pub(crate) async fn connect(&self) -> Result<Aws, Failure> {
        let aws = self.aws().await?;
        aws.check_account(&self.project.config.account).await?;
        Ok(aws)
    }

    /// The AWS configuration, without checking the account (`check` reports that itself).
    pub(crate) async fn aws(&self) -> Result<Aws, Failure> {
        Ok(Aws::load(&Options {
            region: self.project.config.region.clone(),
            profile: self.profile.clone(),
            endpoint_url: self.global_endpoint.clone(),
            wait_scale: wait_scale()?,
        })
        .await)
    }

    /// The state store; a remote one needs AWS, so it connects if `aws` is not given.
    pub(crate) async fn store(&self, aws: Option<&Aws>) -> Result<Arc<dyn StateStore>, Failure> {
        match &self.state_at {
            StateAt::Local(path) => Ok(Arc::new(LocalStore::new(path))),
            StateAt::S3(at) => {
                let aws = match aws {
                    Some(a) => a.clone(),
                    None => self.connect().await?,
                };
                let s3 = aws_sdk_s3::Client::from_conf(
                    aws_sdk_s3::config::Builder::from(aws.sdk())
                        .interceptor(aws.calls().clone())
                        .retry_partition(provision_aws::retry_partition("s3-state"))
                        .force_path_style(aws.endpoint_overridden())
                        .build(),
                );
                Ok(Arc::new(S3Store::new(s3, at.clone())))
            }
        }
    }

    pub(crate) async fn load_state(&self, store: &Arc<dyn StateStore>) -> Result<State, Failure> {
        let stack = self.stack();
        match store.load().await? {
            Some(state) => {
                state.check_matches(
                    &stack.name,
                    &stack.account,
                    &stack.region,
                    &store.location(),
                )?;
                Ok(state)
            }
            None => Ok(State::new(&stack.name, &stack.account, &stack.region)),
        }
    }

    pub(crate) fn engine(
        &self,
        options: &ApplyOptions,
        cancel: watch::Receiver<bool>,
    ) -> Result<Engine, Failure> {
        let scale = wait_scale()?;
        let settings = RunSettings {
            wait_scale: scale,
            timeouts: options.timeouts.iter().cloned().collect(),
            timeout_scale: scale,
        };
        Ok(
            Engine::new(self.stack(), self.printer.clone(), settings, cancel)
                .with_concurrency(options.concurrency),
        )
    }
}

/// Asks before changing anything; refuses without a terminal.
pub(crate) fn confirm(question: &str) -> Result<bool, Failure> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Failure::new(
            "refusing to change AWS without confirmation: this is not an interactive terminal",
        )
        .hint("pass --yes to apply without asking; `provision plan` shows what would change"));
    }
    #[allow(clippy::print_stderr)]
    {
        eprint!("{question} [y/N] ");
    }
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(format!("could not read the answer: {e}")))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Ctrl-C a second time: [`run`] stops the command at once.
static STOP_NOW: Notify = Notify::const_new();

/// Ctrl-C once: finish what is in flight, start nothing new. Twice: leave now (the state is
/// always consistent, so a rerun picks up).
pub(crate) fn cancel_on_interrupt(printer: Arc<Printer>) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!(target: crate::debug_log::RUN_TARGET, "interrupted (Ctrl-C): finishing the calls in flight");
            printer.warn("interrupted: finishing the calls in flight, starting nothing new (Ctrl-C again to stop at once)");
            let _ = tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                STOP_NOW.notify_one();
            }
        }
    });
    rx
}

/// Runs the command; a second Ctrl-C drops it where it is.
pub async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let printer = Printer::stderr(verbosity(&cli.global));
    let result = tokio::select! {
        result = command(cli, &printer) => result,
        () = STOP_NOW.notified() => Err(Failure {
            message: "stopped at once (Ctrl-C twice)".into(),
            hint: Some("calls in flight were cut off; run the same command again: it finds what they did (by id, name or tags) and continues".into()),
            ending: Ending::Interrupted,
        }),
    };
    // The live view gives way to the result or the error.
    printer.finish();
    result
}

async fn command(cli: Cli, p: &Arc<Printer>) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Up {
            apply,
            builder,
            skip_checks,
        } => commands::up::up(&cli.global, p, &apply, builder, skip_checks).await,
        Command::Down { apply } => commands::down::down(&cli.global, p, &apply).await,
        Command::Plan {
            json,
            builder,
            skip_checks,
        } => commands::plan::plan(&cli.global, p, json, builder, skip_checks).await,
        Command::Check { json, builder } => {
            commands::check::check(&cli.global, p, json, builder).await
        }
        Command::Outputs { json } => commands::outputs::outputs(&cli.global, p, json).await,
        Command::Refresh { json } => commands::refresh::refresh(&cli.global, p, json).await,
        Command::Status { json } => commands::status::status(&cli.global, p, json).await,
        Command::Graph { json, dot } => commands::graph::graph(&cli.global, p, json, dot),
        Command::Unlock => commands::unlock::unlock(&cli.global, p).await,
        Command::Completions { shell } => {
            commands::completions::completions(shell)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `body` with the state locked, and always releases the lock.
pub(crate) async fn locked<T, F>(
    session: &Session,
    store: &Arc<dyn StateStore>,
    command: &str,
    body: F,
) -> Result<T, Failure>
where
    F: std::future::Future<Output = Result<T, Failure>>,
{
    store.lock(&LockInfo::for_this_process(command)).await?;
    let result = body.await;
    if let Err(e) = store.unlock().await {
        session
            .printer
            .warn(&format!("could not release the state lock: {e}"));
    }
    result
}

impl ApplyOptions {
    pub(crate) fn default_with_concurrency() -> Self {
        ApplyOptions {
            concurrency: 32,
            ..ApplyOptions::default()
        }
    }
}

/// Reads every recorded resource (no lock: nothing is written).
pub(crate) async fn observe(
    global: &Global,
    printer: &Arc<Printer>,
) -> Result<(Session, Vec<provision_core::engine::Observation>, Aws), Failure> {
    let session = session(global, printer, Checks::ConfigOnly, None)?;
    let aws = session.connect().await?;
    let clients = Clients::new(&aws);
    let kinds = Kinds::new(&clients, &session.project);
    let store = session.store(Some(&aws)).await?;
    let state = session.load_state(&store).await?;
    let (_tx, rx) = watch::channel(false);
    let engine = session.engine(&ApplyOptions::default_with_concurrency(), rx)?;
    let registry = kinds.registry().map_err(|e| Failure::new(e.to_string()))?;
    let observed = engine.observe(&state, &registry).await;
    Ok((session, observed, aws))
}
