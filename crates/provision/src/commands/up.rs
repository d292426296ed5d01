//! `provision up`: plan, confirm, apply, print the outputs.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use provision_config::Checks;
use provision_core::engine::StateHandle;
use provision_core::plan::Action;

use provision_stack::{Clients, Kinds};
use serde_json::json;

use crate::cli::{ApplyOptions, Global};
use crate::commands::check;
use crate::printer::{self, Printer};
use crate::run::{Failure, cancel_on_interrupt, confirm, locked, session};

pub(crate) async fn up(
    global: &Global,
    printer: &Arc<Printer>,
    options: &ApplyOptions,
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
    let cancel = cancel_on_interrupt(session.printer.clone());
    let engine = session.engine(options, cancel)?;
    let store = session.store(Some(&aws)).await?;

    let (outputs, summary) = locked(&session, &store, "up", async {
        let state = session.load_state(&store).await?;
        let prepared =
            check::plan_checked(&session, &aws, &engine, &graph, &state, skip_checks).await?;
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
            .apply(
                Arc::new(graph),
                prepared,
                handle.clone(),
                &kinds.registry().map_err(|e| Failure::new(e.to_string()))?,
            )
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
        }))?;
    } else {
        printer::print_outputs(&outputs, false)?;
    }
    Ok(ExitCode::SUCCESS)
}
