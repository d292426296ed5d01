//! The seam between the engine and the service crates.
//!
//! A resource kind (VPC, load balancer, role, ...) implements [`Kind`]: it can find a live
//! resource, create, update, wait for and delete one. The stack crate turns the config into
//! [`Node`]s, each a kind plus a logical id, a deterministic name, its dependencies, and a
//! function from its dependencies' outputs to its desired settings. The engine does the rest:
//! ordering, concurrency, intent records, state writes, diffs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::{Event, EventSink};
use crate::input::add_dep;
pub use crate::input::{Dep, Derived, Exists, Input, Outputs, Ready, Ref, Unresolved, Until};
pub use crate::state::Record;

/// Tag naming the stack that owns a resource.
pub const TAG_STACK: &str = "provision:stack";
/// Tag naming the logical id of a resource within its stack.
pub const TAG_ID: &str = "provision:id";

/// A resource's name within the stack, such as `network/vpc` or `endpoint/search/model`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LogicalId(String);

impl LogicalId {
    pub fn new(s: impl Into<String>) -> Self {
        LogicalId(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogicalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for LogicalId {
    fn from(s: &str) -> Self {
        LogicalId(s.to_string())
    }
}

impl From<String> for LogicalId {
    fn from(s: String) -> Self {
        LogicalId(s)
    }
}

/// Settings of a resource, desired or observed: a JSON object whose top-level keys are the
/// settings the plan compares and shows one by one.
pub type Settings = Map<String, Value>;

/// Serialises a typed spec into [`Settings`].
pub fn to_settings<T: Serialize>(spec: &T) -> Settings {
    match serde_json::to_value(spec) {
        Ok(Value::Object(m)) => m,
        Ok(other) => {
            let mut m = Map::new();
            m.insert("value".into(), other);
            m
        }
        Err(e) => {
            let mut m = Map::new();
            m.insert("unserialisable".into(), Value::String(e.to_string()));
            m
        }
    }
}

/// What a kind observed of a resource that exists.
#[derive(Clone, Debug, PartialEq)]
pub struct Live {
    /// The id or ARN the service knows it by.
    pub physical_id: String,
    /// Observed settings, with the same keys as the desired settings where AWS reports them.
    /// Keys a service does not report are left out; the plan compares those against the
    /// settings last applied.
    pub settings: Settings,
    /// What dependents may read: ids, ARNs, names, DNS names.
    pub outputs: Value,
    /// False while the resource exists but cannot be used yet (NAT gateway `pending`,
    /// endpoint `Creating`); the engine then calls [`Kind::wait_ready`].
    pub ready: bool,
    /// The service's own word for its state, for messages (`pending`, `InService`).
    pub status: Option<String>,
}

impl Live {
    pub fn new(physical_id: impl Into<String>, settings: Settings, outputs: Value) -> Self {
        Live {
            physical_id: physical_id.into(),
            settings,
            outputs,
            ready: true,
            status: None,
        }
    }
    pub fn pending(mut self, status: impl Into<String>) -> Self {
        self.ready = false;
        self.status = Some(status.into());
        self
    }
    pub fn with_status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }
    /// Reads typed outputs.
    pub fn outputs<T: DeserializeOwned>(&self) -> Result<T, ResourceError> {
        serde_json::from_value(self.outputs.clone()).map_err(|e| {
            ResourceError::fatal(format!(
                "outputs of {} are malformed: {e}",
                self.physical_id
            ))
        })
    }
}

/// What the engine asks a kind to create or update.
#[derive(Clone, Debug)]
pub struct Desired {
    pub id: LogicalId,
    /// The deterministic physical name, for kinds that have names.
    pub name: Option<String>,
    /// An idempotency token, stable across retries and reruns of the same create (and new for
    /// a replacement). At most 32 characters of `[0-9a-f]`, which every service accepts.
    pub token: String,
    pub settings: Settings,
}

impl Desired {
    /// Reads the settings as the kind's typed spec.
    pub fn spec<T: DeserializeOwned>(&self) -> Result<T, ResourceError> {
        serde_json::from_value(Value::Object(self.settings.clone())).map_err(|e| {
            ResourceError::fatal(format!("settings of {} do not fit its kind: {e}", self.id))
        })
    }
    /// The physical name, or an error naming the resource (for kinds that always have one).
    pub fn name(&self) -> Result<&str, ResourceError> {
        self.name
            .as_deref()
            .ok_or_else(|| ResourceError::fatal(format!("{} has no name", self.id)))
    }
}

/// How to find a live resource: by the id the state recorded, else by its deterministic
/// name, idempotency token or tags (after a crash the state may hold only the intent).
#[derive(Clone, Copy, Debug)]
pub struct Lookup<'a> {
    pub id: &'a LogicalId,
    pub name: Option<&'a str>,
    pub token: &'a str,
    pub record: Option<&'a Record>,
}

impl<'a> Lookup<'a> {
    /// The physical id the state recorded, if any.
    pub fn physical_id(&self) -> Option<&'a str> {
        self.record.and_then(|r| r.physical_id.as_deref())
    }
    /// The settings the state recorded (applied, or intended for a create in flight): how to
    /// find resources that carry no tags, such as routes.
    pub fn recorded_settings<T: DeserializeOwned>(&self) -> Option<T> {
        self.record
            .and_then(|r| serde_json::from_value(Value::Object(r.settings.clone())).ok())
    }
    /// The name to look for: the recorded one (the resource may predate a name change), else the wanted one.
    pub fn recorded_name(&self) -> Option<&'a str> {
        self.record.and_then(|r| r.name.as_deref()).or(self.name)
    }
}

