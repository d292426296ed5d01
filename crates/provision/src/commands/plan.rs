//! `provision plan`: what `up` would do, with no mutating call.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use provision_config::Checks;

use provision_stack::{Clients, Kinds};
use serde_json::json;
use tokio::sync::watch;

use crate::cli::{ApplyOptions, Global};
use crate::commands::check;
use crate::printer::{self, Printer};
use crate::run::{Failure, session};

pub(crate) async fn plan(
    global: &Global,
    printer: &Arc<Printer>,
    json: bool,
    builder: Option<String>,
    skip_checks: bool,
) -> Result<ExitCode, Failure> {
    let session = session(global, printer, Checks::Full, builder)?;
    check::profile_first(global, skip_checks).await?;
    let aws = session.connect().await?;
    let clients = Clients::new(&aws);
    let kinds = Kinds::new(&clients, &session.project);
    let graph = provision_stack::graph(&session.project, &kinds)
        .map_err(|e| Failure::new(e.to_string()))?;
    let (_tx, rx) = watch::channel(false);
    let engine = session.engine(&ApplyOptions::default_with_concurrency(), rx)?;
    let store = session.store(Some(&aws)).await?;
    let state = session.load_state(&store).await?;
    let prepared =
        check::plan_checked(&session, &aws, &engine, &graph, &state, skip_checks).await?;
    let changes = prepared.plan.has_changes();
    if json {
        printer::print_json(&json!({
            "changes": changes,
            "plan": prepared.plan,
            "api_calls": aws.calls().snapshot(),
        }))?;
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
        printer::print_text(&String::from_utf8_lossy(&text))?;
    }
    Ok(if changes {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
