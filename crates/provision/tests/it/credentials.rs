//! Credential failures read as provision's own message, naming what was tried and what failed;
//! the SDK's credential-chain diagnostics stay off stderr unless `-v`, and nothing is coloured
//! when stderr is not a terminal.
//!
//! These fail before any AWS call, so they need no emulator: a project folder, an empty home
//! and an environment without credentials.

use std::path::Path;

use provision_testkit::{copy_dir, workspace_root};

use crate::support::Run;

/// A project made from `examples/offline/` with `config/local.json`, and a home folder with the
/// given `~/.aws/config` (none if `None`).
fn project(aws_config: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = workspace_root();
    copy_dir(&root.join("examples/offline"), dir.path()).unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::copy(
        root.join("config/local.json"),
        dir.path().join("config/default.json"),
    )
    .unwrap();
    if let Some(text) = aws_config {
        std::fs::create_dir_all(dir.path().join("home/.aws")).unwrap();
        std::fs::write(dir.path().join("home/.aws/config"), text).unwrap();
    }
    dir
}

/// The binary with no credentials anywhere: no AWS variables, a home without them, and the
/// instance metadata service off (a CI machine may be an EC2 instance with a role).
async fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_provision"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.join("home"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd.output().await.expect("the binary runs").into()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_that_does_not_exist_is_named() {
    let dir = project(Some("[profile other]\nregion = us-east-1\n"));
    // `plan` checks the profile before anything else (the fast checks); `status` has no checks
    // and meets the missing profile when it loads credentials. Both say the same facts.
    for (args, env, source) in [
        (&["plan", "--profile", "nope"][..], &[][..], "--profile"),
        (&["plan"], &[("AWS_PROFILE", "nope")][..], "AWS_PROFILE"),
        (
            &["status", "--profile", "nope"][..],
            &[][..],
            "(from --profile)",
        ),
        (
            &["status"],
            &[("AWS_PROFILE", "nope")][..],
            "(from AWS_PROFILE)",
        ),
    ] {
        let run = run(dir.path(), args, env).await;
        assert_eq!(run.code, 1, "{}", run.stderr);
        // provision's own message comes first, never an SDK dump.
        let first = run.stderr.lines().next().unwrap();
        assert!(
            !first.contains("aws_config") && !first.contains("WARN"),
            "{}",
            run.stderr
        );
        for fact in ["`nope`", source, "~/.aws/config or ~/.aws/credentials"] {
            assert!(
                run.stderr.contains(fact),
                "{args:?}: no {fact}:\n{}",
                run.stderr
            );
        }
        assert!(
            run.stderr.contains("aws configure list-profiles"),
            "{}",
            run.stderr
        );
        assert_plain(&run);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_credentials_at_all_lists_every_source_tried() {
    let dir = project(None);
    let run = run(dir.path(), &["up", "--yes"], &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let text = &run.stderr;
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("no AWS credentials found"),
        "{text}"
    );
    for tried in [
        "environment variables: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set",
        "profile `default`: not in ~/.aws/config or ~/.aws/credentials",
        "web identity token: AWS_WEB_IDENTITY_TOKEN_FILE is not set",
        "container role: not in a container with a role",
        "instance role: not tried: AWS_EC2_METADATA_DISABLED is true",
    ] {
        assert!(text.contains(tried), "no `{tried}` in:\n{text}");
    }
    assert!(text.contains("the debug log of this run is at"), "{text}");
    assert_plain(&run);

    // With -vv the SDK's own account of the chain is there too.
    let verbose = self::run(dir.path(), &["up", "--yes", "-vv"], &[]).await;
    assert!(
        verbose
            .stderr
            .contains("provider in chain did not provide credentials"),
        "{}",
        verbose.stderr
    );
    assert!(!verbose.stderr.contains('\x1b'), "{}", verbose.stderr);
}

/// provision's message comes first, with no SDK dump before it and no ANSI codes (stderr is a
/// pipe here, and NO_COLOR is not set).
#[track_caller]
fn assert_plain(run: &Run) {
    assert!(
        !run.stderr.contains('\x1b'),
        "ANSI codes:\n{:?}",
        run.stderr
    );
    for sdk in ["WARN", "DEBUG", "provider failed", "CredentialsNotLoaded"] {
        assert!(
            !run.stderr.contains(sdk),
            "`{sdk}` on stderr:\n{}",
            run.stderr
        );
    }
}
