//! Planning: read every resource, compute each node's desired settings, diff.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::graph::Graph;
use crate::plan::{Action, Change, Plan, Step, diff};
use crate::resource::{Kind, Live, LogicalId, Lookup, ResourceError, Settings};
use crate::state::{Record, State};

use super::{Engine, Failure, Prepared, RunError, Summary, read_with_retry};

impl Engine {
    /// Reads every resource and works out what `up` would do. Makes no mutating call.
    pub async fn plan(&self, graph: &Graph, state: &State) -> Result<Prepared, RunError> {
        let order = graph.order()?;
        let semaphore = Arc::new(Semaphore::new(self.concurrency));
        let mut reads = JoinSet::new();
        for node in graph.nodes() {
            let kind = node.kind.clone();
            let id = node.id.clone();
            let name = node.name.clone();
            let record = state.resources.get(&id).cloned();
            let token = record
                .as_ref()
                .map(|r| r.token.clone())
                // Nothing recorded: no create of ours carried a token to find it by.
                .unwrap_or_default();
            let cx = self.detached_cx(&id);
            let semaphore = semaphore.clone();
            let span = tracing::info_span!("node", id = %id);
            reads.spawn(tracing::Instrument::instrument(
                async move {
                    let _permit = semaphore.acquire_owned().await;
                    let lookup = Lookup {
                        id: &id,
                        name: name.as_deref(),
                        token: &token,
                        record: record.as_ref(),
                    };
                    let result = read_with_retry(kind.as_ref(), &cx, &lookup).await;
                    (id, result)
                },
                span,
            ));
        }
        let mut observed = HashMap::new();
        let mut failures = Vec::new();
        while let Some(joined) = reads.join_next().await {
            match joined {
                Ok((id, Ok(live))) => {
                    observed.insert(id, live);
                }
                Ok((id, Err(error))) => {
                    let noun = graph.get(&id).map(|n| n.kind.noun()).unwrap_or("resource");
                    failures.push(Failure {
                        id,
                        noun: noun.to_string(),
                        action: Action::Noop,
                        error,
                    });
                }
                Err(e) => failures.push(Failure {
                    id: LogicalId::from("engine"),
                    noun: "read".into(),
                    action: Action::Noop,
                    error: ResourceError::fatal(format!("a read task failed: {e}")),
                }),
            }
        }
        if !failures.is_empty() {
            failures.sort_by(|a, b| a.id.cmp(&b.id));
            return Err(RunError::Failed {
                failures,
                summary: Summary::default(),
            });
        }

        let mut steps = Vec::new();
        let mut known: HashMap<LogicalId, Value> = HashMap::new();
        for id in &order {
            let Some(node) = graph.get(id) else { continue };
            let live = observed.get(id).cloned().flatten();
            let record = state.resources.get(id);
            let desired = node.settings(&known);
            // A spec sees only what it declares; a read of anything else can never resolve.
            if let Err(u) = &desired
                && !node.deps().iter().any(|d| d.id == u.0)
            {
                return Err(RunError::Failed {
                    failures: vec![Failure {
                        id: id.clone(),
                        noun: node.kind.noun().to_string(),
                        action: Action::Noop,
                        error: ResourceError::fatal(format!(
                            "internal error: {id} reads the outputs of {}, which it does not declare as a dependency",
                            u.0
                        )),
                    }],
                    summary: Summary::default(),
                });
            }
            let mut step = Step {
                id: id.clone(),
                kind: node.kind.name().to_string(),
                noun: node.kind.noun().to_string(),
                action: Action::Noop,
                name: node.name.clone(),
                physical_id: live.as_ref().map(|l| l.physical_id.clone()),
                changes: Vec::new(),
                reason: None,
            };
            match (&live, desired) {
                (None, desired) => {
                    step.action = Action::Create;
                    if record.is_some_and(|r| r.physical_id.is_some()) {
                        step.reason = Some(
                            "recorded in the state but gone from AWS: it will be created again"
                                .into(),
                        );
                    }
                    if let Ok(d) = desired {
                        step.changes = d
                            .into_iter()
                            .map(|(k, v)| Change {
                                setting: k,
                                old: None,
                                new: Some(v),
                                forces_replacement: false,
                            })
                            .collect();
                    }
                }
                (Some(_), Err(unresolved)) => {
                    step.action = Action::Update;
                    let updated = steps
                        .iter()
                        .any(|s: &Step| s.id == unresolved.0 && s.action == Action::Update);
                    step.reason = Some(format!(
                        "depends on {}, which will be {}; its new settings are known after that",
                        unresolved.0,
                        if updated {
                            "updated"
                        } else {
                            "created or replaced"
                        }
                    ));
                }
                (Some(l), Ok(d)) => {
                    let changes =
                        node_changes(node.kind.as_ref(), node.name.as_deref(), &d, l, record);
                    step.action = if changes.is_empty() {
                        if record.and_then(|r| r.physical_id.as_deref())
                            != Some(l.physical_id.as_str())
                        {
                            Action::Adopt
                        } else if !l.ready {
                            Action::Wait
                        } else {
                            Action::Noop
                        }
                    } else if changes.iter().any(|c| c.forces_replacement) {
                        Action::Replace
                    } else {
                        Action::Update
                    };
                    step.changes = changes;
                }
            }
            // Outputs that the apply will change are not known yet: dependents show as changing.
            let outputs_change = matches!(step.action, Action::Create | Action::Replace)
                || (step.action == Action::Update && node.kind.update_changes_outputs());
            if !outputs_change && let Some(l) = &live {
                known.insert(id.clone(), l.outputs.clone());
            }
            steps.push(step);
        }

        // Recorded resources the config no longer has, and replaced ones awaiting deletion.
        for (id, record) in &state.resources {
            if !graph.contains(id) {
                steps.push(Step {
                    id: id.clone(),
                    kind: record.kind.clone(),
                    noun: record.kind.clone(),
                    action: Action::Delete,
                    name: record.name.clone(),
                    physical_id: record.physical_id.clone(),
                    changes: Vec::new(),
                    reason: Some("no longer in the config".into()),
                });
            }
        }
        for d in &state.deposed {
            steps.push(Step {
                id: d.id.clone(),
                kind: d.record.kind.clone(),
                noun: d.record.kind.clone(),
                action: Action::Delete,
                name: d.record.name.clone(),
                physical_id: d.record.physical_id.clone(),
                changes: Vec::new(),
                reason: Some("replaced by a newer one; deleting the old one".into()),
            });
        }
        Ok(Prepared {
            plan: Plan { steps },
            observed,
            order,
        })
    }
}

/// The changes between what a node wants and what is live, including a rename (which
/// always replaces: names are identities).
pub(super) fn node_changes(
    kind: &dyn Kind,
    name: Option<&str>,
    desired: &Settings,
    live: &Live,
    record: Option<&Record>,
) -> Vec<Change> {
    // Settings AWS does not report are taken as applied only if a run recorded applying all of
    // them to this very resource (the fingerprint is written then). An intent, a create that was
    // journalled but killed before its follow-up calls, or a resource found by tags, proves
    // nothing.
    let applied = record
        .filter(|r| {
            r.fingerprint.is_some() && r.physical_id.as_deref() == Some(live.physical_id.as_str())
        })
        .map(|r| &r.settings);
    let mut changes = diff(desired, &live.settings, applied, kind.replace_on());
    if let (Some(want), Some(have)) = (name, record.and_then(|r| r.name.as_deref()))
        && want != have
    {
        changes.insert(
            0,
            Change {
                setting: "name".into(),
                old: Some(Value::String(have.to_string())),
                new: Some(Value::String(want.to_string())),
                forces_replacement: true,
            },
        );
    }
    changes
}
