//! Image builders: Docker (buildx), Podman and Buildah, run as child processes that write an
//! image archive for one platform. Their output streams, line by line, to a callback; a build
//! that fails reports the builder's last lines.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::archive::ImageArchive;
use crate::context::Context;

/// Extra global options for every `buildah` command, split on whitespace (for example
/// `--storage-driver vfs` where overlay mounts are not allowed). Buildah itself also reads
/// `STORAGE_DRIVER`, which passes through to it.
pub const BUILDAH_ARGS_ENV: &str = "PROVISION_BUILDAH_ARGS";

/// How many of a builder's last lines an error shows.
pub const TAIL_LINES: usize = 30;

/// How long a check that a builder works may take (a hung daemon socket must not hang a run).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuilderKind {
    Docker,
    Podman,
    Buildah,
}

impl BuilderKind {
    /// The order detection tries them in.
    pub const ALL: [BuilderKind; 3] = [
        BuilderKind::Docker,
        BuilderKind::Podman,
        BuilderKind::Buildah,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BuilderKind::Docker => "docker",
            BuilderKind::Podman => "podman",
            BuilderKind::Buildah => "buildah",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for BuilderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("`{0}` is not an image builder provision knows; use docker, podman or buildah")]
    UnknownBuilder(String),
    #[error("{builder} was chosen to build images, but it does not work here: {reason}")]
    Unusable {
        builder: BuilderKind,
        reason: String,
    },
    #[error("no working image builder was found ({})", tried_text(.tried))]
    NoBuilder { tried: Vec<(BuilderKind, String)> },
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", failed_text(.folder, .platform, .builder, .command, .status, .tail))]
    Failed {
        folder: String,
        platform: String,
        builder: BuilderKind,
        command: String,
        status: String,
        tail: Vec<String>,
    },
    #[error("could not make a temporary folder for the image: {0}")]
    TempDir(#[source] std::io::Error),
    #[error("{builder} wrote no image archive for {folder}")]
    NoArchive {
        builder: BuilderKind,
        folder: String,
    },
}

impl BuildError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            BuildError::UnknownBuilder(_) => Some("pass --builder docker, podman or buildah (or set PROVISION_BUILDER), or leave it unset to detect one".into()),
            BuildError::Unusable { builder: BuilderKind::Docker, .. } => {
                Some("start Docker (Docker Desktop, or `sudo systemctl start docker`) and check `docker buildx version` works, or choose another builder with --builder".into())
            }
            BuildError::Unusable { builder, .. } => Some(format!("check that `{builder} info` works, or choose another builder with --builder")),
            BuildError::NoBuilder { .. } => Some(
                "install and start Docker (with buildx), Podman or Buildah, or choose one with --builder / PROVISION_BUILDER. An unchanged image needs no builder: only images whose folder changed are built".into(),
            ),
            BuildError::Failed { .. } => Some("fix the Dockerfile or the folder, then rerun `provision up`; images that were pushed already are not built again".into()),
            _ => None,
        }
    }
}