/// Why a resource operation failed, classified so the engine knows what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Throttling, 5xx, connection trouble: retry.
    Transient,
    /// A create collided with an existing resource of the same name: look it up.
    AlreadyExists,
    /// Another change to the same resource is in progress (Lambda's update in progress,
    /// `ConcurrentModification`): retried by the policy that knows the operation, else reported.
    /// Never taken for "already exists": adopting on a conflict would adopt the wrong thing.
    Conflict,
    /// The resource belongs to another stack or to nobody we know: never touch it.
    Foreign,
    /// A wait ran past its deadline.
    Timeout,
    /// The run was interrupted.
    Cancelled,
    /// Anything else: report it.
    Fatal,
}

/// An error from a resource operation, with a hint that tells the user what to do.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct ResourceError {
    pub class: ErrorClass,
    pub message: String,
    pub hint: Option<String>,
    /// The AWS error code, when the error came from AWS.
    pub code: Option<String>,
    /// The call that failed, when the error came from AWS (boxed: errors travel in every
    /// `Result`, and most have none).
    pub call: Option<Box<FailedCall>>,
}

/// The AWS call behind an error: what AWS support asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailedCall {
    /// `service:Operation`, as IAM spells it: `ec2:CreateRoute`.
    pub operation: String,
    /// The id AWS gave the request.
    pub request_id: Option<String>,
}

impl ResourceError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        ResourceError {
            class,
            message: message.into(),
            hint: None,
            code: None,
            call: None,
        }
    }
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Fatal, message)
    }
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Timeout, message)
    }
    pub fn foreign(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Foreign, message)
    }
    pub fn cancelled() -> Self {
        Self::new(ErrorClass::Cancelled, "interrupted")
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
    pub fn with_operation(mut self, operation: impl Into<String>) -> Self {
        self.call.get_or_insert_with(Default::default).operation = operation.into();
        self
    }
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.call.get_or_insert_with(Default::default).request_id = Some(request_id.into());
        self
    }
    /// The failed operation (`ec2:CreateRoute`), when the error came from AWS.
    pub fn operation(&self) -> Option<&str> {
        self.call
            .as_ref()
            .map(|c| c.operation.as_str())
            .filter(|o| !o.is_empty())
    }
    /// The id AWS gave the failed request.
    pub fn request_id(&self) -> Option<&str> {
        self.call.as_ref().and_then(|c| c.request_id.as_deref())
    }
    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }
}

/// Who owns a resource, judged by its tags.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    /// Tagged with this stack and this logical id.
    Ours,
    /// Tagged with this stack but another logical id.
    OtherId(String),
    /// Tagged with another stack.
    OtherStack(String),
    /// Carries no provision tags.
    Unmanaged,
}

