//! The state: what `provision` created, under which physical ids, with which settings.
//!
//! Stored as JSON with a schema version. The local store writes atomically (temp file,
//! fsync, rename, fsync of the directory) with mode 0600, and guards the state with a lock
//! file held through an OS file lock: a killed run releases it with its process, so a crash
//! never leaves a lock behind on the same machine. Remote stores (S3) implement the same trait.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resource::{LogicalId, Settings};
use crate::time;

/// The state file format this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The intent to create was recorded; the create call may or may not have happened.
    Creating,
    /// Created; perhaps not ready yet.
    Created,
    /// Created and ready.
    Ready,
}

/// What the state knows about one resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub kind: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The idempotency token of the create that made (or will make) it.
    pub token: String,
    /// Bumped by every replacement, so a replacement gets a fresh token.
    #[serde(default)]
    pub generation: u32,
    #[serde(default)]
    pub deps: Vec<LogicalId>,
    /// SHA-256 of the settings last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The settings last applied.
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub outputs: Value,
    pub updated_at: String,
}

/// A resource that was replaced and waits for deletion once everything uses its successor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deposed {
    pub id: LogicalId,
    pub record: Record,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub schema_version: u32,
    pub stack: String,
    pub account: String,
    pub region: String,
    /// Incremented by every write, so a reader can tell two versions apart.
    pub serial: u64,
    pub updated_at: String,
    #[serde(default)]
    pub resources: BTreeMap<LogicalId, Record>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deposed: Vec<Deposed>,
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
}

impl State {
    pub fn new(stack: &str, account: &str, region: &str) -> Self {
        State {
            schema_version: SCHEMA_VERSION,
            stack: stack.to_string(),
            account: account.to_string(),
            region: region.to_string(),
            serial: 0,
            updated_at: time::now_rfc3339(),
            resources: BTreeMap::new(),
            deposed: Vec::new(),
            outputs: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.deposed.is_empty()
    }

    /// Parses a state document; `location` names it in errors.
    pub fn from_json(text: &str, location: &str) -> Result<State, StateError> {
        let value: Value = serde_json::from_str(text).map_err(|e| StateError::Corrupt {
            location: location.to_string(),
            message: if e.is_eof() {
                "it ends early (truncated?)".to_string()
            } else {
                format!("it is not valid JSON: {e}")
            },
        })?;
        let version = value.get("schema_version").and_then(Value::as_u64);
        match version {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(StateError::Schema {
                    location: location.to_string(),
                    found: v,
                });
            }
            None => {
                return Err(StateError::Corrupt {
                    location: location.to_string(),
                    message: "it has no schema_version: it is not a provision state file".into(),
                });
            }
        }
        serde_json::from_value(value).map_err(|e| StateError::Corrupt {
            location: location.to_string(),
            message: format!("it does not match the state schema: {e}"),
        })
    }

    pub fn to_json(&self) -> String {
        // Serialising plain data cannot fail; fall back to an empty object rather than panic.
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string()) + "\n"
    }

    /// Checks the state belongs to the stack, account and region about to be changed.
    pub fn check_matches(
        &self,
        stack: &str,
        account: &str,
        region: &str,
        location: &str,
    ) -> Result<(), StateError> {
        if self.stack != stack || self.account != account || self.region != region {
            return Err(StateError::Mismatch {
                location: location.to_string(),
                found: format!(
                    "{} in account {} ({})",
                    self.stack, self.account, self.region
                ),
                expected: format!("{stack} in account {account} ({region})"),
            });
        }
        Ok(())
    }
}

/// Who holds a lock, written into the lock so a refused run can name them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub holder: String,
    pub pid: u32,
    pub command: String,
    pub started_at: String,
    #[serde(default)]
    pub version: String,
}

impl LockInfo {
    pub fn for_this_process(command: &str) -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".to_string());
        LockInfo {
            holder: format!("{user}@{}", hostname()),
            pid: std::process::id(),
            command: command.to_string(),
            started_at: time::now_rfc3339(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (pid {}, `provision {}`, since {})",
            self.holder, self.pid, self.command, self.started_at
        )
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} state file {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state {location} is unreadable: {message}")]
    Corrupt { location: String, message: String },
    #[error(
        "state {location} has schema version {found}; this provision reads version {SCHEMA_VERSION}"
    )]
    Schema { location: String, found: u64 },
    #[error("state {location} is locked by {holder}")]
    Locked {
        location: String,
        holder: Box<LockInfo>,
    },
    #[error("state {location} was changed by someone else while this run held it")]
    Conflict { location: String },
    #[error("state {location} belongs to {found}, not to {expected}")]
    Mismatch {
        location: String,
        found: String,
        expected: String,
    },
    #[error("state {location}: {message}")]
    Backend { location: String, message: String },
}

