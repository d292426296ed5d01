//! The whole stack for the example configs, without AWS: every kind it uses is one `down`
//! can find.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Clients, Kinds, Project, graph};

/// The configs the stack is checked against: `config/default.json` (over the repository's own
/// folders), `config/local.json` (over `examples/offline`, as the demo and the tests deploy
/// it), and `config/default.json` in `prod`, which adds and removes names.
pub(crate) const EXAMPLES: [&str; 3] = ["default", "local", "prod"];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The project of one of [`EXAMPLES`].
pub(crate) fn example(name: &str) -> Project {
    let repo = repository();
    let (file, root) = match name {
        "local" => ("config/local.json", repo.join("examples/offline")),
        _ => ("config/default.json", repo.clone()),
    };
    let text = std::fs::read_to_string(repo.join(file)).unwrap();
    let mut value: Value = serde_json::from_str(&text).unwrap();
    if name == "prod" {
        value["environment"] = Value::from("prod");
    }
    let config = provision_config::parse(&value.to_string(), Path::new(file), &root)
        .unwrap_or_else(|e| panic!("{e}"));
    Project {
        config,
        root,
        builder: None,
    }
}

/// Kinds around clients that make no call (none is made without a run).
pub(crate) fn kinds(project: &Project) -> Kinds {
    let sdk = provision_aws::SdkConfig::builder()
        .region(aws_sdk_ec2::config::Region::new(
            project.config.region.clone(),
        ))
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .build();
    Kinds::new(&Clients::new(&provision_aws::Aws::from_sdk(sdk)), project)
}

/// `down` deletes by the kind each record names, looked up in the registry, whatever the config
/// says now: a kind the graph uses but the registry lacks would make `up` work and `down` fail.
#[test]
fn every_kind_the_stack_uses_is_one_down_can_find() {
    for name in EXAMPLES {
        let project = example(name);
        let kinds = kinds(&project);
        let registry = kinds.registry().unwrap_or_else(|e| panic!("{e}"));
        let g = graph(&project, &kinds).unwrap_or_else(|e| panic!("{name}: {e}"));
        for node in g.nodes() {
            let found = registry.get(node.kind.name()).unwrap_or_else(|| {
                panic!(
                    "{name}: {} is a `{}`, which the registry `down` uses lacks (add it to its crate's `all()`)",
                    node.id,
                    node.kind.name()
                )
            });
            assert_eq!(found.noun(), node.kind.noun(), "{name}: {}", node.id);
        }
    }
}

/// What each resource waits for, for each example config, as `provision graph` prints it. A
/// change to any dependency shows here as a diff to review (`UPDATE_EXPECT=1 cargo test` writes
/// the new text).
#[test]
fn the_graphs_of_the_example_configs() {
    let snapshots = [
        expect_test::expect_file!["snapshots/default.txt"],
        expect_test::expect_file!["snapshots/local.txt"],
        expect_test::expect_file!["snapshots/prod.txt"],
    ];
    for (name, snapshot) in EXAMPLES.into_iter().zip(snapshots) {
        let project = example(name);
        let g = graph(&project, &kinds(&project)).unwrap_or_else(|e| panic!("{name}: {e}"));
        snapshot.assert_eq(&g.render_text().unwrap_or_else(|e| panic!("{name}: {e}")));
    }
}
