//! Images: every build folder and its Dockerfile exist, the image builder works and can build
//! each platform asked for (or emulation is missing), and every image the config names in ECR
//! is there (that one is read by the plan, see [`crate::names::from_plan`]).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use provision_build::{BuildError, Builder, BuilderKind};
use provision_config::{self as config, Checks, Config, EndpointModel, ImageSource, Platform};

use crate::{Area, Finding};

/// How long a builder may take to describe itself.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The folder of the app's image.
pub const APP_FOLDER: &str = "streamlit_app";

/// Every build folder and its Dockerfile, checked exactly as `up` checks them (the config's
/// full validation), so `check` and `up` agree. `config_path` is the config file, `root` the
/// project folder.
pub fn folders(config_path: &Path, root: &Path) -> Vec<Finding> {
    match config::load_with(config_path, root, Checks::Full) {
        Ok(_) => vec![Finding::ok(
            Area::Images,
            "build folders",
            "every image folder exists and has a Dockerfile",
        )],
        Err(e) => e
            .issues()
            .iter()
            .map(|issue| {
                let subject = if issue.path.is_empty() {
                    APP_FOLDER.to_string()
                } else {
                    issue.path.clone()
                };
                Finding::problem(Area::Images, subject, issue.message.clone()).hint(format!(
                    "create the folder with its Dockerfile under {}, or fix the key (--root names the project folder)",
                    root.display()
                ))
            })
            .collect(),
    }
}

/// One image the stack builds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Build {
    /// The config key that asks for it (`lambda_functions[0].folder_name`), or `streamlit_app`.
    pub subject: String,
    /// Relative to the project root (`functions/text_counterfactuals`).
    pub folder: String,
    pub platform: Platform,
}

/// Every image the config has built, with the key that asks for it.
pub fn builds(config: &Config) -> Vec<Build> {
    let mut out = vec![Build {
        subject: APP_FOLDER.to_string(),
        folder: APP_FOLDER.to_string(),
        platform: config.platform,
    }];
    for (i, f) in config.lambda_functions.iter().enumerate() {
        if let ImageSource::Build { folder } = &f.image {
            out.push(Build {
                subject: format!("lambda_functions[{i}].folder_name"),
                folder: folder.clone(),
                platform: f.platform,
            });
        }
    }
    for (i, e) in config.sagemaker_endpoints.iter().enumerate() {
        if let EndpointModel::ImageAndModelData {
            image: ImageSource::Build { folder },
            platform,
            ..
        } = &e.model
        {
            out.push(Build {
                subject: format!("sagemaker_endpoints[{i}].dockerfile_folder"),
                folder: folder.clone(),
                platform: *platform,
            });
        }
    }
    out
}

/// The image node a build is (`image/<folder>/<arch>`), as the plan names it.
pub fn image_node_id(build: &Build) -> String {
    provision_stack::images::image_id(&build.folder, build.platform)
}

/// The platform this machine runs natively, if it is one images are built for.
pub fn native_platform() -> Option<Platform> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Platform::Amd64),
        "aarch64" => Some(Platform::Arm64),
        _ => None,
    }
}

/// Whether a Dockerfile has `RUN` instructions, the only ones that execute code for the
/// target platform (and so need emulation on another architecture).
pub fn has_run_steps(dockerfile: &str) -> bool {
    let mut continued = false;
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        let starts_instruction = !continued && !trimmed.is_empty() && !trimmed.starts_with('#');
        // A line ending in a backslash continues the instruction on the next line.
        continued = trimmed.ends_with('\\') || (continued && trimmed.starts_with('#'));
        if starts_instruction
            && trimmed
                .split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("RUN"))
        {
            return true;
        }
    }
    false
}

