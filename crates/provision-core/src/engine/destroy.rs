//! Deleting: `down`, and what an apply leaves behind (dropped and replaced resources),
//! dependents first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::event::{Event, Outcome};
use crate::plan::{Action, Plan, Step};
use crate::resource::{ErrorClass, Kind, LogicalId, Lookup, ResourceError};
use crate::retry;
use crate::state::{Deposed, Record, State, StateError};

use super::{
    Engine, EngineParts, Failure, Kinds, RunError, StateHandle, Summary, read_with_retry,
    state_failure,
};

impl Engine {
    /// Deletes everything the state records, dependents first, then leaves an empty state.
    pub async fn destroy(
        &self,
        handle: Arc<StateHandle>,
        kinds: &Kinds,
    ) -> Result<Summary, RunError> {
        let start = Instant::now();
        let state = handle.snapshot().await;
        let mut targets: Vec<Target> = state
            .resources
            .iter()
            .map(|(id, r)| Target::Resource(id.clone(), r.clone()))
            .collect();
        targets.extend(state.deposed.iter().map(|d| Target::Deposed(d.clone())));
        let mut summary = Summary::default();
        let (deleted, failures) = self.delete_targets(targets, &handle, kinds).await;
        for outcome in &deleted {
            summary.count(outcome);
        }
        summary.failed = failures.len();
        summary.elapsed = start.elapsed();
        if !failures.is_empty() {
            return Err(RunError::Failed { failures, summary });
        }
        if self.cancel_requested() {
            return Err(RunError::Cancelled { summary });
        }
        handle.update(|s| s.outputs.clear()).await?;
        Ok(summary)
    }

    /// The plan of a destroy: every recorded resource, to be deleted.
    pub fn destroy_plan(&self, state: &State) -> Plan {
        let mut steps: Vec<Step> = state
            .resources
            .iter()
            .map(|(id, r)| Step {
                id: id.clone(),
                kind: r.kind.clone(),
                noun: r.kind.clone(),
                action: Action::Delete,
                name: r.name.clone(),
                physical_id: r.physical_id.clone(),
                changes: Vec::new(),
                reason: None,
            })
            .collect();
        steps.extend(state.deposed.iter().map(|d| Step {
            id: d.id.clone(),
            kind: d.record.kind.clone(),
            noun: d.record.kind.clone(),
            action: Action::Delete,
            name: d.record.name.clone(),
            physical_id: d.record.physical_id.clone(),
            changes: Vec::new(),
            reason: Some("replaced earlier".into()),
        }));
        Plan { steps }
    }

    /// Deletes `targets`, each only after everything that depends on it is gone.
    pub(super) async fn delete_targets(
        &self,
        targets: Vec<Target>,
        handle: &Arc<StateHandle>,
        kinds: &Kinds,
    ) -> (Vec<Outcome>, Vec<Failure>) {
        let n = targets.len();
        // blockers[i]: how many targets depending on target i are not deleted yet.
        let mut blockers = vec![0usize; n];
        let mut unblocks: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, t) in targets.iter().enumerate() {
            for (j, u) in targets.iter().enumerate() {
                if i != j && t.record().deps.contains(u.id()) {
                    // t depends on u: u waits for t.
                    blockers[j] += 1;
                    unblocks[i].push(j);
                }
            }
        }
        let mut started = vec![false; n];
        let (tx, mut rx) =
            mpsc::unbounded_channel::<(usize, Result<Outcome, ResourceError>, Duration)>();
        let semaphore = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        let mut running = 0;
        let mut outcomes = Vec::new();
        let mut failures = Vec::new();
        let parts = self.parts();
        loop {
            for i in 0..n {
                if started[i] || blockers[i] > 0 || self.cancel_requested() {
                    continue;
                }
                started[i] = true;
                running += 1;
                let target = targets[i].clone();
                let kind = kinds.get(&target.record().kind).cloned();
                let handle = handle.clone();
                let parts = parts.clone();
                let tx = tx.clone();
                let semaphore = semaphore.clone();
                let span = tracing::info_span!("node", id = %target.id());
                tasks.spawn(
                    async move {
                        let _permit = semaphore.acquire_owned().await;
                        let t0 = Instant::now();
                        let result = delete_one(&parts, &handle, kind, &target).await;
                        let _ = tx.send((i, result, t0.elapsed()));
                    }
                    .instrument(span),
                );
            }
            if running == 0 {
                break;
            }
            let Some((i, result, elapsed)) = rx.recv().await else {
                break;
            };
            running -= 1;
            let target = &targets[i];
            let outcome = match result {
                Ok(o) => {
                    for &j in &unblocks[i] {
                        blockers[j] -= 1;
                    }
                    o
                }
                Err(error) => {
                    let o = Outcome::Failed(error.message.clone());
                    if error.class != ErrorClass::Cancelled {
                        failures.push(Failure {
                            id: target.id().clone(),
                            noun: kinds
                                .get(&target.record().kind)
                                .map(|k| k.noun().to_string())
                                .unwrap_or_else(|| target.record().kind.clone()),
                            action: Action::Delete,
                            error,
                        });
                    }
                    o
                }
            };
            self.events.emit(Event::Finished {
                id: target.id().clone(),
                outcome: outcome.clone(),
                elapsed,
            });
            outcomes.push(outcome);
        }
        while tasks.join_next().await.is_some() {}
        // Report what could not be attempted because something depending on it failed.
        for i in 0..n {
            if !started[i] {
                let outcome = Outcome::Skipped(if self.cancel_requested() {
                    "interrupted before it started".into()
                } else {
                    "something that uses it could not be deleted".into()
                });
                self.events.emit(Event::Finished {
                    id: targets[i].id().clone(),
                    outcome: outcome.clone(),
                    elapsed: Duration::ZERO,
                });
                outcomes.push(outcome);
            }
        }
        (outcomes, failures)
    }
}

