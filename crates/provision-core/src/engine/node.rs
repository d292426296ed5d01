//! One node's work during an apply: create, update, replace or adopt it, and wait for it.

use std::sync::Arc;

use serde_json::Value;

use tokio::sync::mpsc;

use crate::event::{Event, Outcome};
use crate::plan::{Action, diff};
use crate::resource::{Cx, Desired, Kind, Live, LogicalId, Lookup, ResourceError, Settings};
use crate::retry::{self, Created};
use crate::state::{Deposed, Record, Status};
use crate::time;

use super::{Msg, Shared, fingerprint, fresh_token, node_changes, state_failure};

pub(super) fn record_from_live(
    kind: &dyn Kind,
    name: Option<&str>,
    live: &Live,
    token: String,
    generation: u32,
    deps: Vec<LogicalId>,
    settings: Settings,
) -> Record {
    Record {
        kind: kind.name().to_string(),
        status: if live.ready {
            Status::Ready
        } else {
            Status::Created
        },
        physical_id: Some(live.physical_id.clone()),
        name: name.map(str::to_string),
        token,
        generation,
        deps,
        fingerprint: Some(fingerprint(&settings)),
        settings,
        outputs: live.outputs.clone(),
        updated_at: time::now_rfc3339(),
    }
}

/// Applies one node. Returns the action it took (for failure messages) and its outcome.
pub(super) async fn run_node(
    shared: &Arc<Shared>,
    id: &LogicalId,
    observed: Option<Live>,
    tx: &mpsc::UnboundedSender<Msg>,
) -> (Action, Result<Outcome, ResourceError>) {
    let Some(node) = shared.graph.get(id) else {
        return (
            Action::Noop,
            Err(ResourceError::fatal(format!("{id} is not in the graph"))),
        );
    };
    let kind = node.kind.as_ref();
    let parts = &shared.engine;
    let cx = parts.cx(id, &shared.handle);
    let deps: Vec<LogicalId> = node.deps().iter().map(|d| d.id.clone()).collect();
    // Every dependency has published its outputs by now, so a value it cannot read is a bug:
    // outputs of another shape than the spec expects.
    let desired_settings = match shared.outputs.read().map(|o| node.settings(&o)) {
        Ok(Ok(s)) => s,
        Ok(Err(u)) => {
            return (
                Action::Noop,
                Err(ResourceError::fatal(format!(
                    "internal error: {id} cannot read the outputs of {}",
                    u.0
                ))),
            );
        }
        Err(_) => {
            return (
                Action::Noop,
                Err(ResourceError::fatal(
                    "internal error: the outputs table is poisoned",
                )),
            );
        }
    };
    let record = shared.handle.record(id).await;
    let publish = |live: &Live| {
        if let Ok(mut o) = shared.outputs.write() {
            o.insert(id.clone(), live.outputs.clone());
        }
        let _ = tx.send(Msg::Exists(id.clone()));
    };

    let Some(live) = observed else {
        let generation = record.as_ref().map(|r| r.generation).unwrap_or(0);
        // A record with only an intent keeps its token: the create it announced may have happened.
        let result = create(
            shared,
            &cx,
            node,
            &desired_settings,
            generation,
            &deps,
            &publish,
        )
        .await;
        return (Action::Create, result.map(|_| Outcome::Created));
    };

    let changes = node_changes(
        kind,
        node.name.as_deref(),
        &desired_settings,
        &live,
        record.as_ref(),
    );
    tracing::debug!(
        target: "provision::engine",
        id = %id,
        kind = kind.name(),
        physical_id = %live.physical_id,
        changes = ?changes
            .iter()
            .map(|c| (c.setting.as_str(), c.forces_replacement))
            .collect::<Vec<_>>(),
        "diff (setting, forces replacement)"
    );
    if changes.is_empty() {
        let known = record.as_ref().and_then(|r| r.physical_id.as_deref())
            == Some(live.physical_id.as_str());
        let outcome = if known {
            Outcome::Unchanged
        } else {
            Outcome::Adopted
        };
        if !known || record.as_ref().is_some_and(|r| r.outputs != live.outputs) {
            let token = record
                .as_ref()
                .map(|r| r.token.clone())
                // Found without a record of ours: no create of this run made it.
                .unwrap_or_else(|| fresh_token(&parts.stack.name, id, 0));
            let generation = record.as_ref().map(|r| r.generation).unwrap_or(0);
            let rec = record_from_live(
                kind,
                node.name.as_deref(),
                &live,
                token,
                generation,
                deps.clone(),
                desired_settings.clone(),
            );
            if let Err(e) = shared
                .handle
                .update(|s| {
                    s.resources.insert(id.clone(), rec);
                })
                .await
            {
                return (Action::Adopt, Err(state_failure(e)));
            }
        }
        tracing::debug!(
            target: "provision::engine",
            id = %id,
            kind = kind.name(),
            physical_id = %live.physical_id,
            adopted = !known,
            "unchanged"
        );
        publish(&live);
        if !live.ready {
            parts.emit(Event::Started {
                id: id.clone(),
                noun: kind.noun().to_string(),
                action: Action::Wait,
                name: Some(live.physical_id.clone()),
            });
            return match finish_ready(shared, &cx, kind, live).await {
                Ok(_) => (Action::Wait, Ok(outcome)),
                Err(e) => (Action::Wait, Err(e)),
            };
        }
        return (Action::Noop, Ok(outcome));
    }

    if changes.iter().any(|c| c.forces_replacement) {
        tracing::debug!(
            target: "provision::engine",
            id = %id,
            kind = kind.name(),
            physical_id = %live.physical_id,
            create_before_delete = kind.create_before_delete(),
            "replacing"
        );
        parts.emit(Event::Started {
            id: id.clone(),
            noun: kind.noun().to_string(),
            action: Action::Replace,
            name: Some(live.physical_id.clone()),
        });
        if let Err(e) = kind.verify_owner(&cx, &live).await {
            return (Action::Replace, Err(e));
        }
        let generation = record.as_ref().map(|r| r.generation).unwrap_or(0) + 1;
        let old = match &record {
            Some(r) if r.physical_id.as_deref() == Some(live.physical_id.as_str()) => r.clone(),
            _ => record_from_live(
                kind,
                None,
                &live,
                String::new(),
                generation - 1,
                deps.clone(),
                live.settings.clone(),
            ),
        };
        if kind.create_before_delete() {
            let moved = shared.handle.update(|s| {
                s.resources.remove(id);
                s.deposed.push(Deposed {
                    id: id.clone(),
                    record: old,
                });
            });
            if let Err(e) = moved.await {
                return (Action::Replace, Err(state_failure(e)));
            }
        } else {
            cx.progress(format!(
                "deleting the old {} first (its replacement takes the same name)",
                kind.noun()
            ));
            tracing::debug!(
                target: "provision::engine",
                id = %id,
                kind = kind.name(),
                physical_id = %live.physical_id,
                "deleting the replaced resource first"
            );
            if let Err(e) = kind.delete(&cx, &old).await {
                return (Action::Replace, Err(e));
            }
            if let Err(e) = shared
                .handle
                .update(|s| {
                    s.resources.remove(id);
                })
                .await
            {
                return (Action::Replace, Err(state_failure(e)));
            }
        }
        let result = create(
            shared,
            &cx,
            node,
            &desired_settings,
            generation,
            &deps,
            &publish,
        )
        .await;
        if let Ok(new) = &result {
            tracing::debug!(
                target: "provision::engine",
                id = %id,
                kind = kind.name(),
                old = %live.physical_id,
                physical_id = %new.physical_id,
                "replaced"
            );
        }
        return (Action::Replace, result.map(|_| Outcome::Replaced));
    }

    parts.emit(Event::Started {
        id: id.clone(),
        noun: kind.noun().to_string(),
        action: Action::Update,
        name: Some(live.physical_id.clone()),
    });
    let token = record
        .as_ref()
        .map(|r| r.token.clone())
        .unwrap_or_else(|| fresh_token(&parts.stack.name, id, 0));
    let generation = record.as_ref().map(|r| r.generation).unwrap_or(0);
    let desired = Desired {
        id: id.clone(),
        name: node.name.clone(),
        token: token.clone(),
        settings: desired_settings.clone(),
    };
    let changed: Vec<String> = changes.iter().map(|c| c.setting.clone()).collect();
    if let Err(e) = kind.verify_owner(&cx, &live).await {
        return (Action::Update, Err(e));
    }
    tracing::debug!(
        target: "provision::engine",
        id = %id,
        kind = kind.name(),
        physical_id = %live.physical_id,
        ?changed,
        "updating"
    );
    let updated = match kind.update(&cx, &desired, &live, &changed).await {
        Ok(l) => l,
        Err(e) => return (Action::Update, Err(e)),
    };
    let rec = record_from_live(
        kind,
        node.name.as_deref(),
        &updated,
        token,
        generation,
        deps,
        desired_settings,
    );
    if let Err(e) = shared
        .handle
        .update(|s| {
            s.resources.insert(id.clone(), rec);
        })
        .await
    {
        return (Action::Update, Err(state_failure(e)));
    }
    tracing::debug!(
        target: "provision::engine",
        id = %id,
        kind = kind.name(),
        physical_id = %updated.physical_id,
        "updated"
    );
    publish(&updated);
    match finish_ready(shared, &cx, kind, updated).await {
        Ok(_) => (Action::Update, Ok(Outcome::Updated)),
        Err(e) => (Action::Update, Err(e)),
    }
}

