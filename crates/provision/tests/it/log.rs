//! The debug log: every AWS call with its request id, `-v` on stderr, `--log FILE`, the default
//! log a failed run names, and its lock.

use std::collections::BTreeMap;
use std::path::Path;

use provision::debug_log::open_default;

use crate::support::Stack;

/// One per-call line of the log (target `provision::aws`).
#[derive(Debug)]
struct CallLine {
    operation: String,
    request_id: Option<String>,
    line: String,
}

fn calls_in(log: &str) -> Vec<CallLine> {
    log.lines()
        .filter_map(|line| {
            let rest = line.split_once(" provision::aws: ")?.1;
            let operation = rest.split_whitespace().next()?.to_string();
            let request_id = rest
                .split_whitespace()
                .find_map(|f| f.strip_prefix("request_id="))
                .map(str::to_string);
            Some(CallLine {
                operation,
                request_id,
                line: line.to_string(),
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_with_log_records_every_call_with_its_request_id() {
    let stack = Stack::new().await;
    let log_path = stack.root().join("up-debug.log");
    let run = stack
        .run(&["up", "--yes", "--json", "--log", log_path.to_str().unwrap()])
        .await
        .success();
    let result = run.json();
    let log = std::fs::read_to_string(&log_path).expect("--log writes the file");

    // One line per call, the same calls `--json` counts.
    let mut logged: BTreeMap<String, u64> = BTreeMap::new();
    let calls = calls_in(&log);
    for c in &calls {
        *logged.entry(c.operation.clone()).or_default() += 1;
    }
    let counted: BTreeMap<String, u64> =
        serde_json::from_value(result["api_calls"]["operations"].clone()).unwrap();
    assert!(counted.len() > 20, "a whole deploy: {counted:?}");
    assert_eq!(
        logged, counted,
        "the log and --json disagree on the calls made"
    );

    // Every one with the id AWS gave it. (moto sends `x-amzn-RequestId` on every reply of
    // every service provision uses; EC2 puts it in the body too.)
    let without: Vec<&str> = calls
        .iter()
        .filter(|c| c.request_id.is_none())
        .map(|c| c.line.as_str())
        .collect();
    assert!(
        without.is_empty(),
        "calls logged without a request id:\n{}",
        without.join("\n")
    );
    for c in &calls {
        assert!(c.line.contains(" status="), "{}", c.line);
        assert!(c.line.contains(" attempts="), "{}", c.line);
        assert!(c.line.contains(" duration_ms="), "{}", c.line);
    }

    // Timestamped lines, no colour, the command at the top and how it ended at the bottom.
    assert!(!log.contains('\x1b'), "ANSI codes in the log file");
    let first = log.lines().next().unwrap();
    assert!(
        first.starts_with("20") && first.contains("provision up --yes --json --log"),
        "{first}"
    );
    assert!(
        log.lines().last().unwrap().contains("done: ExitCode"),
        "{log}"
    );
    // The explicit log replaces the default one.
    assert!(!stack.root().join(".provision/logs/up.log").exists());
    assert!(
        !run.stderr.contains("provision::aws") && !run.stderr.contains("request_id="),
        "without -v, the debug log stays off stderr:\n{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verbose_shows_the_calls_on_stderr_and_the_default_log_keeps_them() {
    let stack = Stack::new().await;
    let run = stack.run(&["plan", "-v"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let on_stderr: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("sts:GetCallerIdentity"))
        .collect();
    assert_eq!(on_stderr.len(), 1, "{}", run.stderr);
    assert!(on_stderr[0].contains("request_id="), "{}", on_stderr[0]);
    assert!(on_stderr[0].contains("DEBUG"), "{}", on_stderr[0]);

    let default = stack.root().join(".provision/logs/plan.log");
    let log = std::fs::read_to_string(&default).expect("plan keeps its debug log");
    let calls = calls_in(&log);
    assert!(
        calls
            .iter()
            .any(|c| c.operation == "sts:GetCallerIdentity" && c.request_id.is_some()),
        "{log}"
    );
    assert!(calls.len() > 5, "plan reads every resource:\n{log}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&default).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the debug log is private");
    }

    // The next run of the same command starts the log afresh.
    let again = stack.run(&["plan"]).await;
    assert_eq!(again.code, 2, "{}", again.stderr);
    let log = std::fs::read_to_string(&default).unwrap();
    assert_eq!(
        log.matches("provision::run: provision plan").count(),
        1,
        "{log}"
    );
    assert!(
        !again.stderr.contains("GetCallerIdentity"),
        "{}",
        again.stderr
    );

    // PROVISION_LOG is --log.
    let path = stack.root().join("from-env.log");
    let run = stack
        .command(&["plan"])
        .env("PROVISION_LOG", &path)
        .output()
        .await
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let log = std::fs::read_to_string(&path).expect("PROVISION_LOG names the log");
    assert!(calls_in(&log).len() > 5, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_names_its_debug_log_which_holds_the_error() {
    let stack = Stack::new()
        .await
        .with_config(|c| c["account"] = "999999999999".into());
    let run = stack.run(&["up", "--yes"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let last = run.stderr.trim_end().lines().last().unwrap();
    assert_eq!(
        last.trim(),
        "the debug log of this run is at .provision/logs/up.log",
        "{}",
        run.stderr
    );
    let log = std::fs::read_to_string(stack.root().join(".provision/logs/up.log")).unwrap();
    assert!(
        calls_in(&log)
            .iter()
            .any(|c| c.operation == "sts:GetCallerIdentity" && c.request_id.is_some()),
        "{log}"
    );
    assert!(
        log.contains("ended: the config deploys into account 999999999999"),
        "{log}"
    );

    // `--log` where it cannot be written is refused before anything runs.
    let run = stack
        .run(&["up", "--yes", "--log", "/nonexistent-folder/up.log"])
        .await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("cannot write the debug log to /nonexistent-folder/up.log"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_folder_that_is_not_a_project_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["plan"][..], &["outputs"], &["status", "-v"]] {
        let run: crate::support::Run =
            tokio::process::Command::new(env!("CARGO_BIN_EXE_provision"))
                .args(args)
                .current_dir(dir.path())
                .env("NO_COLOR", "1")
                .output()
                .await
                .unwrap()
                .into();
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stderr.contains("config/default.json"), "{}", run.stderr);
        assert!(!run.stderr.contains("debug log"), "{}", run.stderr);
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no .provision/logs where there is no config"
    );
}

#[test]
fn a_second_run_does_not_wipe_the_log_of_a_run_still_writing_it() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join(".provision/logs");
    let (mut first, first_path) = open_default(&logs, "up").unwrap();
    std::io::Write::write_all(&mut first, b"first run\n").unwrap();
    let (_second, second_path) = open_default(&logs, "up").unwrap();
    assert_eq!(first_path, logs.join("up.log"));
    assert_eq!(
        second_path,
        logs.join(format!("up-{}.log", std::process::id()))
    );
    assert_eq!(read(&first_path), "first run\n");
    drop(first);
    // Once the first run is over, the next takes the log over and starts it afresh.
    let (_third, third_path) = open_default(&logs, "up").unwrap();
    assert_eq!(third_path, first_path);
    assert_eq!(read(&third_path), "");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&logs), 0o700);
        assert_eq!(mode(&third_path), 0o600);
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}
