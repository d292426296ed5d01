//! Applying a plan: the scheduler that starts each node as soon as its dependencies allow,
//! then deletes what the config dropped and records the stack's outputs.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::event::{Event, Outcome};
use crate::graph::Graph;
use crate::plan::Action;
use crate::resource::{ErrorClass, LogicalId, ResourceError, Until};

use super::{
    Engine, EngineParts, Failure, Kinds, Prepared, RunError, StateHandle, Summary, Target, forget,
    run_node, state_failure,
};

pub(super) enum Msg {
    Exists(LogicalId),
    Done(LogicalId, Action, Result<Outcome, ResourceError>),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Phase {
    Waiting,
    Running,
    Exists,
    Ready,
    Failed,
    Skipped,
}

/// What a running node needs, shared across tasks.
pub(super) struct Shared {
    pub(super) graph: Arc<Graph>,
    pub(super) handle: Arc<StateHandle>,
    pub(super) outputs: RwLock<HashMap<LogicalId, Value>>,
    pub(super) engine: EngineParts,
}

impl Engine {
    /// Carries out a plan: creates, updates and replaces in dependency order, then deletes
    /// what the config no longer has, then records the stack's outputs.
    pub async fn apply(
        &self,
        graph: Arc<Graph>,
        prepared: Prepared,
        handle: Arc<StateHandle>,
        kinds: &Kinds,
    ) -> Result<Summary, RunError> {
        let start = Instant::now();
        let mut summary = Summary::default();
        let shared = Arc::new(Shared {
            graph: graph.clone(),
            handle: handle.clone(),
            outputs: RwLock::new(HashMap::new()),
            engine: self.parts(),
        });
        let Prepared {
            observed, order, ..
        } = prepared;
        let mut observed = observed;

        let mut phase: HashMap<LogicalId, Phase> = order
            .iter()
            .map(|id| (id.clone(), Phase::Waiting))
            .collect();
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let semaphore = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        let mut running = 0usize;
        let mut failures = Vec::new();
        let mut started_at: HashMap<LogicalId, Instant> = HashMap::new();
        let mut blocked_on: HashMap<LogicalId, LogicalId> = HashMap::new();

        loop {
            // Start everything whose dependencies are satisfied; skip what can no longer run.
            let mut progressed = true;
            while progressed {
                progressed = false;
                for id in &order {
                    if phase.get(id) != Some(&Phase::Waiting) {
                        continue;
                    }
                    let Some(node) = graph.get(id) else { continue };
                    let blocked_by = node
                        .deps()
                        .iter()
                        .find(|d| matches!(phase.get(&d.id), Some(Phase::Failed | Phase::Skipped)));
                    let skip_reason = if let Some(dep) = blocked_by {
                        Some(format!("needs {}, which did not finish", dep.id))
                    } else if self.cancel_requested() {
                        Some("interrupted before it started".to_string())
                    } else {
                        None
                    };
                    if let Some(reason) = skip_reason {
                        tracing::debug!(
                            target: "provision::engine",
                            id = %id,
                            kind = node.kind.name(),
                            %reason,
                            "skipping"
                        );
                        phase.insert(id.clone(), Phase::Skipped);
                        let outcome = Outcome::Skipped(reason);
                        summary.count(&outcome);
                        self.events.emit(Event::Finished {
                            id: id.clone(),
                            outcome,
                            elapsed: Duration::ZERO,
                        });
                        progressed = true;
                        continue;
                    }
                    let satisfied = node.deps().iter().all(|d| match phase.get(&d.id) {
                        Some(Phase::Ready) => true,
                        Some(Phase::Exists) => d.until == Until::Exists,
                        _ => false,
                    });
                    if !satisfied {
                        // Say what it waits for now, once per change (a node waits for its
                        // dependencies one after another).
                        let on = node.deps().iter().find(|d| match phase.get(&d.id) {
                            Some(Phase::Ready) => false,
                            Some(Phase::Exists) => d.until == Until::Ready,
                            _ => true,
                        });
                        if let Some(on) = on
                            && blocked_on.get(id) != Some(&on.id)
                        {
                            tracing::debug!(
                                target: "provision::engine",
                                id = %id,
                                kind = node.kind.name(),
                                on = %on.id,
                                "blocked"
                            );
                            self.events.emit(Event::Blocked {
                                id: id.clone(),
                                on: on.id.clone(),
                            });
                            blocked_on.insert(id.clone(), on.id.clone());
                        }
                        continue;
                    }
                    phase.insert(id.clone(), Phase::Running);
                    started_at.insert(id.clone(), Instant::now());
                    running += 1;
                    progressed = true;
                    let live = observed.remove(id).flatten();
                    let shared = shared.clone();
                    let tx = tx.clone();
                    let id = id.clone();
                    let semaphore = semaphore.clone();
                    // Everything the node's work logs, down to each AWS call, carries its id.
                    let span = tracing::info_span!("node", id = %id);
                    tasks.spawn(
                        async move {
                            let _permit = semaphore.acquire_owned().await;
                            let (action, result) = run_node(&shared, &id, live, &tx).await;
                            let _ = tx.send(Msg::Done(id, action, result));
                        }
                        .instrument(span),
                    );
                }
            }
            if running == 0 {
                break;
            }
            let Some(msg) = rx.recv().await else { break };
            match msg {
                Msg::Exists(id) => {
                    if phase.get(&id) == Some(&Phase::Running) {
                        phase.insert(id, Phase::Exists);
                    }
                }
                Msg::Done(id, action, result) => {
                    running -= 1;
                    let elapsed = started_at.get(&id).map(|s| s.elapsed()).unwrap_or_default();
                    let outcome = match result {
                        Ok(outcome) => {
                            phase.insert(id.clone(), Phase::Ready);
                            outcome
                        }
                        Err(error) => {
                            phase.insert(id.clone(), Phase::Failed);
                            let noun = graph.get(&id).map(|n| n.kind.noun()).unwrap_or("resource");
                            let outcome = if error.class == ErrorClass::Cancelled {
                                Outcome::Skipped("interrupted".into())
                            } else {
                                Outcome::Failed(error.message.clone())
                            };
                            if error.class != ErrorClass::Cancelled {
                                failures.push(Failure {
                                    id: id.clone(),
                                    noun: noun.to_string(),
                                    action,
                                    error,
                                });
                            }
                            outcome
                        }
                    };
                    summary.count(&outcome);
                    self.events.emit(Event::Finished {
                        id,
                        outcome,
                        elapsed,
                    });
                }
            }
        }
        while tasks.join_next().await.is_some() {}

        if failures.is_empty() && !self.cancel_requested() {
            // Delete what the config dropped, and what was replaced, now that nothing uses it.
            let state = handle.snapshot().await;
            let mut targets: Vec<Target> = state
                .resources
                .iter()
                .filter(|(id, _)| !graph.contains(id))
                .map(|(id, r)| Target::Resource(id.clone(), r.clone()))
                .collect();
            for d in &state.deposed {
                // A kind whose names follow its settings lands on a deposed resource again
                // when settings change back after a failed switch; the create then adopts it,
                // and it is live, not garbage.
                let current = state
                    .resources
                    .get(&d.id)
                    .and_then(|r| r.physical_id.as_deref());
                if d.record.physical_id.is_some() && current == d.record.physical_id.as_deref() {
                    if let Err(e) = forget(&handle, &Target::Deposed(d.clone())).await {
                        failures.push(Failure {
                            id: d.id.clone(),
                            noun: d.record.kind.clone(),
                            action: Action::Delete,
                            error: state_failure(e),
                        });
                    }
                    continue;
                }
                targets.push(Target::Deposed(d.clone()));
            }
            if !targets.is_empty() {
                let (deleted, failed) = self.delete_targets(targets, &handle, kinds).await;
                for outcome in deleted {
                    summary.count(&outcome);
                }
                summary.failed += failed.len();
                failures.extend(failed);
            }
        }

        if failures.is_empty() && !self.cancel_requested() {
            let outputs = shared.outputs.read().map(|o| o.clone()).unwrap_or_default();
            match graph.outputs(&outputs) {
                Ok(values) => {
                    let current = handle.snapshot().await.outputs;
                    if current != values {
                        handle.update(|s| s.outputs = values).await?;
                    }
                }
                Err(unresolved) => failures.push(Failure {
                    id: unresolved.0.clone(),
                    noun: "output".into(),
                    action: Action::Noop,
                    error: ResourceError::fatal(format!(
                        "the stack's outputs need {}, which has none",
                        unresolved.0
                    )),
                }),
            }
        }

        summary.elapsed = start.elapsed();
        if !failures.is_empty() {
            return Err(RunError::Failed { failures, summary });
        }
        if self.cancel_requested() {
            return Err(RunError::Cancelled { summary });
        }
        Ok(summary)
    }
}
