//! The engine: plans by reading what exists, applies in dependency order with as much
//! concurrency as the graph allows, and deletes in reverse.
//!
//! Crash safety rests on three rules, all kept here so no service crate can forget them:
//! 1. before a create, the state records the intent (name and idempotency token);
//! 2. the moment a create returns, the state records the physical id (through [`Journal`]);
//! 3. after any other change, the state is written before the next step starts.
//!
//! A rerun after a crash reads every resource by recorded id, else by name, token or tags, so
//! it finds what the crashed run made instead of making it twice.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::event::{Event, EventSink, Outcome};
use crate::graph::{Graph, GraphError};
use crate::plan::{Action, Change, Plan, Step, diff};
use crate::resource::{
    Cx, Desired, ErrorClass, Inputs, Journal, Kind, Live, LogicalId, Lookup, ResourceError,
    RunSettings, Settings, Stack, Until,
};
use crate::state::{Deposed, Record, State, StateError, StateStore, Status};
use crate::time;

/// Every kind the stack uses, by [`Kind::name`]: how `down` finds the code to delete a record.
#[derive(Clone, Default)]
pub struct Kinds(HashMap<String, Arc<dyn Kind>>);

impl Kinds {
    pub fn new() -> Self {
        Kinds(HashMap::new())
    }
    pub fn add(&mut self, kind: Arc<dyn Kind>) {
        self.0.insert(kind.name().to_string(), kind);
    }
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Kind>> {
        self.0.get(name)
    }
}

/// The state being worked on; every change is saved before the next step.
pub struct StateHandle {
    store: Arc<dyn StateStore>,
    state: Mutex<State>,
}

impl StateHandle {
    pub fn new(store: Arc<dyn StateStore>, state: State) -> Arc<Self> {
        Arc::new(StateHandle {
            store,
            state: Mutex::new(state),
        })
    }

    /// Applies `f` and saves. Writes are serialised, so the file always holds the latest change.
    pub async fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> Result<R, StateError> {
        let mut state = self.state.lock().await;
        let r = f(&mut state);
        state.serial += 1;
        state.updated_at = time::now_rfc3339();
        self.store.save(&state).await?;
        Ok(r)
    }

    pub async fn snapshot(&self) -> State {
        self.state.lock().await.clone()
    }

    pub async fn record(&self, id: &LogicalId) -> Option<Record> {
        self.state.lock().await.resources.get(id).cloned()
    }
}

/// How a run went, resource by resource.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub created: usize,
    pub updated: usize,
    pub replaced: usize,
    pub unchanged: usize,
    pub adopted: usize,
    pub deleted: usize,
    pub failed: usize,
    pub skipped: usize,
    #[serde(with = "secs")]
    pub elapsed: Duration,
}

impl Summary {
    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Created => self.created += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Replaced => self.replaced += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Adopted => self.adopted += 1,
            Outcome::Deleted => self.deleted += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::Skipped(_) => self.skipped += 1,
        }
    }
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

/// One resource that failed.
#[derive(Clone, Debug)]
pub struct Failure {
    pub id: LogicalId,
    pub noun: String,
    pub action: Action,
    pub error: ResourceError,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "could not {} {} ({}): {}",
            self.action.verb(),
            self.noun,
            self.id,
            self.error
        )
    }
}

/// Why a run did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{}", failures_text(.failures))]
    Failed {
        failures: Vec<Failure>,
        summary: Summary,
    },
    #[error(
        "interrupted; the state records everything done so far, so rerunning continues from there"
    )]
    Cancelled { summary: Summary },
}

fn failures_text(failures: &[Failure]) -> String {
    match failures {
        [one] => one.to_string(),
        many => {
            let mut s = format!("{} resources failed:", many.len());
            for f in many {
                s.push_str(&format!("\n  - {f}"));
            }
            s
        }
    }
}

/// A plan together with what was read to make it, ready to apply.
pub struct Prepared {
    pub plan: Plan,
    observed: HashMap<LogicalId, Option<Live>>,
    order: Vec<LogicalId>,
}

/// Runs plans, applies and destroys for one stack.
pub struct Engine {
    stack: Arc<Stack>,
    events: Arc<dyn EventSink>,
    settings: Arc<RunSettings>,
    concurrency: usize,
    cancel: watch::Receiver<bool>,
}

