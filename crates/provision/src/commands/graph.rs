//! `provision graph`: the resource graph as text, JSON or Graphviz, with no AWS call.

use std::process::ExitCode;
use std::sync::Arc;

use provision_aws::Aws;
use provision_config::Checks;

use provision_core::resource::Until;
use provision_stack::{Clients, Kinds};
use serde_json::json;

use crate::cli::Global;
use crate::printer::{self, Printer};
use crate::run::{Failure, session};

/// The graph needs clients to build its kinds, but makes no call: a placeholder
/// configuration is enough.
pub(crate) fn graph(
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