/// The stack a run works on: what every tag and name derives from.
#[derive(Clone, Debug)]
pub struct Stack {
    /// The `provision:stack` tag and the prefix of every physical name (`<app>-<environment>`).
    pub name: String,
    pub account: String,
    pub region: String,
}

/// Knobs that apply to every wait of a run.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// Multiplies every polling interval and backoff (`PROVISION_WAIT_SCALE`).
    pub wait_scale: f64,
    /// Per-kind deadline overrides, keyed like `nat-gateway` or `certificate`.
    pub timeouts: HashMap<String, Duration>,
    /// Multiplies every default deadline (so scaled-down benchmarks also time out sooner).
    pub timeout_scale: f64,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            wait_scale: 1.0,
            timeouts: HashMap::new(),
            timeout_scale: 1.0,
        }
    }
}

/// Receives the physical id of a resource the moment a create call returns, before any
/// wait, so a crash during the wait leaves the state pointing at the resource.
#[async_trait]
pub trait Journal: Send + Sync {
    async fn created(&self, id: &LogicalId, live: &Live) -> Result<(), ResourceError>;
}

/// What a kind's operation gets from the engine: who it is, the stack, progress reporting,
/// deadlines and cancellation.
#[derive(Clone)]
pub struct Cx {
    id: LogicalId,
    stack: Arc<Stack>,
    events: Arc<dyn EventSink>,
    journal: Option<Arc<dyn Journal>>,
    settings: Arc<RunSettings>,
    cancel: Option<tokio::sync::watch::Receiver<bool>>,
}

impl fmt::Debug for Cx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cx").field("id", &self.id).finish()
    }
}

struct NoEvents;
impl EventSink for NoEvents {
    fn emit(&self, _event: Event) {}
}

impl Cx {
    pub fn new(
        id: LogicalId,
        stack: Arc<Stack>,
        events: Arc<dyn EventSink>,
        settings: Arc<RunSettings>,
    ) -> Self {
        Cx {
            id,
            stack,
            events,
            journal: None,
            settings,
            cancel: None,
        }
    }

    /// A context outside any engine run (tools and tests): no events, no journal.
    pub fn detached(id: impl Into<LogicalId>, stack: Stack) -> Self {
        Cx::new(
            id.into(),
            Arc::new(stack),
            Arc::new(NoEvents),
            Arc::new(RunSettings::default()),
        )
    }

    pub fn with_journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    pub fn with_cancel(mut self, cancel: tokio::sync::watch::Receiver<bool>) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// The same context for another resource.
    pub fn for_id(&self, id: LogicalId) -> Self {
        Cx { id, ..self.clone() }
    }

    pub fn id(&self) -> &LogicalId {
        &self.id
    }
    pub fn stack(&self) -> &Stack {
        &self.stack
    }
    pub fn stack_name(&self) -> &str {
        &self.stack.name
    }
    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    /// The tags every taggable resource carries.
    pub fn tags(&self) -> Vec<(String, String)> {
        vec![
            (TAG_STACK.to_string(), self.stack.name.clone()),
            (TAG_ID.to_string(), self.id.to_string()),
        ]
    }

