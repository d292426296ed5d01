//! The command-line contract, and bad input refused before any AWS call.

use clap::{CommandFactory, Parser};
use provision::cli::{Cli, parse_duration, parse_timeout};
use std::time::Duration;

use crate::support::{Stack, tagged_ec2};

/// Whether the emulator holds nothing of this stack.
async fn nothing_of(stack: &Stack) -> bool {
    tagged_ec2(stack).await.is_empty()
}

#[test]
fn the_cli_is_well_formed() {
    Cli::command().debug_assert();
}

#[test]
fn the_contract_parses() {
    for args in [
        vec![
            "provision",
            "up",
            "--config",
            "c.json",
            "--state",
            "s.json",
            "--yes",
        ],
        vec![
            "provision",
            "down",
            "--config",
            "c.json",
            "--state",
            "s.json",
            "--yes",
        ],
        vec![
            "provision",
            "plan",
            "--config",
            "c.json",
            "--state",
            "s.json",
        ],
        vec!["provision", "outputs", "--json"],
        vec!["provision", "outputs"],
        vec![
            "provision",
            "--config",
            "c.json",
            "up",
            "-y",
            "--root",
            "examples/offline",
        ],
    ] {
        Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
}

#[test]
fn durations_and_timeouts() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(parse_duration("5"), Ok(Duration::from_secs(300)));
    assert!(parse_duration("0s").is_err());
    assert!(parse_duration("5 days").is_err());
    assert_eq!(
        parse_timeout("certificate=90m"),
        Ok(("certificate".into(), Duration::from_secs(5400)))
    );
    assert!(parse_timeout("certificate").is_err());
    // Keys are a closed set: a typo is refused with the nearest key, never accepted and ignored.
    let typo = parse_timeout("natgateway=30m").expect_err("unknown key");
    assert!(typo.contains("did you mean `nat-gateway`"), "{typo}");
    assert_eq!(
        parse_timeout("iam-propagation=5m"),
        Ok(("iam-propagation".into(), Duration::from_secs(300)))
    );
}

#[test]
fn help_lists_every_timeout_key() {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let up = cmd.find_subcommand_mut("up").expect("up");
    let help = up.render_long_help().to_string();
    for t in provision_aws::timeouts::ALL {
        assert!(
            help.contains(t.key),
            "`up --help` does not list {}:\n{help}",
            t.key
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_config_is_refused_with_its_key_path_and_nothing_is_created() {
    let stack = Stack::new().await.with_config(|c| {
        c["sagemaker_endpoints"][1]["serverless_config"]["memory_size_in_mb"] = 2000.into();
        c["platfrom"] = "arm64".into();
    });
    for command in [&["up", "--yes"][..], &["plan"], &["down", "--yes"]] {
        let run = stack.run(command).await;
        assert_eq!(run.code, 1, "{command:?} must fail:\n{}", run.stderr);
        if command[0] != "down" {
            assert!(
                run.stderr
                    .contains("sagemaker_endpoints[1].serverless_config.memory_size_in_mb"),
                "{}",
                run.stderr
            );
        }
        assert!(run.stderr.contains("platfrom"), "{}", run.stderr);
        assert!(
            run.stderr.contains("did you mean `platform`"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    assert!(nothing_of(&stack).await, "no VPC may be created");
    assert!(!stack.state_path().exists(), "no state may be written");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_terminal_and_without_yes_up_and_down_refuse() {
    let stack = Stack::new().await;
    let run = stack.run(&["up"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert!(
        run.stderr.contains("not an interactive terminal"),
        "{}",
        run.stderr
    );
    assert!(nothing_of(&stack).await, "nothing may be created");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wrong_account_is_refused() {
    let stack = Stack::new()
        .await
        .with_config(|c| c["account"] = "999999999999".into());
    let run = stack.run(&["up", "--yes"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("999999999999") && run.stderr.contains("123456789012"),
        "{}",
        run.stderr
    );
    assert!(nothing_of(&stack).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn outputs_without_state_say_what_to_do() {
    let stack = Stack::new().await;
    let run = stack.run(&["outputs"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("provision up"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_graph_lists_every_resource_after_what_it_needs() {
    let stack = Stack::new().await;
    let json = stack.run(&["graph", "--json"]).await.success().json();
    let nodes = json["nodes"].as_array().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for n in nodes {
        for d in n["deps"].as_array().unwrap() {
            assert!(
                seen.contains(d["id"].as_str().unwrap()),
                "{} is listed before its dependency {}",
                n["id"],
                d["id"]
            );
        }
        seen.insert(n["id"].as_str().unwrap().to_string());
    }
    assert!(seen.contains("network/vpc") && seen.contains("network/nat-gateway"));
    let dot = stack.run(&["graph", "--dot"]).await.success();
    assert!(
        dot.stdout.starts_with("digraph")
            && dot
                .stdout
                .contains("\"network/vpc\" -> \"network/subnet/public-0\""),
        "{}",
        dot.stdout
    );
    assert!(nothing_of(&stack).await, "graph makes no AWS call");
}
