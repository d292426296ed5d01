//! Test infrastructure: a real AWS emulator (moto's server) on loopback, one per test, so
//! tests never share state and run in parallel; and [`proxy`], a fault-injecting,
//! latency-modelling proxy to put between provision and the emulator, whose strict mode
//! ([`proxy::Strict`]) refuses what real AWS refuses and the emulator accepts, and injects the
//! eventual-consistency errors real AWS gives and the emulator never does.

pub mod dns;
pub mod proxy;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The account moto answers for.
pub const ACCOUNT: &str = "123456789012";

/// The environment moto needs to behave like AWS for this stack (see docs/aws-notes.md).
pub const MOTO_ENV: &[(&str, &str)] = &[
    // Without it, ECS services never reach their desired count and stability waits hang.
    ("MOTO_ECS_SERVICE_RUNNING", "1"),
    // Certificates are issued at once instead of after 60 s.
    ("MOTO_ACM_VALIDATION_WAIT", "0"),
    // AWS managed policies exist, so attaching them works.
    ("MOTO_IAM_LOAD_MANAGED_POLICIES", "true"),
];

/// A moto server on a free loopback port, stopped when dropped.
pub struct Emulator {
    child: Child,
    url: String,
    port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error(
        "moto_server not found: looked for $MOTO_SERVER, {0}, and moto_server on PATH; run scripts/setup first"
    )]
    NotFound(String),
    #[error("could not start moto_server: {0}")]
    Spawn(std::io::Error),
    #[error("moto_server did not come up: {0}")]
    NotReady(String),
}

/// Where the project's emulator lives: `$MOTO_SERVER`, else the workspace virtualenv, else PATH.
pub fn moto_server() -> Result<PathBuf, EmulatorError> {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let venv = workspace_root().join(".venv/bin/moto_server");
    if venv.is_file() {
        return Ok(venv);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("moto_server");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(EmulatorError::NotFound(venv.display().to_string()))
}

/// The repository root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Copies the folder tree `from` into `to` (an example project into a scratch folder).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl Emulator {
    /// Starts moto and returns once it accepts requests.
    pub fn start() -> Result<Emulator, EmulatorError> {
        let bin = moto_server()?;
        // A port another process grabs between our probe and moto's bind makes moto exit;
        // then try another.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port().map_err(EmulatorError::Spawn)?;
            let mut cmd = Command::new(&bin);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .envs(MOTO_ENV.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().map_err(EmulatorError::Spawn)?;
            let Some(stderr) = child.stderr.take() else {
                let _ = child.kill();
                return Err(EmulatorError::NotReady("no stderr".into()));
            };
            // moto (werkzeug) says "Running on http://..." once it listens; read its log until
            // then, and keep draining it afterwards so it never blocks on a full pipe.
            let (tx, rx) = mpsc::channel::<Result<(), String>>();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                let mut tail = Vec::new();
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(t) = tx.as_ref() {
                        if line.contains("Running on") {
                            let _ = t.send(Ok(()));
                            tx = None;
                        } else {
                            tail.push(line);
                        }
                    }
                }
                if let Some(t) = tx {
                    let _ = t.send(Err(tail.join("\n")));
                }
            });
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(Ok(())) => {
                    return Ok(Emulator {
                        child,
                        url: format!("http://127.0.0.1:{port}"),
                        port,
                    });
                }
                Ok(Err(log)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = log;
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = "no answer within 60 s".into();
                }
            }
        }
        Err(EmulatorError::NotReady(last))
    }

    /// `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
