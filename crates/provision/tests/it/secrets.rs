//! Secrets: credentials never reach the state file, its backup, stdout, stderr or the debug
//! logs (`--log FILE` and the default `.provision/logs/<command>.log`), even with the most
//! verbose logging. (That roles carry only what the config grants is asserted role by
//! role in `backends` and `web`.)

use crate::support::Stack;

const SECRET_KEY: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCY-SECRETVALUE";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzE-SESSIONTOKEN-Nl5Jq9QzXf2v";

#[tokio::test]
async fn credentials_never_reach_the_state_file_or_the_logs() {
    let stack = Stack::new().await;
    let mut outputs = Vec::new();
    let explicit_log = stack.root().join("debug.log");
    let log_flag = explicit_log.to_str().unwrap();
    for args in [
        &["up", "--yes", "--json", "-vv"][..],
        &["up", "--yes", "-v", "--log", log_flag],
        &["plan", "-vv"],
        &["outputs", "--json"],
        &["status"],
        &["down", "--yes", "-vv"],
    ] {
        let out = stack
            .command(args)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
            .env("RUST_LOG", "trace")
            .output()
            .await
            .expect("the binary runs");
        let code = out.status.code();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            matches!(code, Some(0) | Some(2)),
            "`provision {}` failed:\n{stderr}",
            args.join(" ")
        );
        if args[0] == "up" && args.len() == 4 {
            // The state as it is while deployed, and its backup.
            let state = std::fs::read_to_string(stack.state_path()).unwrap();
            outputs.push(("the state file".to_string(), state));
            let backup = stack.state_path().with_extension("json.backup");
            if let Ok(text) = std::fs::read_to_string(&backup) {
                outputs.push(("the state backup".to_string(), text));
            }
        }
        outputs.push((format!("stdout of {args:?}"), stdout));
        outputs.push((format!("stderr of {args:?}"), stderr));
        // The debug log this run wrote (each command overwrites its own).
        let log = if args.contains(&"--log") {
            explicit_log.clone()
        } else {
            stack
                .root()
                .join(format!(".provision/logs/{}.log", args[0]))
        };
        let text = std::fs::read_to_string(&log)
            .unwrap_or_else(|e| panic!("{args:?} wrote no debug log at {}: {e}", log.display()));
        assert!(
            text.contains("provision::run"),
            "the debug log of {args:?} is empty"
        );
        if args[0] != "outputs" {
            assert!(
                text.contains("provision::aws"),
                "the debug log of {args:?} has no AWS call:\n{text}"
            );
        }
        outputs.push((format!("the debug log of {args:?}"), text));
    }
    // The run was verbose enough to have leaked, had anything leaked.
    let logged: usize = outputs.iter().map(|(_, text)| text.len()).sum();
    assert!(
        logged > 10_000,
        "the runs logged almost nothing ({logged} bytes)"
    );
    for (where_, text) in &outputs {
        for secret in [SECRET_KEY, SESSION_TOKEN] {
            assert!(!text.contains(secret), "a credential leaked into {where_}");
        }
    }
}