impl StateError {
    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            StateError::Locked { holder, .. } => Some(format!(
                "another provision run is using this state. Wait for it to finish. If {} is no longer running (it crashed or its machine is gone), run `provision unlock` with the same --state.",
                holder.holder
            )),
            StateError::Corrupt { .. } => Some(
                "restore the file from a backup (provision keeps the previous version as <state>.backup), or move it away to start over; resources it recorded are tagged provision:stack and can be found in the AWS console"
                    .to_string(),
            ),
            StateError::Schema { .. } => {
                Some("use the provision version that wrote this state, or a newer one".to_string())
            }
            StateError::Mismatch { .. } => Some(
                "pass the --state that belongs to this config, or the --config that belongs to this state"
                    .to_string(),
            ),
            StateError::Conflict { .. } => Some(
                "another run changed the state; rerun to start from the latest version".to_string(),
            ),
            _ => None,
        }
    }
}

/// Where a state lives, and its lock.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// A path or URI, for messages.
    fn location(&self) -> String;
    /// Takes the lock or fails at once with its holder.
    async fn lock(&self, info: &LockInfo) -> Result<(), StateError>;
    /// Releases the lock this store holds.
    async fn unlock(&self) -> Result<(), StateError>;
    /// Removes a lock someone else left, returning who held it.
    async fn force_unlock(&self) -> Result<Option<LockInfo>, StateError>;
    /// The state, or `None` if there is none yet.
    async fn load(&self) -> Result<Option<State>, StateError>;
    /// Replaces the stored state.
    async fn save(&self, state: &State) -> Result<(), StateError>;
}

/// A state file on the local disk, with `<file>.lock` beside it.
pub struct LocalStore {
    path: PathBuf,
    lock_path: PathBuf,
    held: Mutex<Option<File>>,
    backed_up: std::sync::atomic::AtomicBool,
}

