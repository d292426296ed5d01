//! `provision unlock`: remove a lock whose holder can no longer release it.

use std::process::ExitCode;
use std::sync::Arc;

use provision_config::Checks;

use crate::cli::Global;
use crate::printer::Printer;
use crate::run::{Failure, session};

pub(crate) async fn unlock(global: &Global, printer: &Arc<Printer>) -> Result<ExitCode, Failure> {
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
