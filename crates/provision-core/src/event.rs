//! What the engine reports while it works. Library crates never print; the binary renders
//! these events (spinners on a terminal, timestamped lines otherwise, JSON for machines).

use std::time::Duration;

use serde::Serialize;

use crate::plan::Action;
use crate::resource::LogicalId;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A resource's work begins.
    Started {
        id: LogicalId,
        noun: String,
        action: Action,
        /// The physical name or id, when known.
        name: Option<String>,
    },
    /// What it is doing now (`waiting for the NAT gateway: pending`).
    Progress { id: LogicalId, message: String },
    /// Not started yet because it needs another resource first.
    Blocked { id: LogicalId, on: LogicalId },
    /// Its work is over.
    Finished {
        id: LogicalId,
        outcome: Outcome,
        #[serde(with = "secs")]
        elapsed: Duration,
    },
    Warning {
        id: Option<LogicalId>,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Replaced,
    Unchanged,
    /// Found live (after a crash or lost state) and recorded without changes.
    Adopted,
    Deleted,
    Failed(String),
    /// Not attempted because a dependency failed or the run was interrupted.
    Skipped(String),
}

/// Receives events. Implementations must be cheap: they are called from inside the engine.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}