impl LocalStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut lock = path.clone().into_os_string();
        lock.push(".lock");
        LocalStore {
            path,
            lock_path: PathBuf::from(lock),
            held: Mutex::new(None),
            backed_up: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
        let path = path.to_path_buf();
        move |source| StateError::Io {
            action,
            path,
            source,
        }
    }

    fn read_holder(&self) -> Option<LockInfo> {
        let text = std::fs::read_to_string(&self.lock_path).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn lock_sync(&self, info: &LockInfo) -> Result<(), StateError> {
        if let Some(parent) = self
            .lock_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(self.io("create the folder of", parent))?;
        }
        loop {
            let mut file = open_private(&self.lock_path, false)
                .map_err(self.io("open the lock of", &self.lock_path))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let holder = self.read_holder().unwrap_or_else(|| LockInfo {
                        holder: "another process".into(),
                        pid: 0,
                        command: "?".into(),
                        started_at: "?".into(),
                        version: String::new(),
                    });
                    return Err(StateError::Locked {
                        location: self.location(),
                        holder: Box::new(holder),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(self.io("lock", &self.lock_path)(e));
                }
            }
            // The holder before us may have removed the file between our open and our lock;
            // then we hold a lock on a file nobody else will see. Start again.
            if !same_file(&file, &self.lock_path) {
                continue;
            }
            let text = serde_json::to_string(info).unwrap_or_default();
            file.set_len(0)
                .map_err(self.io("write the lock of", &self.lock_path))?;
            file.write_all(text.as_bytes())
                .and_then(|_| file.sync_all())
                .map_err(self.io("write the lock of", &self.lock_path))?;
            if let Ok(mut held) = self.held.lock() {
                *held = Some(file);
            }
            return Ok(());
        }
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

fn open_private(path: &Path, truncate: bool) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Writes `bytes` to `path` atomically: a crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    {
        let mut f = open_private(&tmp, true)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // Make the rename itself durable.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[async_trait]
impl StateStore for LocalStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn lock(&self, info: &LockInfo) -> Result<(), StateError> {
        self.lock_sync(info)
    }

    async fn unlock(&self) -> Result<(), StateError> {
        let file = self.held.lock().ok().and_then(|mut h| h.take());
        if let Some(file) = file {
            // Remove while still holding the lock, so nobody locks a file about to vanish.
            let _ = std::fs::remove_file(&self.lock_path);
            let _ = file.unlock();
        }
        Ok(())
    }

    async fn force_unlock(&self) -> Result<Option<LockInfo>, StateError> {
        if !self.lock_path.exists() {
            return Ok(None);
        }
        let file = open_private(&self.lock_path, false)
            .map_err(self.io("open the lock of", &self.lock_path))?;
        let holder = self.read_holder();
        match file.try_lock() {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.lock_path);
                let _ = file.unlock();
                Ok(holder)
            }
            // A live process holds it: removing the file would let two runs in at once.
            Err(_) => Err(StateError::Locked {
                location: self.location(),
                holder: Box::new(holder.unwrap_or_else(|| LockInfo {
                    holder: "a running process".into(),
                    pid: 0,
                    command: "?".into(),
                    started_at: "?".into(),
                    version: String::new(),
                })),
            }),
        }
    }

    async fn load(&self) -> Result<Option<State>, StateError> {
        let mut text = String::new();
        match File::open(&self.path) {
            Ok(mut f) => {
                f.read_to_string(&mut text)
                    .map_err(self.io("read", &self.path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read", &self.path)(e)),
        }
        State::from_json(&text, &self.location()).map(Some)
    }

    async fn save(&self, state: &State) -> Result<(), StateError> {
        // Keep the state as this run found it, once per run, for a hand restore.
        if !self
            .backed_up
            .swap(true, std::sync::atomic::Ordering::SeqCst)
            && self.path.exists()
        {
            let mut backup = self.path.clone().into_os_string();
            backup.push(".backup");
            if let Ok(bytes) = std::fs::read(&self.path) {
                let _ = write_atomic(Path::new(&backup), &bytes);
            }
        }
        write_atomic(&self.path, state.to_json().as_bytes()).map_err(self.io("write", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            kind: "ec2.vpc".into(),
            status: Status::Ready,
            physical_id: Some("vpc-1".into()),
            name: Some("webshop-vpc-dev".into()),
            token: "abc".into(),
            generation: 0,
            deps: vec![],
            fingerprint: Some("f".into()),
            settings: Settings::new(),
            outputs: serde_json::json!({"vpc_id": "vpc-1"}),
            updated_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn saves_and_loads_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("s/dev.state.json"));
        assert_eq!(store.load().await.unwrap(), None);
        let mut state = State::new("webshop-dev", "123456789012", "us-east-1");
        state.resources.insert("network/vpc".into(), record());
        store.save(&state).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(state));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("s"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(leftovers, vec!["dev.state.json".to_string()]);
    }

    #[tokio::test]
    async fn broken_state_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let store = LocalStore::new(&path);
        let good = State::new("s", "123456789012", "us-east-1").to_json();
        let cases = [
            (good[..good.len() / 2].to_string(), "truncated"),
            ("not json".to_string(), "not valid JSON"),
            (
                good.replace("\"schema_version\": 1", "\"schema_version\": 99"),
                "schema version 99",
            ),
            ("{\"hello\": 1}".to_string(), "not a provision state file"),
            (
                good.replace("\"serial\": 0", "\"serial\": \"zero\""),
                "does not match the state schema",
            ),
        ];
        for (text, expected) in cases {
            std::fs::write(&path, &text).unwrap();
            let err = store.load().await.unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
            assert!(err.contains("x.json"), "{err:?} should name the file");
        }
    }

    #[tokio::test]
    async fn a_second_lock_is_refused_with_the_holder_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.state.json");
        let a = LocalStore::new(&path);
        let b = LocalStore::new(&path);
        let info = LockInfo::for_this_process("up");
        a.lock(&info).await.unwrap();
        match b.lock(&LockInfo::for_this_process("down")).await {
            Err(StateError::Locked { holder, .. }) => assert_eq!(*holder, info),
            other => panic!("expected Locked, got {other:?}"),
        }
        // A live holder's lock cannot be forced.
        assert!(matches!(
            b.force_unlock().await,
            Err(StateError::Locked { .. })
        ));
        a.unlock().await.unwrap();
        b.lock(&LockInfo::for_this_process("down")).await.unwrap();
        b.unlock().await.unwrap();
    }

    #[tokio::test]
    async fn a_lock_file_left_without_a_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.state.json");
        // What a killed process leaves: the file, with no OS lock on it.
        std::fs::write(
            dir.path().join("dev.state.json.lock"),
            serde_json::to_string(&LockInfo::for_this_process("up")).unwrap(),
        )
        .unwrap();
        let store = LocalStore::new(&path);
        store.lock(&LockInfo::for_this_process("up")).await.unwrap();
        store.unlock().await.unwrap();
        assert!(!dir.path().join("dev.state.json.lock").exists());
    }

    #[test]
    fn mismatched_state_is_refused() {
        let state = State::new("webshop-dev", "123456789012", "us-east-1");
        assert!(
            state
                .check_matches("webshop-dev", "123456789012", "us-east-1", "f")
                .is_ok()
        );
        let err = state
            .check_matches("webshop-prod", "123456789012", "us-east-1", "f")
            .unwrap_err();
        assert!(err.to_string().contains("webshop-dev"), "{err}");
    }
}
