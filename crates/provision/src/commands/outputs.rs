//! `provision outputs`: the recorded outputs, with no AWS call.

use std::process::ExitCode;
use std::sync::Arc;

use provision_config::Checks;

use crate::cli::Global;
use crate::printer::{self, Printer};
use crate::run::{Failure, session};

pub(crate) async fn outputs(
    global: &Global,
    printer: &Arc<Printer>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let session = session(global, printer, Checks::ConfigOnly, None)?;
    let store = session.store(None).await?;
    let state = session.load_state(&store).await?;
    if state.outputs.is_empty() {
        return Err(
            Failure::new(format!("no outputs recorded in {}", store.location()))
                .hint("run `provision up` first (with the same --config and --state)"),
        );
    }
    printer::print_outputs(&state.outputs, json)?;
    Ok(ExitCode::SUCCESS)
}