fn tried_text(tried: &[(BuilderKind, String)]) -> String {
    tried
        .iter()
        .map(|(k, why)| format!("{k}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn failed_text(
    folder: &str,
    platform: &str,
    builder: &BuilderKind,
    command: &str,
    status: &str,
    tail: &[String],
) -> String {
    let mut s =
        format!("building {folder} for {platform} with {builder} failed: `{command}` {status}");
    if tail.is_empty() {
        s.push_str(" and printed nothing");
    } else {
        s.push_str(". Its last lines:");
        for line in tail {
            s.push_str("\n    ");
            s.push_str(line);
        }
    }
    s
}

/// A builder that was found to work.
#[derive(Clone, Debug)]
pub struct Builder {
    kind: BuilderKind,
    /// Options that go before every subcommand (buildah's storage options).
    global_args: Vec<String>,
}

/// One image to build.
#[derive(Clone, Debug)]
pub struct BuildRequest<'a> {
    pub context: &'a Context,
    /// The folder as the user knows it (`functions/text_counterfactuals`), for messages.
    pub label: &'a str,
    /// The context hash: names the builder's temporary image, so builds never collide.
    pub tag: &'a str,
}

impl Builder {
    /// A builder of this kind, unchecked.
    pub fn new(kind: BuilderKind) -> Self {
        let global_args = match kind {
            BuilderKind::Buildah => std::env::var(BUILDAH_ARGS_ENV)
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        Builder { kind, global_args }
    }

    pub fn kind(&self) -> BuilderKind {
        self.kind
    }

    /// The chosen builder if `choice` is given (checked to work), else the first of docker,
    /// podman and buildah that is installed and works.
    pub async fn detect(choice: Option<&str>) -> Result<Builder, BuildError> {
        if let Some(choice) = choice.filter(|c| !c.trim().is_empty()) {
            let kind = BuilderKind::parse(choice)
                .ok_or_else(|| BuildError::UnknownBuilder(choice.to_string()))?;
            let builder = Builder::new(kind);
            return match builder.check().await {
                Ok(()) => Ok(builder),
                Err(reason) => Err(BuildError::Unusable {
                    builder: kind,
                    reason,
                }),
            };
        }
        let mut tried = Vec::new();
        for kind in BuilderKind::ALL {
            let builder = Builder::new(kind);
            match builder.check().await {
                Ok(()) => return Ok(builder),
                Err(reason) => tried.push((kind, reason)),
            }
        }
        Err(BuildError::NoBuilder { tried })
    }

    /// Whether the builder is installed and can build now (Docker needs its daemon and buildx).
    pub async fn check(&self) -> Result<(), String> {
        let probes: Vec<Vec<&str>> = match self.kind {
            BuilderKind::Docker => vec![
                vec!["version", "--format", "{{.Server.Version}}"],
                vec!["buildx", "version"],
            ],
            BuilderKind::Podman => vec![vec!["info", "--format", "{{.Host.Arch}}"]],
            BuilderKind::Buildah => vec![vec!["info"]],
        };
        for probe in probes {
            let args = self.args(probe.iter().map(OsString::from));
            probe_command(self.kind.name(), &args).await?;
        }
        Ok(())
    }

    fn args(&self, rest: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
        self.global_args
            .iter()
            .map(OsString::from)
            .chain(rest)
            .collect()
    }

    /// Builds the context for its platform and writes the image as an archive in a fresh
    /// temporary folder. Every line the builder prints goes to `on_line`.
    pub async fn build(
        &self,
        request: &BuildRequest<'_>,
        on_line: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<ImageArchive, BuildError> {
        let context = request.context;
        let platform = context.platform.oci();
        let dir = tempfile::Builder::new()
            .prefix("provision-image-")
            .tempdir()
            .map_err(BuildError::TempDir)?;
        let archive = dir.path().join("image.tar");
        let image = temporary_name(request.tag, context.platform.as_str());
        let dockerfile = context.dir.join(&context.dockerfile);

        let mut build: Vec<OsString> = match self.kind {
            BuilderKind::Docker => [
                "buildx",
                "build",
                "--provenance=false",
                "--sbom=false",
                "--progress=plain",
                "--load",
            ]
            .iter()
            .map(OsString::from)
            .collect(),
            BuilderKind::Podman | BuilderKind::Buildah => vec!["build".into()],
        };
        build.extend([
            "--platform".into(),
            platform.into(),
            "-f".into(),
            dockerfile.into_os_string(),
            "-t".into(),
            image.clone().into(),
        ]);
        for (k, v) in &context.build_args {
            build.push("--build-arg".into());
            build.push(format!("{k}={v}").into());
        }
        build.push(context.dir.clone().into_os_string());

        let export: Vec<OsString> = match self.kind {
            BuilderKind::Docker => vec![
                "save".into(),
                "-o".into(),
                archive.clone().into_os_string(),
                image.clone().into(),
            ],
            BuilderKind::Podman => vec![
                "save".into(),
                "--format".into(),
                "oci-archive".into(),
                "-o".into(),
                archive.clone().into_os_string(),
                image.clone().into(),
            ],
            BuilderKind::Buildah => {
                let mut dest = OsString::from("oci-archive:");
                dest.push(archive.as_os_str());
                vec!["push".into(), image.clone().into(), dest]
            }
        };

        let fail = |command: &[OsString], status: String, tail: Vec<String>| BuildError::Failed {
            folder: request.label.to_string(),
            platform: platform.to_string(),
            builder: self.kind,
            command: command_text(self.kind.name(), command),
            status,
            tail,
        };

        let build = self.args(build);
        on_line(&format!("$ {}", command_text(self.kind.name(), &build)));
        run_streaming(self.kind.name(), &build, on_line)
            .await?
            .map_err(|(status, tail)| fail(&build, status, tail))?;

        let export = self.args(export);
        let exported = run_streaming(self.kind.name(), &export, on_line).await;
        // The builder's own copy is not needed once exported (or if exporting failed).
        let remove = self.args(["rmi".into(), image.into()]);
        let _ = run_streaming(self.kind.name(), &remove, &|_| {}).await;
        exported?.map_err(|(status, tail)| fail(&export, status, tail))?;

        if !archive.is_file() {
            return Err(BuildError::NoArchive {
                builder: self.kind,
                folder: request.label.to_string(),
            });
        }
        Ok(ImageArchive::new(dir, archive))
    }
}

/// The builder's name for its copy of the image: unique per build, since two runs (two
/// environments) may build the same folder at once, and each removes its copy when done.
fn temporary_name(tag: &str, arch: &str) -> String {
    static BUILDS: AtomicU64 = AtomicU64::new(0);
    let n = BUILDS.fetch_add(1, Ordering::Relaxed);
    let short: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect::<String>()
        .to_ascii_lowercase();
    format!(
        "localhost/provision-build-{short}-{arch}-{}-{n}:latest",
        std::process::id()
    )
}

fn command_text(program: &str, args: &[OsString]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a short check; `Err` says why it failed in a few words.
async fn probe_command(program: &str, args: &[OsString]) -> Result<(), String> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    let output = match tokio::time::timeout(PROBE_TIMEOUT, cmd.output()).await {
        Err(_) => {
            return Err(format!(
                "`{}` did not answer within {}s",
                command_text(program, args),
                PROBE_TIMEOUT.as_secs()
            ));
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("not installed".to_string());
        }
        Ok(Err(e)) => return Err(format!("could not run it: {e}")),
        Ok(Ok(o)) => o,
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    Err(format!(
        "`{}` failed{}{}",
        command_text(program, args),
        if last.is_empty() { "" } else { ": " },
        last
    ))
}

/// The last lines a process printed.
struct Tail(VecDeque<String>);

impl Tail {
    fn push(&mut self, line: String) {
        if self.0.len() == TAIL_LINES {
            self.0.pop_front();
        }
        self.0.push_back(line);
    }
}

/// Runs a process to its end, passing every line of its stdout and stderr to `on_line`.
/// `Ok(Err((status, tail)))` when it ran but failed.
async fn run_streaming(
    program: &str,
    args: &[OsString],
    on_line: &(dyn Fn(&str) + Send + Sync),
) -> Result<Result<(), (String, Vec<String>)>, BuildError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // An interrupted run drops this future: the build must stop with it.
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| BuildError::Spawn {
            program: program.to_string(),
            source,
        })?;
    let mut tail = Tail(VecDeque::with_capacity(TAIL_LINES));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut out = stdout.map(|s| lines(BufReader::new(s)));
    let mut err = stderr.map(|s| lines(BufReader::new(s)));
    loop {
        let line = tokio::select! {
            Some(l) = next(&mut out) => l,
            Some(l) = next(&mut err) => l,
            else => break,
        };
        if let Some(l) = line {
            // Progress bars redraw with carriage returns: only the last state is a line.
            let l = l
                .rsplit('\r')
                .find(|s| !s.trim().is_empty())
                .unwrap_or("")
                .trim_end()
                .to_string();
            if !l.is_empty() {
                on_line(&l);
                tail.push(l);
            }
        }
    }
    let status = child.wait().await.map_err(|source| BuildError::Spawn {
        program: program.to_string(),
        source,
    })?;
    if status.success() {
        Ok(Ok(()))
    } else {
        let status = match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed".to_string(),
        };
        Ok(Err((status, tail.0.into_iter().collect())))
    }
}

type Lines<R> = tokio::io::Split<BufReader<R>>;

fn lines<R: AsyncRead + Unpin>(reader: BufReader<R>) -> Lines<R> {
    reader.split(b'\n')
}

/// The next line of a stream, `Some(None)` for an unreadable chunk, `None` at its end (after
/// which the stream is dropped, so `select!` stops polling it).
async fn next<R: AsyncRead + Unpin>(stream: &mut Option<Lines<R>>) -> Option<Option<String>> {
    let s = stream.as_mut()?;
    match s.next_segment().await {
        Ok(Some(bytes)) => Some(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Ok(None) | Err(_) => {
            *stream = None;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_names() {
        assert_eq!(BuilderKind::parse("Docker"), Some(BuilderKind::Docker));
        assert_eq!(BuilderKind::parse(" buildah "), Some(BuilderKind::Buildah));
        assert_eq!(BuilderKind::parse("kaniko"), None);
    }

    #[test]
    fn temporary_names_are_unique_lower_case_references() {
        let a = temporary_name("ABCdef0123456789ffff", "arm64");
        let b = temporary_name("ABCdef0123456789ffff", "arm64");
        assert!(
            a.starts_with("localhost/provision-build-abcdef012345-arm64-"),
            "{a}"
        );
        assert!(a.ends_with(":latest"));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn an_unknown_builder_is_refused() {
        let err = Builder::detect(Some("kaniko")).await.unwrap_err();
        assert!(matches!(err, BuildError::UnknownBuilder(_)), "{err}");
        assert!(err.hint().is_some());
    }

    #[tokio::test]
    async fn streaming_keeps_the_last_lines_of_a_failure() {
        let script = "for i in $(seq 1 40); do echo out $i; echo err $i >&2; done; exit 3";
        let seen = std::sync::Mutex::new(0usize);
        let result = run_streaming("sh", &["-c".into(), script.into()], &|_| {
            *seen.lock().unwrap() += 1
        })
        .await
        .unwrap();
        let (status, tail) = result.unwrap_err();
        assert_eq!(status, "exited with status 3");
        assert_eq!(*seen.lock().unwrap(), 80, "every line is reported");
        assert_eq!(tail.len(), TAIL_LINES);
        assert!(
            tail.iter().any(|l| l == "err 40") && tail.iter().any(|l| l == "out 40"),
            "{tail:?}"
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_not_installed() {
        let err = probe_command("provision-no-such-builder", &[])
            .await
            .unwrap_err();
        assert_eq!(err, "not installed");
    }
}
