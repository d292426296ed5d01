//! `provision refresh`: drift between the state and AWS, changing nothing.

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use crate::cli::Global;
use crate::printer::{self, Printer};
use crate::run::{Failure, observe};

pub(crate) async fn refresh(
    global: &Global,
    printer: &Arc<Printer>,
    json: bool,
) -> Result<ExitCode, Failure> {
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
        )?;
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
        printer::print_text(&text)?;
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
