//! The commands: each validates before it touches AWS, checks the account before it changes
//! anything, holds the state lock while it changes things, and reports one clear error.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use provision_aws::{Aws, Options};
use provision_core::config::{self, Checks, Config, ConfigError};
use provision_core::engine::{Engine, RunError, StateHandle};
use provision_core::plan::Action;
use provision_core::resource::{RunSettings, Stack, Until};
use provision_core::state::{LocalStore, LockInfo, State, StateError, StateStore};
use provision_s3::{S3Location, S3Store};
use provision_stack::{Clients, Kinds, Project};
use serde_json::json;
use tokio::sync::watch;

use crate::cli::{ApplyOptions, Cli, Command, Global};
use crate::printer::{self, Printer, Verbosity};

/// The one error a command ends with: what failed, and what to do about it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
pub struct Failure {
    pub message: String,
    #[help]
    pub hint: Option<String>,
    pub exit: u8,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            hint: None,
            exit: 1,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
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
            exit: 1,
        }
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        let hint = e.hint();
        Failure {
            message: e.to_string(),
            hint,
            exit: 1,
        }
    }
}

impl From<provision_core::resource::ResourceError> for Failure {
    fn from(e: provision_core::resource::ResourceError) -> Self {
        Failure {
            message: e.message,
            hint: e.hint,
            exit: 1,
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
                Failure { message, hint, exit: 1 }
            }
            RunError::Cancelled { .. } => Failure {
                message: "interrupted".into(),
                hint: Some("the state records everything done so far; run the same command again to continue".into()),
                exit: 130,
            },
            other => Failure::new(other.to_string()),
        }
    }
}