/// A deterministic idempotency token: 32 hex digits, the same for every retry and rerun of
/// one create, different for a replacement.
pub fn token_for(stack: &str, id: &LogicalId, generation: u32) -> String {
    let mut h = Sha256::new();
    h.update(stack.as_bytes());
    h.update([0]);
    h.update(id.as_str().as_bytes());
    h.update([0]);
    h.update(generation.to_be_bytes());
    let mut s = hex::encode(h.finalize());
    s.truncate(32);
    s
}

/// SHA-256 of the canonical JSON of a resource's settings.
pub fn fingerprint(settings: &Settings) -> String {
    let text =
        serde_json::to_string(&canonical(&Value::Object(settings.clone()))).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn record_from_live(
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

/// Writes the physical id into the state as soon as a create returns.
struct StateJournal {
    handle: Arc<StateHandle>,
}

#[async_trait]
impl Journal for StateJournal {
    async fn created(&self, id: &LogicalId, live: &Live) -> Result<(), ResourceError> {
        self.handle
            .update(|s| {
                if let Some(r) = s.resources.get_mut(id) {
                    r.physical_id = Some(live.physical_id.clone());
                    r.outputs = live.outputs.clone();
                    if r.status == Status::Creating {
                        r.status = Status::Created;
                    }
                    r.updated_at = time::now_rfc3339();
                }
            })
            .await
            .map_err(|e| ResourceError::fatal(format!("could not record {id} in the state: {e}")))
    }
}

enum Msg {
    Exists(LogicalId),
    Done(LogicalId, Action, Result<Outcome, ResourceError>),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Waiting,
    Running,
    Exists,
    Ready,
    Failed,
    Skipped,
}

/// What a running node needs, shared across tasks.
struct Shared {
    graph: Arc<Graph>,
    handle: Arc<StateHandle>,
    outputs: RwLock<HashMap<LogicalId, Value>>,
    engine: EngineParts,
}

#[derive(Clone)]
struct EngineParts {
    stack: Arc<Stack>,
    events: Arc<dyn EventSink>,
    settings: Arc<RunSettings>,
    cancel: watch::Receiver<bool>,
}

impl EngineParts {
    fn cx(&self, id: &LogicalId, handle: &Arc<StateHandle>) -> Cx {
        Cx::new(
            id.clone(),
            self.stack.clone(),
            self.events.clone(),
            self.settings.clone(),
        )
        .with_journal(Arc::new(StateJournal {
            handle: handle.clone(),
        }))
        .with_cancel(self.cancel.clone())
    }
    fn emit(&self, e: Event) {
        self.events.emit(e);
    }
}

fn state_failure(e: StateError) -> ResourceError {
    ResourceError::fatal(format!("could not write the state: {e}"))
        .with_hint("check the state file's folder is writable (or the S3 bucket reachable), then rerun; nothing is lost")
}

impl Engine {
    pub fn new(
        stack: Stack,
        events: Arc<dyn EventSink>,
        settings: RunSettings,
        cancel: watch::Receiver<bool>,
    ) -> Self {
        Engine {
            stack: Arc::new(stack),
            events,
            settings: Arc::new(settings),
            concurrency: 32,
            cancel,
        }
    }

    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    fn parts(&self) -> EngineParts {
        EngineParts {
            stack: self.stack.clone(),
            events: self.events.clone(),
            settings: self.settings.clone(),
            cancel: self.cancel.clone(),
        }
    }

    fn detached_cx(&self, id: &LogicalId) -> Cx {
        Cx::new(
            id.clone(),
            self.stack.clone(),
            self.events.clone(),
            self.settings.clone(),
        )
        .with_cancel(self.cancel.clone())
    }

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
                .unwrap_or_else(|| token_for(&self.stack.name, &id, 0));
            let cx = self.detached_cx(&id);
            let semaphore = semaphore.clone();
            reads.spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                let lookup = Lookup {
                    id: &id,
                    name: name.as_deref(),
                    token: &token,
                    record: record.as_ref(),
                };
                let result = read_with_retry(kind.as_ref(), &cx, &lookup).await;
                (id, result)
            });
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
            let desired = (node.spec)(&Inputs::new(&known));
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
                        .deps
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
                    let satisfied = node.deps.iter().all(|d| match phase.get(&d.id) {
                        Some(Phase::Ready) => true,
                        Some(Phase::Exists) => d.until == Until::Exists,
                        _ => false,
                    });
                    if !satisfied {
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
                    tasks.spawn(async move {
                        let _permit = semaphore.acquire_owned().await;
                        let (action, result) = run_node(&shared, &id, live, &tx).await;
                        let _ = tx.send(Msg::Done(id, action, result));
                    });
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
            match graph.outputs(&Inputs::new(&outputs)) {
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

    /// Reads every recorded resource as it is now, concurrently. Makes no mutating call.
    pub async fn observe(&self, state: &State, kinds: &Kinds) -> Vec<Observation> {
        let semaphore = Arc::new(Semaphore::new(self.concurrency));
        let mut reads = JoinSet::new();
        for (id, record) in &state.resources {
            let (id, record) = (id.clone(), record.clone());
            let kind = kinds.get(&record.kind).cloned();
            let cx = self.detached_cx(&id);
            let semaphore = semaphore.clone();
            reads.spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                let (noun, live) = match kind {
                    None => (
                        record.kind.clone(),
                        Err(ResourceError::fatal(format!(
                            "`{}` is not a kind this provision knows",
                            record.kind
                        ))),
                    ),
                    Some(kind) => {
                        let lookup = Lookup {
                            id: &id,
                            name: record.name.as_deref(),
                            token: &record.token,
                            record: Some(&record),
                        };
                        (
                            kind.noun().to_string(),
                            read_with_retry(kind.as_ref(), &cx, &lookup).await,
                        )
                    }
                };
                Observation {
                    id,
                    noun,
                    record,
                    live,
                }
            });
        }
        let mut out = Vec::new();
        while let Some(joined) = reads.join_next().await {
            if let Ok(o) = joined {
                out.push(o);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    fn cancel_requested(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Deletes `targets`, each only after everything that depends on it is gone.
    async fn delete_targets(
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
                tasks.spawn(async move {
                    let _permit = semaphore.acquire_owned().await;
                    let t0 = Instant::now();
                    let result = delete_one(&parts, &handle, kind, &target).await;
                    let _ = tx.send((i, result, t0.elapsed()));
                });
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

/// A recorded resource as AWS shows it now.
#[derive(Debug)]
pub struct Observation {
    pub id: LogicalId,
    pub noun: String,
    pub record: Record,
    /// `Ok(None)`: it is gone.
    pub live: Result<Option<Live>, ResourceError>,
}

/// How a resource differs from what the state says was applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "drift", rename_all = "snake_case")]
pub enum Drift {
    /// Deleted outside provision.
    Deleted,
    /// Settings changed outside provision (old = recorded, new = live).
    Changed { changes: Vec<Change> },
}

impl Observation {
    /// The drift this observation shows, if any. Only settings the service reports can drift;
    /// an intent that never became a resource is not drift.
    pub fn drift(&self) -> Option<Drift> {
        match &self.live {
            Err(_) => None,
            Ok(None) if self.record.status == Status::Creating => None,
            Ok(None) => Some(Drift::Deleted),
            Ok(Some(live)) => {
                let recorded: Settings = self
                    .record
                    .settings
                    .iter()
                    .filter(|(k, _)| live.settings.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let changes = diff(&live.settings, &recorded, None, &[])
                    .into_iter()
                    .filter(|c| c.old.is_some())
                    .map(|c| Change {
                        setting: c.setting,
                        old: c.old,
                        new: c.new,
                        forces_replacement: false,
                    })
                    .collect::<Vec<_>>();
                (!changes.is_empty()).then_some(Drift::Changed { changes })
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Target {
    Resource(LogicalId, Record),
    Deposed(Deposed),
}

impl Target {
    fn id(&self) -> &LogicalId {
        match self {
            Target::Resource(id, _) => id,
            Target::Deposed(d) => &d.id,
        }
    }
    fn record(&self) -> &Record {
        match self {
            Target::Resource(_, r) => r,
            Target::Deposed(d) => &d.record,
        }
    }
}

async fn delete_one(
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
    let mut attempt = 0;
    loop {
        match kind.delete(&cx, &record).await {
            Ok(()) => break,
            Err(e) if e.is_transient() && attempt < 5 => {
                attempt += 1;
                cx.sleep(cx.scaled(Duration::from_millis(500 * (1 << attempt))))
                    .await?;
            }
            Err(e) => return Err(e),
        }
    }
    forget(handle, target).await.map_err(state_failure)?;
    Ok(Outcome::Deleted)
}

async fn forget(handle: &Arc<StateHandle>, target: &Target) -> Result<(), StateError> {
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

/// Reads, retrying transient errors a few times (the SDK already retried each call).
async fn read_with_retry(
    kind: &dyn Kind,
    cx: &Cx,
    lookup: &Lookup<'_>,
) -> Result<Option<Live>, ResourceError> {
    let mut attempt = 0;
    loop {
        match kind.read(cx, lookup).await {
            Err(e) if e.is_transient() && attempt < 4 => {
                attempt += 1;
                cx.sleep(cx.scaled(Duration::from_millis(400 * (1 << attempt))))
                    .await?;
            }
            other => return other,
        }
    }
}

/// The changes between what a node wants and what is live, including a rename (which
/// always replaces: names are identities).
fn node_changes(
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

/// Applies one node. Returns the action it took (for failure messages) and its outcome.
async fn run_node(
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
    let deps: Vec<LogicalId> = node.deps.iter().map(|d| d.id.clone()).collect();
    let desired_settings = {
        let outputs = shared.outputs.read().map(|o| o.clone()).unwrap_or_default();
        match (node.spec)(&Inputs::new(&outputs)) {
            Ok(s) => s,
            Err(u) => {
                return (
                    Action::Noop,
                    Err(ResourceError::fatal(format!(
                        "internal error: {id} needs the outputs of {}, which it does not depend on",
                        u.0
                    ))),
                );
            }
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
                .unwrap_or_else(|| token_for(&parts.stack.name, id, 0));
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
        .unwrap_or_else(|| token_for(&parts.stack.name, id, 0));
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
    publish(&updated);
    match finish_ready(shared, &cx, kind, updated).await {
        Ok(_) => (Action::Update, Ok(Outcome::Updated)),
        Err(e) => (Action::Update, Err(e)),
    }
}

/// Waits for readiness if needed and records it.
async fn finish_ready(
    shared: &Arc<Shared>,
    cx: &Cx,
    kind: &dyn Kind,
    live: Live,
) -> Result<Live, ResourceError> {
    if live.ready {
        return Ok(live);
    }
    let ready = kind.wait_ready(cx, live).await?;
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
async fn converge_found(
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
async fn create(
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
    let token = match &existing {
        Some(r) if r.status == Status::Creating && r.generation == generation => r.token.clone(),
        _ => token_for(&parts.stack.name, id, generation),
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
    let mut attempt = 0u32;
    let live = loop {
        match kind.create(cx, &desired).await {
            Ok(live) => break live,
            Err(e)
                if matches!(e.class, ErrorClass::Transient | ErrorClass::AlreadyExists)
                    && attempt < 6 =>
            {
                attempt += 1;
                // The create may have happened even though we did not hear so: look first.
                let lookup = Lookup {
                    id,
                    name: node.name.as_deref(),
                    token: &token,
                    record: Some(&intent_for_lookup),
                };
                match kind.read(cx, &lookup).await {
                    Ok(Some(found)) => {
                        cx.progress(format!(
                            "found the {} an earlier attempt created",
                            kind.noun()
                        ));
                        break converge_found(cx, kind, &desired, found).await?;
                    }
                    Ok(None)
                    | Err(ResourceError {
                        class: ErrorClass::Transient,
                        ..
                    }) => {
                        cx.progress(format!("retrying after: {}", e.message));
                        cx.sleep(cx.scaled(Duration::from_millis(500 * (1 << attempt.min(5)))))
                            .await?;
                    }
                    Err(other) => return Err(other),
                }
            }
            Err(e) => return Err(e),
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

#[cfg(test)]
mod tests;