/// Waits for readiness if needed and records it.
pub(super) async fn finish_ready(
    shared: &Arc<Shared>,
    cx: &Cx,
    kind: &dyn Kind,
    live: Live,
) -> Result<Live, ResourceError> {
    if live.ready {
        return Ok(live);
    }
    tracing::debug!(
        target: "provision::engine",
        id = %cx.id(),
        kind = kind.name(),
        physical_id = %live.physical_id,
        status = live.status.as_deref().unwrap_or(""),
        "waiting until ready"
    );
    let ready = kind.wait_ready(cx, live).await?;
    tracing::debug!(
        target: "provision::engine",
        id = %cx.id(),
        kind = kind.name(),
        physical_id = %ready.physical_id,
        "ready"
    );
    let id = cx.id().clone();
    shared
        .handle
        .update(|s| {
            if let Some(r) = s.resources.get_mut(&id) {
                r.status = Status::Ready;
                r.outputs = ready.outputs.clone();
                r.updated_at = time::now_rfc3339();
            }
        })
        .await
        .map_err(state_failure)?;
    if let Ok(mut o) = shared.outputs.write() {
        o.insert(id, ready.outputs.clone());
    }
    Ok(ready)
}

/// Brings a resource found after a create whose reply was lost up to the desired settings:
/// the create may have stopped half way (tagged but not yet configured).
pub(super) async fn converge_found(
    cx: &Cx,
    kind: &dyn Kind,
    desired: &Desired,
    found: Live,
) -> Result<Live, ResourceError> {
    let changed: Vec<String> = diff(&desired.settings, &found.settings, None, &[])
        .into_iter()
        .map(|c| c.setting)
        .collect();
    if changed.is_empty() {
        return Ok(found);
    }
    kind.update(cx, desired, &found, &changed).await
}

