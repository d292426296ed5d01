//! Two environments of one project side by side in one account and region (issue 12.7): `dev`
//! and `prod` both deploy, each rerun changes nothing, each `down` removes its own resources
//! and nothing of the other's. Checked through the AWS API, by the ids the emulator holds, at
//! every step. An environment whose config reuses the other's endpoint names is refused
//! before anything is created, with the offending key.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::inventory::{Inventory, assert_empty, expected};
use crate::support::{Stack, mutating_calls, mutating_operations};

/// Gives the environment's endpoints names of their own, and points the function at them.
fn own_endpoint_names(c: &mut Value, suffix: &str) {
    for e in c["sagemaker_endpoints"].as_array_mut().unwrap() {
        let name = format!("{}-{suffix}", e["endpoint_name"].as_str().unwrap());
        e["endpoint_name"] = json!(name);
    }
    for f in c["lambda_functions"].as_array_mut().unwrap() {
        for (_, v) in f["environment_variables"].as_object_mut().unwrap() {
            *v = json!(format!("{}-{suffix}", v.as_str().unwrap()));
        }
    }
}

/// The inventory with each kind's ids sorted and empty kinds left out, so two reads compare
/// regardless of listing order.
fn normal(inventory: Inventory) -> Inventory {
    Inventory(
        inventory
            .0
            .into_iter()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(kind, mut ids)| {
                ids.sort();
                (kind, ids)
            })
            .collect(),
    )
}

async fn read(stack: &Stack) -> Inventory {
    normal(Inventory::read(stack).await)
}

/// The ids of `whole` that are not in `part`, per kind (`part` must be contained in `whole`).
fn minus(whole: &Inventory, part: &Inventory) -> Inventory {
    let mut rest = BTreeMap::new();
    for (kind, ids) in &whole.0 {
        let mine = part.0.get(kind).cloned().unwrap_or_default();
        for id in &mine {
            assert!(ids.contains(id), "{kind} {id} is gone: {whole:#?}");
        }
        let others: Vec<String> = ids.iter().filter(|i| !mine.contains(i)).cloned().collect();
        rest.insert(kind.clone(), others);
    }
    for kind in part.0.keys() {
        assert!(whole.0.contains_key(kind), "every {kind} is gone");
    }
    normal(Inventory(rest))
}

/// Per-kind counts equal, ignoring kinds with nothing live.
#[track_caller]
fn assert_counts(inventory: &Inventory, want: &BTreeMap<String, usize>, context: &str) {
    assert_eq!(&inventory.counts(), want, "{context}: {inventory:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_and_prod_deploy_side_by_side_and_each_down_removes_only_its_own() {
    let dev = Stack::new().await.with_environment("dev");
    dev.up().await;
    let dev_expected = expected(&dev).await;
    let dev_only = read(&dev).await;
    assert_counts(&dev_only, &dev_expected, "after dev's up");

    // prod, with the endpoint names dev uses: refused before anything is made, naming the key.
    let prod = dev.sibling("prod");
    let refused = prod.run(&["up", "--yes", "--json"]).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("sagemaker_endpoints[0].endpoint_name"),
        "the finding names the key: {}",
        refused.stderr
    );
    assert_eq!(
        read(&dev).await,
        dev_only,
        "nothing made or changed by the refused run"
    );

    let mut prod = prod;
    prod.edit_config(|c| own_endpoint_names(c, "prod"));
    prod.up().await;
    let prod_expected = expected(&prod).await;
    let both = read(&dev).await;
    let prod_only = minus(&both, &dev_only);
    assert_counts(&prod_only, &prod_expected, "prod's own resources");

    // Neither claims the other's: each rerun reads its own and changes nothing.
    for (name, stack) in [("dev", &dev), ("prod", &prod)] {
        let rerun = stack.up().await;
        assert_eq!(
            mutating_calls(&rerun),
            0,
            "{name}'s rerun: {:?}",
            mutating_operations(&rerun)
        );
    }
    assert_eq!(read(&dev).await, both);

    prod.down().await;
    assert_eq!(
        read(&dev).await,
        dev_only,
        "prod's down leaves dev exactly as it was"
    );
    let rerun = dev.up().await;
    assert_eq!(
        mutating_calls(&rerun),
        0,
        "dev is whole: {:?}",
        mutating_operations(&rerun)
    );

    dev.down().await;
    assert_empty(&Inventory::read(&dev).await, "after both downs");
    drop(prod);
}
