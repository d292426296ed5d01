//! `provision check`: every read-only check at once (credentials, hosted zone and delegation,
//! builder, images, model data, quotas, names taken), and the fast ones that `up` and `plan`
//! run alongside their plan, so a problem stops them before their first mutating call.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use provision_aws::Aws;
use provision_check::{Area, Finding, Severity};
use provision_config::Checks;
use provision_core::engine::{Engine, Prepared, RunError};
use provision_core::graph::Graph;
use provision_core::plan::{Action, Plan};
use provision_core::state::State;
use provision_stack::{Clients, Kinds};
use serde_json::json;
use tokio::sync::watch;

use crate::cli::{ApplyOptions, Global};
use crate::printer::{self, Printer};
use crate::run::{Failure, Session, session};

pub(crate) async fn check(
    global: &Global,
    printer: &Arc<Printer>,
    json: bool,
    builder: Option<String>,
) -> Result<ExitCode, Failure> {
    // The config alone: missing folders are findings here, not a refusal to start.
    let session = session(global, printer, Checks::ConfigOnly, builder.clone())?;
    let config = &session.project.config;
    let root = session.project.root.clone();
    let mut findings = provision_check::images::folders(&config_path(global), &root);
    let builds = provision_check::images::builds(config);
    // Until the plan says which images changed, every image counts as one to build.
    let mut to_build = builds.clone();

    let aws = session.aws().await?;
    let profile = provision_check::credentials::profile(global.profile.as_deref()).await;
    let identity = match profile {
        Some(f) => {
            findings.push(f);
            None
        }
        None => {
            let (found, identity) = provision_check::credentials::identity(
                &aws,
                &config.account,
                global.profile.as_deref(),
            )
            .await;
            findings.extend(found);
            identity
        }
    };
    let mut zone = None;
    let mut creates: Option<BTreeSet<String>> = None;
    let in_account = identity
        .as_ref()
        .is_some_and(|i| i.account == config.account);
    let clients = provision_check::Clients::new(&aws);
    if in_account {
        let state = match load_state(&session, &aws).await {
            Ok(s) => s,
            Err(e) => {
                findings.push(
                    Finding::problem(Area::Resources, "--state", e.message.clone())
                        .hint(e.hint.unwrap_or_default()),
                );
                let stack = session.stack();
                State::new(&stack.name, &stack.account, &stack.region)
            }
        };
        let kinds = Kinds::new(&Clients::new(&aws), &session.project);
        let graph = provision_stack::graph(&session.project, &kinds)
            .map_err(|e| Failure::new(e.to_string()))?;
        let (_tx, rx) = watch::channel(false);
        let engine = session.engine(&ApplyOptions::default_with_concurrency(), rx)?;
        let ((fast, found_zone), plan) = tokio::join!(
            provision_check::fast(&clients, config, &state),
            engine.plan(&graph, &state)
        );
        findings.extend(fast);
        zone = found_zone;
        match plan {
            Ok(prepared) => {
                to_build = needing_build(&builds, &prepared.plan);
                creates = Some(
                    prepared
                        .plan
                        .steps
                        .iter()
                        .filter(|s| s.action == Action::Create)
                        .map(|s| s.id.to_string())
                        .collect(),
                );
            }
            Err(RunError::Failed { failures, .. }) => {
                findings.extend(provision_check::names::from_plan(config, &failures));
            }
            Err(other) => {
                let f: Failure = other.into();
                findings.push(Finding::problem(Area::Resources, "plan", f.message));
            }
        }
    } else {
        findings.push(Finding::not_checked(
            Area::Credentials,
            "AWS",
            "without working credentials for the config's account, nothing in AWS was checked (hosted zone, images in ECR, model data, HuggingFace images, quotas, names taken)",
        ));
    }

    // The slow checks: DNS, quotas and the builder's processes, side by side.
    let delegation = async {
        match &zone {
            Some(z) => Some(provision_check::zone::delegation(z).await),
            None => None,
        }
    };
    let quotas = async {
        if !in_account {
            return Vec::new();
        }
        let qc = provision_check::quotas::Clients {
            quotas: &clients.quotas,
            ec2: &clients.ec2,
            elbv2: &clients.elbv2,
        };
        let additions = provision_check::quotas::Additions {
            creates: creates.as_ref(),
        };
        provision_check::quotas::quotas(&qc, config, &additions).await
    };
    let builder_check = provision_check::images::builder(builder.as_deref(), &root, &to_build);
    let (delegation, quotas, builder_findings) = tokio::join!(delegation, quotas, builder_check);
    findings.extend(delegation);
    findings.extend(quotas);
    findings.extend(builder_findings);

    let findings = provision_check::sorted(findings);
    let code = provision_check::exit_code(&findings);
    if json {
        let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
        printer::print_json(&json!({
            "stack": session.project.stack_name(),
            "exit_code": code,
            "problems": count(Severity::Problem),
            "warnings": count(Severity::Warning),
            "not_checked": count(Severity::NotChecked),
            "findings": findings,
            "api_calls": aws.calls().snapshot(),
        }))?;
    } else {
        let heading = format!(
            "Checks for {} in account {} ({}):",
            session.project.stack_name(),
            config.account,
            config.region
        );
        printer::print_text(&render(&heading, &findings, global.verbose > 0))?;
    }
    Ok(ExitCode::from(code))
}

