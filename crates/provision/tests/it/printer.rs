//! Snapshots of what users read: the plan diff and the progress lines. Run with
//! `UPDATE_SNAPSHOTS=1` to rewrite the files in tests/it/snapshots/ after a deliberate change.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use provision::printer::{Mode, Printer, Verbosity, render_plan};
use provision_core::event::{Event, EventSink, Outcome};
use provision_core::plan::{Action, Change, Plan, Step};
use serde_json::json;

#[track_caller]
fn snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}; run with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "{name} differs from its snapshot (UPDATE_SNAPSHOTS=1 to accept)"
    );
}

fn step(
    id: &str,
    noun: &str,
    action: Action,
    physical: Option<&str>,
    changes: Vec<Change>,
    reason: Option<&str>,
) -> Step {
    Step {
        id: id.into(),
        kind: "k".into(),
        noun: noun.into(),
        action,
        name: None,
        physical_id: physical.map(str::to_string),
        changes,
        reason: reason.map(str::to_string),
    }
}

fn change(
    setting: &str,
    old: Option<serde_json::Value>,
    new: Option<serde_json::Value>,
    forces: bool,
) -> Change {
    Change {
        setting: setting.into(),
        old,
        new,
        forces_replacement: forces,
    }
}

fn example_plan() -> Plan {
    Plan {
        steps: vec![
            step(
                "network/vpc",
                "VPC",
                Action::Noop,
                Some("vpc-0a1"),
                vec![],
                None,
            ),
            step(
                "web/task-definition",
                "ECS task definition",
                Action::Update,
                Some("streamlit-app-dev:3"),
                vec![change(
                    "environment",
                    Some(json!({"APP_TITLE": "Old", "SENTIMENT_MODEL": "sentiment", "GONE": "x"})),
                    Some(json!({"APP_TITLE": "New", "SENTIMENT_MODEL": "sentiment", "ADDED": "y"})),
                    false,
                )],
                None,
            ),
            step(
                "endpoint/sentiment/config",
                "SageMaker endpoint configuration",
                Action::Replace,
                Some("sentiment-config-1a2b3c4"),
                vec![change(
                    "memory_size_in_mb",
                    Some(json!(2048)),
                    Some(json!(3072)),
                    true,
                )],
                None,
            ),
            step(
                "endpoint/sentiment/endpoint",
                "SageMaker endpoint",
                Action::Update,
                Some("sentiment"),
                vec![],
                Some(
                    "depends on endpoint/sentiment/config, which will be created or replaced; its new settings are known after that",
                ),
            ),
            step(
                "function/counterfactual",
                "Lambda function",
                Action::Create,
                None,
                vec![change("memory_size", None, Some(json!(1024)), false)],
                None,
            ),
            step(
                "image/old",
                "ECR repository",
                Action::Delete,
                Some("streamlit-app-dev/old"),
                vec![],
                Some("no longer in the config"),
            ),
        ],
    }
}

#[test]
fn the_plan_reads_as_a_diff() {
    let mut out = Vec::new();
    render_plan(
        &example_plan(),
        "Plan for streamlit-app-dev in account 123456789012 (us-east-1):",
        false,
        false,
        &mut out,
    )
    .unwrap();
    snapshot("plan.txt", &String::from_utf8(out).unwrap());
}

#[test]
fn the_verbose_plan_lists_unchanged_resources_and_new_settings() {
    let mut out = Vec::new();
    render_plan(&example_plan(), "Plan:", false, true, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("keep     VPC network/vpc"), "{text}");
    assert!(text.contains("memory_size: 1024"), "{text}");
}

#[test]
fn the_plan_is_coloured_only_when_asked() {
    let mut plain = Vec::new();
    render_plan(&example_plan(), "Plan:", false, false, &mut plain).unwrap();
    assert!(!String::from_utf8(plain).unwrap().contains('\x1b'));
    let mut coloured = Vec::new();
    render_plan(&example_plan(), "Plan:", true, false, &mut coloured).unwrap();
    assert!(String::from_utf8(coloured).unwrap().contains("\x1b[31m"));
}

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn events() -> Vec<Event> {
    vec![
        Event::Started {
            id: "network/vpc".into(),
            noun: "VPC".into(),
            action: Action::Create,
            name: Some("streamlit-app-vpc-dev".into()),
        },
        Event::Finished {
            id: "network/vpc".into(),
            outcome: Outcome::Created,
            elapsed: Duration::from_millis(300),
        },
        Event::Started {
            id: "network/nat-gateway".into(),
            noun: "NAT gateway".into(),
            action: Action::Create,
            name: None,
        },
        Event::Progress {
            id: "network/nat-gateway".into(),
            message: "waiting for NAT gateway nat-1 to be available: pending".into(),
        },
        Event::Finished {
            id: "network/nat-gateway".into(),
            outcome: Outcome::Created,
            elapsed: Duration::from_secs(95),
        },
        Event::Finished {
            id: "network/subnet/public-0".into(),
            outcome: Outcome::Unchanged,
            elapsed: Duration::ZERO,
        },
        Event::Started {
            id: "web/listener/https".into(),
            noun: "listener".into(),
            action: Action::Create,
            name: None,
        },
        Event::Finished {
            id: "web/listener/https".into(),
            outcome: Outcome::Failed("elbv2:CreateListener: CertificateNotFound".into()),
            elapsed: Duration::from_secs(2),
        },
        Event::Finished {
            id: "web/dns".into(),
            outcome: Outcome::Skipped("needs web/listener/https, which did not finish".into()),
            elapsed: Duration::ZERO,
        },
        Event::Warning {
            id: Some("web/service".into()),
            message: "the service rolled back".into(),
        },
    ]
}

#[test]
fn progress_lines_off_a_terminal() {
    let out = Captured::default();
    let printer = Printer::new(
        Box::new(out.clone()),
        Verbosity::Normal,
        Mode::Plain,
        false,
        false,
    );
    for e in events() {
        printer.emit(e);
    }
    snapshot("progress.txt", &out.text());
}

#[test]
fn quiet_shows_only_failures_and_warnings() {
    let out = Captured::default();
    let printer = Printer::new(
        Box::new(out.clone()),
        Verbosity::Quiet,
        Mode::Plain,
        false,
        false,
    );
    for e in events() {
        printer.emit(e);
    }
    let text = out.text();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("failed: elbv2:CreateListener"));
    assert!(text.contains("warning: web/service: the service rolled back"));
}

#[test]
fn the_live_view_shows_what_is_in_flight_and_clears_when_done() {
    let out = Captured::default();
    let printer = Printer::new(
        Box::new(out.clone()),
        Verbosity::Normal,
        Mode::Live,
        false,
        false,
    );
    printer.emit(Event::Started {
        id: "network/nat-gateway".into(),
        noun: "NAT gateway".into(),
        action: Action::Create,
        name: None,
    });
    printer.emit(Event::Progress {
        id: "network/nat-gateway".into(),
        message: "pending".into(),
    });
    let during = out.text();
    assert!(
        during.contains("network/nat-gateway creating NAT gateway — pending"),
        "{during:?}"
    );
    printer.emit(Event::Finished {
        id: "network/nat-gateway".into(),
        outcome: Outcome::Created,
        elapsed: Duration::from_secs(90),
    });
    printer.finish();
    let after = out.text();
    // The block was erased (cursor up, clear to end) and the permanent line stays.
    assert!(after.contains("\x1b[1A\x1b[J"), "{after:?}");
    assert!(
        after.ends_with("✓ network/nat-gateway: created (1m 30s)\n"),
        "{after:?}"
    );
}