    /// Judges ownership from a resource's tags.
    pub fn owner<'t>(&self, tags: impl IntoIterator<Item = (&'t str, &'t str)>) -> Owner {
        let mut stack = None;
        let mut id = None;
        for (k, v) in tags {
            match k {
                TAG_STACK => stack = Some(v),
                TAG_ID => id = Some(v),
                _ => {}
            }
        }
        match (stack, id) {
            (None, _) => Owner::Unmanaged,
            (Some(s), _) if s != self.stack.name => Owner::OtherStack(s.to_string()),
            (Some(_), Some(i)) if i == self.id.as_str() => Owner::Ours,
            (Some(_), Some(i)) => Owner::OtherId(i.to_string()),
            (Some(_), None) => Owner::Unmanaged,
        }
    }

    /// `Ok` when the tags say the resource is this one of this stack; otherwise an error that
    /// says whose it is and what to do. `what` names it for the message (`VPC vpc-123`).
    pub fn ensure_ours<'t>(
        &self,
        what: &str,
        tags: impl IntoIterator<Item = (&'t str, &'t str)>,
    ) -> Result<(), ResourceError> {
        let whose = match self.owner(tags) {
            Owner::Ours => return Ok(()),
            Owner::OtherId(i) => format!("is {i} of this stack, not {}", self.id),
            Owner::OtherStack(s) => format!("belongs to stack {s}"),
            Owner::Unmanaged => {
                "is not managed by provision (it has no provision:stack tag)".to_string()
            }
        };
        Err(ResourceError::foreign(format!(
            "refusing to manage {what}: it {whose}"
        ))
        .with_hint(format!(
            "provision only changes and deletes resources tagged {TAG_STACK}={} and {TAG_ID}={}. If the state file was edited or copied from another stack, restore it; if a resource of that name exists outside provision, rename or delete it.",
            self.stack.name, self.id
        )))
    }

    /// Reports what the resource is doing now (`waiting for the NAT gateway: pending`).
    pub fn progress(&self, message: impl Into<String>) {
        self.events.emit(Event::Progress {
            id: self.id.clone(),
            message: message.into(),
        });
    }

    /// Reports a warning about this resource.
    pub fn warn(&self, message: impl Into<String>) {
        self.events.emit(Event::Warning {
            id: Some(self.id.clone()),
            message: message.into(),
        });
    }

    /// Records a just-created resource in the state before anything else happens to it.
    pub async fn created(&self, live: &Live) -> Result<(), ResourceError> {
        match &self.journal {
            Some(j) => j.created(&self.id, live).await,
            None => Ok(()),
        }
    }

    /// The deadline for a wait or a retry: the user's override of `timeout.key`, else its
    /// default (scaled).
    pub fn timeout(&self, timeout: &crate::wait::Timeout) -> Duration {
        self.settings
            .timeouts
            .get(timeout.key)
            .copied()
            .unwrap_or_else(|| {
                timeout
                    .default
                    .mul_f64(self.settings.timeout_scale.max(0.0))
            })
    }

    /// Scales a polling interval or backoff by `PROVISION_WAIT_SCALE`.
    pub fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.settings.wait_scale.max(0.0))
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| *c.borrow())
    }

    /// Sleeps for `d` (already scaled), returning early with an error if the run is interrupted.
    pub async fn sleep(&self, d: Duration) -> Result<(), ResourceError> {
        match &self.cancel {
            None => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Some(rx) => {
                let mut rx = rx.clone();
                if *rx.borrow() {
                    return Err(ResourceError::cancelled());
                }
                tokio::select! {
                    _ = tokio::time::sleep(d) => Ok(()),
                    _ = rx.wait_for(|c| *c) => Err(ResourceError::cancelled()),
                }
            }
        }
    }
}

/// A kind of resource and how to manage it through its service's API.
///
/// Implementations hold the SDK client. Every method is called with the resource's context;
/// none writes state (the engine does) and none prints (events go through [`Cx::progress`]).
#[async_trait]
pub trait Kind: Send + Sync + 'static {
    /// A stable identifier stored in the state, such as `ec2.vpc`.
    fn name(&self) -> &'static str;

    /// What a user calls it, for messages and plans: `VPC`, `NAT gateway`.
    fn noun(&self) -> &'static str;

    /// Settings that cannot change in place: a change to one replaces the resource.
    fn replace_on(&self) -> &'static [&'static str] {
        &[]
    }

    /// When replacing, create the new resource before deleting the old one (which then waits
    /// until every dependent has switched over). Only for kinds whose name changes with their
    /// settings, since two resources of one name cannot exist at once.
    fn create_before_delete(&self) -> bool {
        false
    }

    /// Whether an update gives the resource new outputs (a task definition's update registers a
    /// new revision, with a new ARN), so the plan shows what uses them as changing too.
    fn update_changes_outputs(&self) -> bool {
        false
    }

    /// Finds the live resource, or `None` if it does not exist. Must not change anything.
    /// A resource that exists but is not tagged as this one of this stack is an error of
    /// class [`ErrorClass::Foreign`].
    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError>;

    /// Creates the resource, tagged, with `desired.name` and `desired.token`. Returns as soon as
    /// the service has accepted it (call [`Cx::created`] first if more calls follow); readiness
    /// is [`Kind::wait_ready`]'s job.
    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError>;

    /// Checks, before any change to a live resource, that it is this stack's. A kind whose
    /// `read` always checks tags needs nothing here (the default). A kind whose read trusts a
    /// recorded id, to keep a no-op rerun at one call per resource when its describe call
    /// carries no tags, checks the tags here, so a state edited to point at someone else's
    /// resource is refused before anything is changed.
    async fn verify_owner(&self, cx: &Cx, live: &Live) -> Result<(), ResourceError> {
        let _ = (cx, live);
        Ok(())
    }

    /// Changes the settings named in `changed` (none of them in [`Kind::replace_on`]).
    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        changed: &[String],
    ) -> Result<Live, ResourceError> {
        let _ = (cx, desired, changed);
        Err(ResourceError::fatal(format!(
            "{} {} cannot be changed in place",
            self.noun(),
            live.physical_id
        )))
    }

    /// Waits until a resource that exists is usable. Called when [`Live::ready`] is false.
    async fn wait_ready(&self, cx: &Cx, live: Live) -> Result<Live, ResourceError> {
        let _ = cx;
        Ok(live)
    }

    /// Deletes the resource the record describes and waits until it is gone, so that what it
    /// depended on can be deleted next. A resource already gone is success. Checks ownership
    /// first: never deletes what is not tagged as this stack's.
    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError>;
}