/// `--config`, or its default.
fn config_path(global: &Global) -> PathBuf {
    global
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("config/default.json"))
}

async fn load_state(session: &Session, aws: &Aws) -> Result<State, Failure> {
    let store = session.store(Some(aws)).await?;
    session.load_state(&store).await
}

/// The builds whose image the plan creates, updates or replaces (a changed folder).
fn needing_build(
    builds: &[provision_check::images::Build],
    plan: &Plan,
) -> Vec<provision_check::images::Build> {
    builds
        .iter()
        .filter(|b| {
            let id = provision_check::images::image_node_id(b);
            plan.steps.iter().any(|s| {
                s.id.as_str() == id
                    && matches!(s.action, Action::Create | Action::Update | Action::Replace)
            })
        })
        .cloned()
        .collect()
}

/// The report: findings grouped by area, each with its subject, message and hint. Checks that
/// passed show only with `-v`, so problems stand out.
fn render(heading: &str, findings: &[Finding], verbose: bool) -> String {
    let mut text = format!("{heading}\n");
    let mut area = None;
    for f in findings {
        if f.severity == Severity::Ok && !verbose {
            continue;
        }
        if area != Some(f.area) {
            area = Some(f.area);
            text.push_str(&format!("\n{}\n", f.area.title()));
        }
        text.push_str(&format!(
            "  {:<11}  {}: {}\n",
            f.severity.label(),
            f.subject,
            f.message
        ));
        if let Some(h) = &f.hint
            && f.severity != Severity::Ok
        {
            text.push_str(&format!("  {:<11}  hint: {h}\n", ""));
        }
    }
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let (problems, warnings, skipped, passed) = (
        count(Severity::Problem),
        count(Severity::Warning),
        count(Severity::NotChecked),
        count(Severity::Ok),
    );
    let verdict = if problems > 0 {
        "`provision up` would fail: fix the problems above first."
    } else if warnings + skipped > 0 {
        "Nothing found that would make `provision up` fail; see the warnings and what could not be checked."
    } else {
        "All good: nothing found that would make `provision up` fail."
    };
    text.push_str(&format!(
        "\n{passed} passed, {problems} problem(s), {warnings} warning(s), {skipped} not checked{}. {verdict}\n",
        if verbose || passed == 0 { "" } else { " (-v lists what passed)" }
    ));
    text
}

/// Before connecting: a profile that does not exist is reported as such, not as "no
/// credentials".
pub(crate) async fn profile_first(global: &Global, skip: bool) -> Result<(), Failure> {
    if skip {
        return Ok(());
    }
    match provision_check::credentials::profile(global.profile.as_deref()).await {
        Some(f) => Err(failure(&[&f], "nothing was changed in AWS")),
        None => Ok(()),
    }
}

/// The plan, with the fast checks run alongside it (and the builder checked once the plan
/// says an image must be built): every problem either finds stops the command before its
/// first mutating call, all of them reported at once. Warnings are shown and do not stop it.
pub(crate) async fn plan_checked(
    session: &Session,
    aws: &Aws,
    engine: &Engine,
    graph: &Graph,
    state: &State,
    skip: bool,
) -> Result<Prepared, Failure> {
    if skip {
        session.printer.warn(&format!(
            "--skip-checks: not checked before changing anything: {}. The plan still refuses names taken by other stacks and images missing from ECR.",
            provision_check::FAST_CHECKS
        ));
        return Ok(engine.plan(graph, state).await?);
    }
    let config = &session.project.config;
    let clients = provision_check::Clients::new(aws);
    let ((mut findings, _zone), plan) = tokio::join!(
        provision_check::fast(&clients, config, state),
        engine.plan(graph, state)
    );
    let prepared = match plan {
        Ok(p) => Some(p),
        Err(RunError::Failed { failures, .. }) => {
            findings.extend(provision_check::names::from_plan(config, &failures));
            None
        }
        Err(other) => return Err(other.into()),
    };
    if let Some(p) = &prepared {
        let to_build = needing_build(&provision_check::images::builds(config), &p.plan);
        // Without an image to build, no builder is needed: it is not even looked for.
        if !to_build.is_empty() {
            findings.extend(
                provision_check::images::builder(
                    session.project.builder.as_deref(),
                    Path::new(&session.project.root),
                    &to_build,
                )
                .await,
            );
        }
    }
    for f in &findings {
        if f.severity == Severity::Warning {
            session
                .printer
                .warn(&format!("{}: {}", f.subject, f.message));
        }
    }
    let problems: Vec<&Finding> = provision_check::problems(&findings).collect();
    if !problems.is_empty() {
        return Err(failure(&problems, "nothing was changed in AWS"));
    }
    prepared.ok_or_else(|| Failure::new("the plan failed, and no check said why"))
}

/// One failure listing every problem, each with its subject and hint.
fn failure(problems: &[&Finding], outcome: &str) -> Failure {
    let mut message = if problems.len() == 1 {
        format!("a check found a problem; {outcome}:")
    } else {
        format!("the checks found {} problems; {outcome}:", problems.len())
    };
    for p in problems {
        message.push_str(&format!("\n  - {}: {}", p.subject, p.message));
        if let Some(h) = &p.hint {
            message.push_str(&format!("\n      hint: {h}"));
        }
    }
    Failure::new(message).hint(
        "fix them and run again. `provision check` reports everything it can check (the DNS delegation and quotas too); `--skip-checks` skips these checks",
    )
}
