//! Where `tracing` events go: stderr, filtered by `-v`/`-q` (or `RUST_LOG`), and the debug log
//! file, which always gets provision's debug events and the SDK's info ones.
//!
//! The file is `--log FILE` (or `PROVISION_LOG`). Without it, a command keeps the log of its
//! last run in `.provision/logs/<command>.log` (beside the default state), so a failure can
//! always be looked into after the fact, as uv and npm do. The default log is opened once the
//! config has loaded, so a typo in a folder that is not a project leaves nothing behind (what
//! came before is kept in memory until then); `graph` and `completions`, which touch neither
//! AWS nor the state, keep none. It is overwritten by the next run of the same command, mode
//! 0600, and locked while in use: a second run while the first still writes (refused by the
//! state lock, say) writes `<command>-<pid>.log` instead of wiping the first run's log.
//!
//! Nothing secret is logged: the per-call events carry ids, codes and sizes (see
//! `provision_aws`), and the SDK's info events carry no credentials (checked by the secrets
//! test). ANSI colour goes to a terminal only, never with `NO_COLOR`, never to the file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
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

/// Where the default log's folder is, relative to the working folder (as the default state).
const DEFAULT_FOLDER: &str = ".provision/logs";

/// What the events before the default log opens may take in memory.
const PENDING_LIMIT: usize = 1 << 20;

/// The debug log of this run.
#[derive(Debug)]
pub struct DebugLog {
    sink: Arc<Mutex<Sink>>,
    /// The default log's name (the command), until it is opened.
    default_name: Option<String>,
}

/// Where the file's events go.
#[derive(Debug)]
enum Sink {
    /// Kept until the default log opens.
    Pending(Vec<u8>),
    Open {
        file: File,
        path: PathBuf,
    },
    Off,
}

impl DebugLog {
    fn sink(&self) -> MutexGuard<'_, Sink> {
        match self.sink.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The log file, once open.
    pub fn path(&self) -> Option<PathBuf> {
        match &*self.sink() {
            Sink::Open { path, .. } => Some(path.clone()),
            _ => None,
        }
    }

    /// Opens the default log (the config has loaded: this is a project folder) and writes
    /// what was kept until now. A log that cannot be opened is skipped, not an error.
    fn open_default(&self) {
        let Some(name) = &self.default_name else {
            return;
        };
        let mut sink = self.sink();
        if let Sink::Pending(pending) = &*sink {
            *sink = match open_default(Path::new(DEFAULT_FOLDER), name) {
                Ok((mut file, path)) => match file.write_all(pending) {
                    Ok(()) => Sink::Open { file, path },
                    Err(_) => Sink::Off,
                },
                Err(_) => Sink::Off,
            };
        }
    }
}

/// The run's log, for [`opened_for_project`] (called deep in the commands' setup).
static LOG: OnceLock<DebugLog> = OnceLock::new();

/// The config has loaded: the working folder is a project, so the default log may be written
/// there.
pub fn opened_for_project() {
    if let Some(log) = LOG.get() {
        log.open_default();
    }
}

/// Installs the subscriber: stderr and the debug log. `command` is the subcommand's name.
/// Fails only when `--log FILE` cannot be written.
pub fn init(global: &Global, command: &str) -> Result<&'static DebugLog, Failure> {
    let color = printer::use_color(io::IsTerminal::is_terminal(&io::stderr()));
    let stderr = fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(color)
        .with_target(false)
        .with_timer(fmt::time::uptime())
        .with_filter(stderr_filter(global).and(filter_fn(|m| m.target() != RUN_TARGET)));

    let (sink, default_name) = match &global.log {
        Some(path) => {
            let file = create(path, true).map_err(|e| {
                Failure::new(format!(
                    "cannot write the debug log to {}: {e}",
                    path.display()
                ))
                .hint("pass a file in a folder that exists and is writable with --log (or PROVISION_LOG)")
            })?;
            let sink = Sink::Open {
                file,
                path: path.clone(),
            };
            (sink, None)
        }
        None if matches!(command, "graph" | "completions") => (Sink::Off, None),
        None => (Sink::Pending(Vec::new()), Some(command.to_string())),
    };
    let sink = Arc::new(Mutex::new(sink));
    let file = fmt::layer()
        .with_writer(SinkWriter(sink.clone()))
        .with_ansi(false)
        .with_target(true)
        .with_filter(EnvFilter::new(FILE_FILTER));
    // A second initialisation (a test calling `init` twice) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
    Ok(LOG.get_or_init(|| DebugLog { sink, default_name }))
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

/// The file layer's writer.
struct SinkWriter(Arc<Mutex<Sink>>);

/// One event's write, under the sink's lock.
struct SinkGuard<'a>(MutexGuard<'a, Sink>);

impl<'a> MakeWriter<'a> for SinkWriter {
    type Writer = SinkGuard<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        SinkGuard(match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        })
    }
}

impl Write for SinkGuard<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut *self.0 {
            Sink::Pending(pending) => {
                if pending.len() + buf.len() <= PENDING_LIMIT {
                    pending.extend_from_slice(buf);
                }
                Ok(buf.len())
            }
            Sink::Open { file, .. } => file.write(buf),
            Sink::Off => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut *self.0 {
            Sink::Open { file, .. } => file.flush(),
            _ => Ok(()),
        }
    }
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