#[derive(Clone, Debug)]
pub(super) enum Target {
    Resource(LogicalId, Record),
    Deposed(Deposed),
}

impl Target {
    pub(super) fn id(&self) -> &LogicalId {
        match self {
            Target::Resource(id, _) => id,
            Target::Deposed(d) => &d.id,
        }
    }
    pub(super) fn record(&self) -> &Record {
        match self {
            Target::Resource(_, r) => r,
            Target::Deposed(d) => &d.record,
        }
    }
}

pub(super) async fn delete_one(
    parts: &EngineParts,
    handle: &Arc<StateHandle>,
    kind: Option<Arc<dyn Kind>>,
    target: &Target,
) -> Result<Outcome, ResourceError> {
    let id = target.id();
    let mut record = target.record().clone();
    let Some(kind) = kind else {
        return Err(ResourceError::fatal(format!(
            "the state records {id} as a `{}`, which this provision does not know",
            record.kind
        ))
        .with_hint("use the provision version that wrote this state"));
    };
    let cx = parts.cx(id, handle);
    parts.emit(Event::Started {
        id: id.clone(),
        noun: kind.noun().to_string(),
        action: Action::Delete,
        name: record.physical_id.clone().or_else(|| record.name.clone()),
    });
    if record.physical_id.is_none() {
        // Only the intent was recorded: the create may or may not have happened.
        let lookup = Lookup {
            id,
            name: record.name.as_deref(),
            token: &record.token,
            record: Some(&record),
        };
        match read_with_retry(kind.as_ref(), &cx, &lookup).await? {
            Some(live) => record.physical_id = Some(live.physical_id),
            None => {
                forget(handle, target).await.map_err(state_failure)?;
                return Ok(Outcome::Deleted);
            }
        }
    }
    tracing::debug!(
        target: "provision::engine",
        id = %id,
        kind = kind.name(),
        physical_id = record.physical_id.as_deref().unwrap_or(""),
        "deleting"
    );
    retry::retry(&cx, &[&retry::TRANSIENT], || kind.delete(&cx, &record)).await?;
    tracing::debug!(
        target: "provision::engine",
        id = %id,
        kind = kind.name(),
        physical_id = record.physical_id.as_deref().unwrap_or(""),
        "deleted"
    );
    forget(handle, target).await.map_err(state_failure)?;
    Ok(Outcome::Deleted)
}

pub(super) async fn forget(handle: &Arc<StateHandle>, target: &Target) -> Result<(), StateError> {
    handle
        .update(|s| match target {
            Target::Resource(id, _) => {
                s.resources.remove(id);
            }
            Target::Deposed(d) => {
                s.deposed.retain(|x| x != d);
            }
        })
        .await
}
