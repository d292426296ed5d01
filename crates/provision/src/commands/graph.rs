//! `provision graph`: the resource graph as text, JSON or Graphviz, with no AWS call.

use std::process::ExitCode;
use std::sync::Arc;

use provision_aws::Aws;
use provision_config::Checks;
use provision_stack::{Clients, Kinds};

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
    let stack = session.project.stack_name();
    let failed = |e: provision_core::graph::GraphError| Failure::new(e.to_string());
    if json {
        printer::print_json(&graph.render_json(&stack).map_err(failed)?)?;
    } else if dot {
        printer::print_text(&graph.render_dot(&stack).map_err(failed)?)?;
    } else {
        printer::print_text(&graph.render_text().map_err(failed)?)?;
    }
    Ok(ExitCode::SUCCESS)
}
