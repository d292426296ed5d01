//! `provision down`: delete everything the state records, dependents first.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use provision_config::Checks;
use provision_core::engine::StateHandle;

use provision_stack::{Clients, Kinds};
use serde_json::json;

use crate::cli::{ApplyOptions, Global};
use crate::printer::{self, Printer};
use crate::run::{Failure, cancel_on_interrupt, confirm, locked, session};

pub(crate) async fn down(
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
        Ok(Some(
            engine
                .destroy(
                    handle,
                    &kinds.registry().map_err(|e| Failure::new(e.to_string()))?,
                )
                .await?,
        ))
    })
    .await?;
    if let Some(s) = &summary {
        session.printer.summary("Deleted", s);
    }
    if options.json {
        printer::print_json(&json!({ "summary": summary, "api_calls": aws.calls().snapshot() }))?;
    }
    Ok(ExitCode::SUCCESS)
}
