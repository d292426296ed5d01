//! `provision status`: each recorded resource as AWS shows it now.

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use crate::cli::Global;
use crate::printer::{self, Printer};
use crate::run::{Failure, observe};

pub(crate) async fn status(
    global: &Global,
    printer: &Arc<Printer>,
    json: bool,
) -> Result<ExitCode, Failure> {
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
        printer::print_json(&json!({"stack": session.project.stack_name(), "resources": items}))?;
    } else if rows.is_empty() {
        printer::print_text(&format!(
            "{}: nothing deployed.\n",
            session.project.stack_name()
        ))?;
    } else {
        let w_id = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w_noun = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        let mut text = String::new();
        for (id, noun, physical, state) in &rows {
            text.push_str(&format!(
                "{id:<w_id$}  {noun:<w_noun$}  {state}  {physical}\n"
            ));
        }
        printer::print_text(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}