/// The builder `up` would use works, and can build every platform of `to_build` (the images
/// whose folder changed). With nothing to build, a broken builder is only a warning: `up`
/// needs none until a folder changes. `choice` is `--builder` / `PROVISION_BUILDER`.
pub async fn builder(choice: Option<&str>, root: &Path, to_build: &[Build]) -> Vec<Finding> {
    let subject = match choice.filter(|c| !c.trim().is_empty()) {
        Some(c) => format!("--builder {c}"),
        None => "image builder".to_string(),
    };
    let builder = match Builder::detect(choice).await {
        Ok(b) => b,
        Err(e) => {
            let hint = e.hint().unwrap_or_default();
            let message = match &e {
                BuildError::NoBuilder { .. }
                | BuildError::Unusable { .. }
                | BuildError::UnknownBuilder(_) => e.to_string(),
                other => format!("the image builder could not be checked: {other}"),
            };
            let finding = if to_build.is_empty() {
                Finding::warning(
                    Area::Builder,
                    subject,
                    format!(
                        "{message}; no image needs building now, but the next change to an image folder will"
                    ),
                )
            } else {
                let folders: Vec<&str> = to_build.iter().map(|b| b.folder.as_str()).collect();
                Finding::problem(
                    Area::Builder,
                    subject,
                    format!("{message}; `up` must build {}", folders.join(", ")),
                )
            };
            return vec![finding.hint(hint)];
        }
    };
    let kind = builder.kind();
    let mut findings = vec![Finding::ok(
        Area::Builder,
        subject.clone(),
        if to_build.is_empty() {
            format!("{kind} works (no image needs building now)")
        } else {
            format!("{kind} works and will build {} image(s)", to_build.len())
        },
    )];
    let native = native_platform();
    // The foreign platforms some image needs emulation for.
    let mut needs: Vec<(Platform, Vec<&Build>)> = Vec::new();
    for b in to_build {
        if Some(b.platform) == native {
            continue;
        }
        let dockerfile =
            std::fs::read_to_string(root.join(&b.folder).join("Dockerfile")).unwrap_or_default();
        if !has_run_steps(&dockerfile) {
            continue;
        }
        match needs.iter_mut().find(|(p, _)| *p == b.platform) {
            Some((_, v)) => v.push(b),
            None => needs.push((b.platform, vec![b])),
        }
    }
    for (platform, builds) in needs {
        let folders: Vec<&str> = builds.iter().map(|b| b.folder.as_str()).collect();
        let subject = builds
            .iter()
            .map(|b| b.subject.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let hint = "RUN steps for another architecture need emulation: Docker Desktop has it; on Linux run `docker run --privileged --rm tonistiigi/binfmt --install all` once (it registers QEMU with binfmt_misc for every builder)";
        match can_emulate(kind, platform).await {
            Emulation::Yes(how) => findings.push(Finding::ok(
                Area::Builder,
                subject,
                format!("{kind} can build {} ({how})", platform.oci()),
            )),
            Emulation::No(why) => findings.push(
                Finding::problem(
                    Area::Builder,
                    subject,
                    format!(
                        "{} must be built for {} on this {} machine, and its Dockerfile has RUN steps, but {why}",
                        folders.join(", "),
                        platform.oci(),
                        std::env::consts::ARCH
                    ),
                )
                .hint(hint),
            ),
            Emulation::Unknown(why) => findings.push(
                Finding::not_checked(
                    Area::Builder,
                    subject,
                    format!(
                        "whether {kind} can run {}'s RUN steps for {} was not checked: {why}",
                        folders.join(", "),
                        platform.oci()
                    ),
                )
                .hint(hint),
            ),
        }
    }
    findings
}

enum Emulation {
    Yes(String),
    No(String),
    Unknown(String),
}

/// Whether `kind` can run programs of `platform`: what buildx reports for Docker, the kernel's
/// binfmt_misc registrations (QEMU) for Podman and Buildah.
async fn can_emulate(kind: BuilderKind, platform: Platform) -> Emulation {
    if kind == BuilderKind::Docker {
        return match output("docker", ["buildx", "inspect"]).await {
            Err(why) => Emulation::Unknown(why),
            Ok(text) => match buildx_platforms(&text) {
                None => Emulation::Unknown("`docker buildx inspect` lists no platforms".into()),
                Some(list) if list.iter().any(|p| p == platform.oci()) => {
                    Emulation::Yes("buildx lists it".into())
                }
                Some(list) => {
                    Emulation::No(format!("the buildx builder lists only {}", list.join(", ")))
                }
            },
        };
    }
    binfmt(Path::new("/proc/sys/fs/binfmt_misc"), platform)
}

/// The platforms of `docker buildx inspect`'s `Platforms:` line (a `*` marks the ones
/// configured by hand; it is dropped).
fn buildx_platforms(text: &str) -> Option<Vec<String>> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Platforms:"))?;
    let list: Vec<String> = line
        .split(',')
        .map(|p| p.trim().trim_end_matches('*').to_string())
        .filter(|p| !p.is_empty())
        .collect();
    (!list.is_empty()).then_some(list)
}

