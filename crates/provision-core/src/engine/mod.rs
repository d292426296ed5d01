//! The engine: plans by reading what exists, applies in dependency order with as much
//! concurrency as the graph allows, and deletes in reverse.
//!
//! Crash safety rests on three rules, all kept here so no service crate can forget them:
//! 1. before a create, the state records the intent (name and idempotency token);
//! 2. the moment a create returns, the state records the physical id (through [`Journal`](crate::resource::Journal));
//! 3. after any other change, the state is written before the next step starts.
//!
//! A rerun after a crash reads every resource by recorded id, else by name, token or tags, so
//! it finds what the crashed run made instead of making it twice.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::event::{Event, EventSink, Outcome};
use crate::graph::GraphError;
use crate::plan::{Action, Plan};
use crate::resource::{Cx, Live, LogicalId, ResourceError, RunSettings, Stack};
use crate::state::StateError;

mod apply;
mod destroy;
mod node;
mod observe;
mod plan;
mod registry;
mod state_handle;
mod tokens;

use apply::{Msg, Shared};
use destroy::{Target, forget};
use node::run_node;
use observe::read_with_retry;
pub use observe::{Drift, Observation};
use plan::node_changes;
pub use registry::{DuplicateKind, Kinds};
pub use state_handle::StateHandle;
use state_handle::{StateJournal, state_failure};
pub use tokens::{fingerprint, fresh_token};

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

    fn cancel_requested(&self) -> bool {
        *self.cancel.borrow()
    }
}

#[cfg(test)]
mod tests;
