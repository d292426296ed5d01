//! Where `tracing` events go: stderr, filtered by `-v`/`-q` (or `RUST_LOG`), and the debug log
//! file, which always gets provision's debug events and the SDK's info ones.
//!
//! The file is `--log FILE` (or `PROVISION_LOG`). Without it, commands that read the config keep
//! the log of their last run in `.provision/logs/<command>.log` (beside the default state), so
//! a failure can always be looked into after the fact, as uv and npm do. It is overwritten by
//! the next run of the same command, mode 0600, and locked while in use: a second run while
//! the first still writes (refused by the state lock, say) writes `<command>-<pid>.log`
//! instead of wiping the first run's log.
//!
//! Nothing secret is logged: the per-call events carry ids, codes and sizes (see
//! `provision_aws`), and the SDK's info events carry no credentials (checked by the secrets
//! test). ANSI colour goes to a terminal only, never with `NO_COLOR`, never to the file.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::cli::Global;
use crate::printer;
use crate::run::Failure;

/// The target of the run's first and last events (the command, and how it ended). They are
/// for the file only: stderr shows the same as the command's own output.
pub const RUN_TARGET: &str = "provision::run";

/// What the file gets: provision's debug events, the SDK's info ones, and the credential
/// chain's debug events (which source was tried and what it said: no secrets, and the first
/// thing to read when credentials fail).
const FILE_FILTER: &str = "info,provision=debug,aws_config::meta::credentials=debug";

/// The debug log file of this run, if there is one.
#[derive(Debug, Default)]
pub struct DebugLog {
    path: Option<PathBuf>,
}

impl DebugLog {
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// Installs the subscriber: stderr and the debug log file. `command` is the subcommand's name.
/// Fails only when `--log FILE` cannot be written; a default log that cannot be written is
/// skipped.
pub fn init(global: &Global, command: &str) -> Result<DebugLog, Failure> {
    let color = printer::use_color(io::IsTerminal::is_terminal(&io::stderr()));
    let stderr = fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(color)
        .with_target(false)
        .with_timer(fmt::time::uptime())
        .with_filter(stderr_filter(global).and(filter_fn(|m| m.target() != RUN_TARGET)));

    let (file, path) = match open(global, command)? {
        Some((file, path)) => (Some(file), Some(path)),
        None => (None, None),
    };
    let file_layer = file.map(|f| {
        fmt::layer()
            .with_writer(Mutex::new(f))
            .with_ansi(false)
            .with_target(true)
            .with_filter(EnvFilter::new(FILE_FILTER))
    });
    // A second initialisation (tests calling `main` twice) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file_layer)
        .try_init();
    Ok(DebugLog { path })
}

/// `-q`: errors only. Default: provision's warnings, and only errors from the SDK (its
/// credential-chain diagnostics would otherwise open every credentials failure). `-v`:
/// provision's debug events and everyone's warnings. `-vv`: everything at debug; `-vvv`: trace.
fn stderr_filter(global: &Global) -> EnvFilter {
    if let Ok(filter) = EnvFilter::try_from_default_env() {
        return filter;
    }
    let directives = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "error,provision=warn",
        (false, 1) => "warn,provision=debug",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    EnvFilter::new(directives)
}

/// Opens the log file: `--log FILE`, or the command's default log.
fn open(global: &Global, command: &str) -> Result<Option<(File, PathBuf)>, Failure> {
    if let Some(path) = &global.log {
        let file = create(path, true).map_err(|e| {
            Failure::new(format!(
                "cannot write the debug log to {}: {e}",
                path.display()
            ))
            .hint(
                "pass a file in a folder that exists and is writable with --log (or PROVISION_LOG)",
            )
        })?;
        return Ok(Some((file, path.clone())));
    }
    if matches!(command, "graph" | "completions") {
        return Ok(None);
    }
    Ok(open_default(Path::new(".provision/logs"), command).ok())
}

/// `<dir>/<command>.log`, or `<dir>/<command>-<pid>.log` while another run writes that one.
/// The file stays locked as long as it is open.
pub fn open_default(dir: &Path, command: &str) -> io::Result<(File, PathBuf)> {
    create_private_dir(dir)?;
    let path = dir.join(format!("{command}.log"));
    // Not truncated before it is ours: another run of the same command may be writing it.
    let file = create(&path, false)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            Ok((file, path))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let path = dir.join(format!("{command}-{}.log", std::process::id()));
            Ok((create(&path, true)?, path))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Opens `path` for writing, creating it with mode 0600.
fn create(path: &Path, truncate: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    // A log file left by an older version, or made by hand, may be readable by others; a
    // device (`--log /dev/stderr`) is left as it is.
    #[cfg(unix)]
    if file.metadata()?.is_file() {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}