/// An enabled binfmt_misc handler for the platform's ELF machine (QEMU's `qemu-aarch64`,
/// `qemu-x86_64`; binfmt_misc(8): each handler is a file whose first line is `enabled`).
fn binfmt(dir: &Path, platform: Platform) -> Emulation {
    let machine = match platform {
        Platform::Amd64 => "x86_64",
        Platform::Arm64 => "aarch64",
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return Emulation::Unknown(format!("{} cannot be read ({e})", dir.display()));
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.contains(machine) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if text.lines().next().map(str::trim) == Some("enabled") {
            return Emulation::Yes(format!("binfmt_misc handler {name}"));
        }
    }
    Emulation::No(format!(
        "no enabled binfmt_misc handler for {machine} is registered in {}",
        dir.display()
    ))
}

/// Runs a short command and returns its stdout.
async fn output<I, S>(program: &str, args: I) -> Result<String, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match tokio::time::timeout(PROBE_TIMEOUT, cmd.output()).await {
        Err(_) => Err(format!(
            "`{program}` did not answer within {}s",
            PROBE_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(format!("could not run {program}: {e}")),
        Ok(Ok(o)) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(Ok(o)) => Err(format!(
            "`{program}` failed: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_steps_are_instructions_not_words_in_continuations() {
        assert!(has_run_steps("FROM python:3.12\nrun pip install x\n"));
        assert!(!has_run_steps(
            "FROM scratch\nCOPY a /a\n# RUN commented out\n"
        ));
        assert!(!has_run_steps(
            "FROM scratch\nLABEL a=1 \\\n  RUN=2\nCOPY . /app\n"
        ));
        assert!(has_run_steps("FROM x\nENV A=1 \\\n    B=2\nRUN true\n"));
    }

    #[test]
    fn buildx_platforms_are_read_from_its_inspect_output() {
        let text = "Name:   default\nDriver: docker\n\nNodes:\nName:      default\nStatus:    running\nPlatforms: linux/amd64, linux/amd64/v2, linux/arm64*, linux/386\n";
        assert_eq!(
            buildx_platforms(text).unwrap(),
            ["linux/amd64", "linux/amd64/v2", "linux/arm64", "linux/386"]
        );
        assert_eq!(buildx_platforms("Name: x\n"), None);
    }

    #[test]
    fn binfmt_handlers_must_be_enabled() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            binfmt(dir.path(), Platform::Arm64),
            Emulation::No(_)
        ));
        std::fs::write(
            dir.path().join("qemu-aarch64"),
            "disabled\ninterpreter /usr/bin/qemu-aarch64\n",
        )
        .unwrap();
        assert!(matches!(
            binfmt(dir.path(), Platform::Arm64),
            Emulation::No(_)
        ));
        std::fs::write(
            dir.path().join("qemu-aarch64"),
            "enabled\ninterpreter /usr/bin/qemu-aarch64\n",
        )
        .unwrap();
        assert!(matches!(
            binfmt(dir.path(), Platform::Arm64),
            Emulation::Yes(_)
        ));
        assert!(matches!(
            binfmt(dir.path(), Platform::Amd64),
            Emulation::No(_)
        ));
        assert!(matches!(
            binfmt(&dir.path().join("absent"), Platform::Amd64),
            Emulation::Unknown(_)
        ));
    }
}