/// One resource of the stack: a kind, an identity, and desired settings computed from what it
/// reads (see [`crate::input`]). Its dependencies are what its settings read, plus what it is
/// explicitly ordered after.
pub struct Node {
    pub id: LogicalId,
    pub kind: Arc<dyn Kind>,
    pub name: Option<String>,
    spec: Derived<Settings>,
    /// Dependencies whose outputs it does not read.
    ordering: Vec<Dep>,
    /// Both of the above, each id once.
    deps: Vec<Dep>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("kind", &self.kind.name())
            .field("name", &self.name)
            .field("deps", &self.deps)
            .finish()
    }
}

impl Node {
    /// A node with no settings and no dependencies yet.
    pub fn new(id: impl Into<LogicalId>, kind: Arc<dyn Kind>) -> Self {
        Node {
            id: id.into(),
            kind,
            name: None,
            spec: Derived::new((), |()| Settings::new()),
            ordering: Vec::new(),
            deps: Vec::new(),
        }
    }

    /// Its deterministic physical name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Its desired settings: `f` of the values of `input`, which become its dependencies. `f`
    /// sees nothing else, so a dependency cannot be read without being declared.
    pub fn spec<I, S, F>(mut self, input: I, f: F) -> Self
    where
        I: Input,
        S: Serialize,
        F: Fn(I::Value) -> S + Send + Sync + 'static,
    {
        self.spec = Derived::new(input, move |value| to_settings(&f(value)));
        self.update_deps();
        self
    }

    /// Desired settings that read nothing from other nodes.
    pub fn fixed<S: Serialize>(self, spec: &S) -> Self {
        let settings = to_settings(spec);
        self.spec((), move |()| settings.clone())
    }

    /// Starts only once `dep` exists (`Until::Exists`) or is ready (`Until::Ready`), without
    /// reading its outputs: for what must be in place first, such as the policies of a role the
    /// node passes to a service, or the route that gives a service's tasks a way out.
    pub fn ordered_after<T>(mut self, dep: &Ref<T>, until: Until) -> Self {
        add_dep(
            &mut self.ordering,
            Dep {
                id: dep.id().clone(),
                until,
            },
        );
        self.update_deps();
        self
    }

    fn update_deps(&mut self) {
        let mut deps = self.spec.deps().to_vec();
        for d in &self.ordering {
            add_dep(&mut deps, d.clone());
        }
        self.deps = deps;
    }

    /// Everything it waits for, each id once: what its settings read, then what it is ordered
    /// after.
    pub fn deps(&self) -> &[Dep] {
        &self.deps
    }

    /// Its desired settings, from the outputs published so far. It sees only the outputs of
    /// what it reads: [`Unresolved`] when one of those is not known yet.
    pub fn settings(&self, outputs: &HashMap<LogicalId, Value>) -> Result<Settings, Unresolved> {
        self.spec.eval(outputs)
    }

    /// A typed handle on this node's outputs.
    pub fn handle<T>(&self) -> Ref<T> {
        Ref::new(self.id.clone())
    }
}