/// Records the intent, creates (finding the resource instead if a lost reply hid its
/// creation), records the result, and waits for readiness.
pub(super) async fn create(
    shared: &Arc<Shared>,
    cx: &Cx,
    node: &crate::resource::Node,
    settings: &Settings,
    generation: u32,
    deps: &[LogicalId],
    publish: &(dyn Fn(&Live) + Send + Sync),
) -> Result<Live, ResourceError> {
    let kind = node.kind.as_ref();
    let id = &node.id;
    let parts = &shared.engine;
    let existing = shared.handle.record(id).await;
    // An intent recorded by an earlier run keeps its token: the create it announced may have
    // happened, and the same token finds it instead of making a second one. Anything else is a
    // new create attempt, with a token never used before (see `fresh_token`).
    let token = match &existing {
        Some(r) if r.status == Status::Creating && r.generation == generation => r.token.clone(),
        _ => fresh_token(&parts.stack.name, id, generation),
    };
    let intent = Record {
        kind: kind.name().to_string(),
        status: Status::Creating,
        physical_id: None,
        name: node.name.clone(),
        token: token.clone(),
        generation,
        deps: deps.to_vec(),
        fingerprint: None,
        settings: settings.clone(),
        outputs: Value::Null,
        updated_at: time::now_rfc3339(),
    };
    let intent_for_lookup = intent.clone();
    shared
        .handle
        .update(|s| {
            s.resources.insert(id.clone(), intent);
        })
        .await
        .map_err(state_failure)?;
    tracing::debug!(
        target: "provision::engine",
        id = %id,
        kind = kind.name(),
        name = node.name.as_deref().unwrap_or(""),
        generation,
        token = %token,
        "creating"
    );
    parts.emit(Event::Started {
        id: id.clone(),
        noun: kind.noun().to_string(),
        action: Action::Create,
        name: node.name.clone(),
    });
    let desired = Desired {
        id: id.clone(),
        name: node.name.clone(),
        token: token.clone(),
        settings: settings.clone(),
    };
    // The create may have happened though its reply was lost: look it up before creating again.
    let lookup = Lookup {
        id,
        name: node.name.as_deref(),
        token: &token,
        record: Some(&intent_for_lookup),
    };
    let live =
        match retry::create_or_find(cx, || kind.create(cx, &desired), || kind.read(cx, &lookup))
            .await?
        {
            Created::New(live) => {
                tracing::debug!(
                    target: "provision::engine",
                    id = %id,
                    kind = kind.name(),
                    physical_id = %live.physical_id,
                    "created"
                );
                live
            }
            Created::Found(found) => {
                tracing::debug!(
                    target: "provision::engine",
                    id = %id,
                    kind = kind.name(),
                    physical_id = %found.physical_id,
                    "adopting"
                );
                cx.progress(format!(
                    "found the {} an earlier attempt created",
                    kind.noun()
                ));
                converge_found(cx, kind, &desired, found).await?
            }
        };
    let rec = record_from_live(
        kind,
        node.name.as_deref(),
        &live,
        token,
        generation,
        deps.to_vec(),
        settings.clone(),
    );
    shared
        .handle
        .update(|s| {
            s.resources.insert(id.clone(), rec);
        })
        .await
        .map_err(state_failure)?;
    publish(&live);
    finish_ready(shared, cx, kind, live).await
}