/// What every command starts from: a validated config and where its state lives.
struct Session {
    project: Project,
    state_at: StateAt,
    printer: Arc<Printer>,
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

fn session(
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
    fn stack(&self) -> Stack {
        Stack {
            name: self.project.stack_name(),
            account: self.project.config.account.clone(),
            region: self.project.config.region.clone(),
        }
    }

    /// Connects to AWS and refuses to go on in the wrong account.
    async fn connect(&self) -> Result<Aws, Failure> {
        let aws = Aws::load(&Options {
            region: self.project.config.region.clone(),
            profile: self.profile.clone(),
            endpoint_url: self.global_endpoint.clone(),
            wait_scale: wait_scale()?,
        })
        .await;
        aws.check_account(&self.project.config.account).await?;
        Ok(aws)
    }

    /// The state store; a remote one needs AWS, so it connects if `aws` is not given.
    async fn store(&self, aws: Option<&Aws>) -> Result<Arc<dyn StateStore>, Failure> {
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

    async fn load_state(&self, store: &Arc<dyn StateStore>) -> Result<State, Failure> {
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

    fn engine(
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
fn confirm(question: &str) -> Result<bool, Failure> {
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

/// Ctrl-C once: finish what is in flight, start nothing new. Twice: leave now (the state is
/// always consistent, so a rerun picks up).
fn cancel_on_interrupt(printer: Arc<Printer>) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            printer.warn("interrupted: finishing the calls in flight, starting nothing new (Ctrl-C again to stop at once)");
            let _ = tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    rx
}

pub async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let printer = Printer::stderr(verbosity(&cli.global));
    let p = &printer;
    let result = match cli.command {
        Command::Up { apply, builder } => up(&cli.global, p, &apply, builder).await,
        Command::Down { apply } => down(&cli.global, p, &apply).await,
        Command::Plan { json } => plan(&cli.global, p, json).await,
        Command::Outputs { json } => outputs(&cli.global, p, json).await,
        Command::Refresh { json } => refresh(&cli.global, p, json).await,
        Command::Status { json } => status(&cli.global, p, json).await,
        Command::Graph { json, dot } => graph(&cli.global, p, json, dot),
        Command::Unlock => unlock(&cli.global, p).await,
        Command::Completions { shell } => {
            completions(shell);
            Ok(ExitCode::SUCCESS)
        }
    };
    // The live view gives way to the result or the error.
    printer.finish();
    result
}

fn completions(shell: crate::cli::Shell) {
    use clap::CommandFactory;
    use clap_complete::Shell as S;
    let shell = match shell {
        crate::cli::Shell::Bash => S::Bash,
        crate::cli::Shell::Zsh => S::Zsh,
        crate::cli::Shell::Fish => S::Fish,
        crate::cli::Shell::Elvish => S::Elvish,
        crate::cli::Shell::Powershell => S::PowerShell,
    };
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "provision", &mut std::io::stdout());
}

/// Runs `body` with the state locked, and always releases the lock.
async fn locked<T, F>(
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

async fn up(
    global: &Global,
    printer: &Arc<Printer>,
    options: &ApplyOptions,
    builder: Option<String>,
) -> Result<ExitCode, Failure> {
    let session = session(global, printer, Checks::Full, builder)?;
    let aws = session.connect().await?;
    let clients = Clients::new(&aws);
    let kinds = Kinds::new(&clients, &session.project);
    let graph = provision_stack::graph(&session.project, &kinds)
        .map_err(|e| Failure::new(e.to_string()))?;
    let cancel = cancel_on_interrupt(session.printer.clone());
    let engine = session.engine(options, cancel)?;
    let store = session.store(Some(&aws)).await?;

    let (outputs, summary) = locked(&session, &store, "up", async {
        let state = session.load_state(&store).await?;
        let prepared = engine.plan(&graph, &state).await?;
        let plan = &prepared.plan;
        let needs_apply = plan.has_changes()
            || plan.steps.iter().any(|s| s.action == Action::Wait)
            || (state.outputs.is_empty() && !plan.steps.is_empty());
        if !needs_apply {
            session
                .printer
                .info(&format!("{} is up to date.", session.project.stack_name()));
            return Ok((state.outputs.clone(), None));
        }
        if plan.has_changes() && !options.yes {
            let mut text = Vec::new();
            let heading = format!(
                "Plan for {} in account {} ({}):",
                session.project.stack_name(),
                session.project.config.account,
                session.project.config.region
            );
            let _ = printer::render_plan(
                plan,
                &heading,
                printer::use_color(std::io::stderr().is_terminal()),
                false,
                &mut text,
            );
            session.printer.info(&String::from_utf8_lossy(&text));
            if !confirm("Apply these changes?")? {
                return Err(Failure::new("cancelled; nothing was changed"));
            }
        }
        let handle = StateHandle::new(store.clone(), state);
        let summary = engine
            .apply(Arc::new(graph), prepared, handle.clone(), &kinds.registry())
            .await?;
        Ok((handle.snapshot().await.outputs, Some(summary)))
    })
    .await?;

    if let Some(s) = &summary {
        session.printer.summary("Deployed", s);
    }
    if options.json {
        printer::print_json(&json!({
            "outputs": outputs,
            "summary": summary,
            "api_calls": aws.calls().snapshot(),
        }));
    } else {
        printer::print_outputs(&outputs, false);
    }
    Ok(ExitCode::SUCCESS)
}

async fn plan(global: &Global, printer: &Arc<Printer>, json: bool) -> Result<ExitCode, Failure> {
    let session = session(global, printer, Checks::Full, None)?;
    let aws = session.connect().await?;
    let clients = Clients::new(&aws);
    let kinds = Kinds::new(&clients, &session.project);
    let graph = provision_stack::graph(&session.project, &kinds)
        .map_err(|e| Failure::new(e.to_string()))?;
    let (_tx, rx) = watch::channel(false);
    let engine = session.engine(&ApplyOptions::default_with_concurrency(), rx)?;
    let store = session.store(Some(&aws)).await?;
    let state = session.load_state(&store).await?;
    let prepared = engine.plan(&graph, &state).await?;
    let changes = prepared.plan.has_changes();
    if json {
        printer::print_json(&json!({
            "changes": changes,
            "plan": prepared.plan,
            "api_calls": aws.calls().snapshot(),
        }));
    } else {
        let mut text = Vec::new();
        let heading = format!(
            "Plan for {} in account {} ({}):",
            session.project.stack_name(),
            session.project.config.account,
            session.project.config.region
        );
        let _ = printer::render_plan(
            &prepared.plan,
            &heading,
            printer::use_color(std::io::stdout().is_terminal()),
            global.verbose > 0,
            &mut text,
        );
        printer::print_text(&String::from_utf8_lossy(&text));
    }
    Ok(if changes {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

async fn down(
    global: &Global,
    printer: &Arc<Printer>,
    options: &ApplyOptions,
) -> Result<ExitCode, Failure> {
    let session = session(global, printer, Checks::ConfigOnly, None)?;
    let aws = session.connect().await?;
    let clients = Clients::new(&aws);
    let kinds = Kinds::new(&clients, &session.project);
    let cancel = cancel_on_interrupt(session.printer.clone());
    let engine = session.engine(options, cancel)?;
    let store = session.store(Some(&aws)).await?;

    let summary = locked(&session, &store, "down", async {
        let state = session.load_state(&store).await?;
        if state.is_empty() {
            session.printer.info(&format!(
                "{}: nothing to delete.",
                session.project.stack_name()
            ));
            if !state.outputs.is_empty() {
                let handle = StateHandle::new(store.clone(), state);
                handle.update(|s| s.outputs.clear()).await?;
            }
            return Ok(None);
        }
        if !options.yes {
            let plan = engine.destroy_plan(&state);
            let mut text = Vec::new();
            let heading = format!(
                "Delete {} from account {} ({}):",
                session.project.stack_name(),
                session.project.config.account,
                session.project.config.region
            );
            let _ = printer::render_plan(
                &plan,
                &heading,
                printer::use_color(std::io::stderr().is_terminal()),
                false,
                &mut text,
            );
            session.printer.info(&String::from_utf8_lossy(&text));
            if !confirm("Delete all of these?")? {
                return Err(Failure::new("cancelled; nothing was deleted"));
            }
        }
        let handle = StateHandle::new(store.clone(), state);
        Ok(Some(engine.destroy(handle, &kinds.registry()).await?))
    })
    .await?;
    if let Some(s) = &summary {
        session.printer.summary("Deleted", s);
    }
    if options.json {
        printer::print_json(&json!({ "summary": summary, "api_calls": aws.calls().snapshot() }));
    }
    Ok(ExitCode::SUCCESS)
}

async fn outputs(global: &Global, printer: &Arc<Printer>, json: bool) -> Result<ExitCode, Failure> {
    let session = session(global, printer, Checks::ConfigOnly, None)?;
    let store = session.store(None).await?;
    let state = session.load_state(&store).await?;
    if state.outputs.is_empty() {
        return Err(
            Failure::new(format!("no outputs recorded in {}", store.location()))
                .hint("run `provision up` first (with the same --config and --state)"),
        );
    }
    printer::print_outputs(&state.outputs, json);
    Ok(ExitCode::SUCCESS)
}

async fn unlock(global: &Global, printer: &Arc<Printer>) -> Result<ExitCode, Failure> {
    let session = session(global, printer, Checks::ConfigOnly, None)?;
    let store = session.store(None).await?;
    match store.force_unlock().await? {
        Some(holder) => session.printer.info(&format!(
            "Removed the lock of {holder} on {}.",
            store.location()
        )),
        None => session
            .printer
            .info(&format!("{} is not locked.", store.location())),
    }
    Ok(ExitCode::SUCCESS)
}

impl ApplyOptions {
    fn default_with_concurrency() -> Self {
        ApplyOptions {
            concurrency: 32,
            ..ApplyOptions::default()
        }
    }
}

/// Reads every recorded resource (no lock: nothing is written).
async fn observe(
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
    let observed = engine.observe(&state, &kinds.registry()).await;
    Ok((session, observed, aws))
}

async fn refresh(global: &Global, printer: &Arc<Printer>, json: bool) -> Result<ExitCode, Failure> {
    use provision_core::engine::Drift;
    let (session, observed, aws) = observe(global, printer).await?;
    let mut errors = Vec::new();
    let mut drifted = Vec::new();
    for o in &observed {
        if let Err(e) = &o.live {
            errors.push(format!("{} ({}): {}", o.noun, o.id, e.message));
        }
        if let Some(d) = o.drift() {
            drifted.push((o, d));
        }
    }
    if json {
        let items: Vec<serde_json::Value> = drifted
            .iter()
            .map(|(o, d)| json!({"id": o.id, "noun": o.noun, "physical_id": o.record.physical_id, "drift": d}))
            .collect();
        printer::print_json(
            &json!({"drift": items, "errors": errors, "api_calls": aws.calls().snapshot()}),
        );
    } else {
        let mut text = String::new();
        if drifted.is_empty() {
            text.push_str(&format!(
                "No drift: all {} resources of {} are as provision left them.\n",
                observed.len(),
                session.project.stack_name()
            ));
        } else {
            text.push_str(&format!(
                "Drift in {} (changed outside provision):\n",
                session.project.stack_name()
            ));
            for (o, d) in &drifted {
                let id = o.record.physical_id.as_deref().unwrap_or("");
                match d {
                    Drift::Deleted => {
                        text.push_str(&format!("  - {} {} {id}: deleted\n", o.noun, o.id))
                    }
                    Drift::Changed { changes } => {
                        text.push_str(&format!("  ~ {} {} {id}:\n", o.noun, o.id));
                        for c in changes {
                            text.push_str(&format!(
                                "      {}: {} -> {}\n",
                                c.setting,
                                c.old.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                                c.new.as_ref().map(|v| v.to_string()).unwrap_or_default()
                            ));
                        }
                    }
                }
            }
            text.push_str("  `provision up` puts them back; `provision plan` shows how.\n");
        }
        printer::print_text(&text);
    }
    if !errors.is_empty() {
        return Err(Failure::new(format!(
            "could not read every resource:\n  - {}",
            errors.join("\n  - ")
        )));
    }
    Ok(if drifted.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

async fn status(global: &Global, printer: &Arc<Printer>, json: bool) -> Result<ExitCode, Failure> {
    let (session, observed, _aws) = observe(global, printer).await?;
    let rows: Vec<(String, String, String, String)> = observed
        .iter()
        .map(|o| {
            let physical = o.record.physical_id.clone().unwrap_or_default();
            let state = match &o.live {
                Err(e) => format!("unreadable: {}", e.message),
                Ok(None) => "missing (deleted outside provision?)".to_string(),
                Ok(Some(l)) if !l.ready => l.status.clone().unwrap_or_else(|| "not ready".into()),
                Ok(Some(l)) => l.status.clone().unwrap_or_else(|| "ok".into()),
            };
            (o.id.to_string(), o.noun.clone(), physical, state)
        })
        .collect();
    if json {
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|(id, noun, physical, state)| json!({"id": id, "noun": noun, "physical_id": physical, "status": state}))
            .collect();
        printer::print_json(&json!({"stack": session.project.stack_name(), "resources": items}));
    } else if rows.is_empty() {
        printer::print_text(&format!(
            "{}: nothing deployed.\n",
            session.project.stack_name()
        ));
    } else {
        let w_id = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w_noun = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        let mut text = String::new();
        for (id, noun, physical, state) in &rows {
            text.push_str(&format!(
                "{id:<w_id$}  {noun:<w_noun$}  {state}  {physical}\n"
            ));
        }
        printer::print_text(&text);
    }
    Ok(ExitCode::SUCCESS)
}

/// The graph needs clients to build its kinds, but makes no call: a placeholder
/// configuration is enough.
fn graph(
    global: &Global,
    printer: &Arc<Printer>,
    json: bool,
    dot: bool,
) -> Result<ExitCode, Failure> {
    let session = session(global, printer, Checks::Full, None)?;
    let aws = Aws::from_sdk(
        aws_types::SdkConfig::builder()
            .region(aws_types::region::Region::new(
                session.project.config.region.clone(),
            ))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build(),
    );
    let clients = Clients::new(&aws);
    let kinds = Kinds::new(&clients, &session.project);
    let graph = provision_stack::graph(&session.project, &kinds)
        .map_err(|e| Failure::new(e.to_string()))?;
    let order = graph.order().map_err(|e| Failure::new(e.to_string()))?;
    let nodes: Vec<&provision_core::resource::Node> =
        order.iter().filter_map(|id| graph.get(id)).collect();
    if json {
        let items: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| {
                json!({
                    "id": n.id,
                    "kind": n.kind.name(),
                    "noun": n.kind.noun(),
                    "name": n.name,
                    "deps": n.deps.iter().map(|d| json!({
                        "id": d.id,
                        "until": match d.until { Until::Ready => "ready", Until::Exists => "exists" },
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        printer::print_json(&json!({ "stack": session.project.stack_name(), "nodes": items }));
    } else if dot {
        let mut text = format!(
            "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, fontname=\"sans-serif\"];\n",
            session.project.stack_name()
        );
        for n in &nodes {
            text.push_str(&format!(
                "  \"{}\" [label=\"{}\\n{}\"];\n",
                n.id,
                n.id,
                n.kind.noun()
            ));
            for d in &n.deps {
                let style = if d.until == Until::Exists {
                    " [style=dashed]"
                } else {
                    ""
                };
                text.push_str(&format!("  \"{}\" -> \"{}\"{style};\n", d.id, n.id));
            }
        }
        text.push_str("}\n");
        printer::print_text(&text);
    } else {
        let mut text = String::new();
        for n in &nodes {
            let deps: Vec<String> = n
                .deps
                .iter()
                .map(|d| {
                    if d.until == Until::Exists {
                        format!("{} (exists)", d.id)
                    } else {
                        d.id.to_string()
                    }
                })
                .collect();
            let after = if deps.is_empty() {
                String::new()
            } else {
                format!("  after {}", deps.join(", "))
            };
            text.push_str(&format!("{}  {}{after}\n", n.id, n.kind.noun()));
        }
        printer::print_text(&text);
    }
    Ok(ExitCode::SUCCESS)
}
