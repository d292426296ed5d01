//! The heart of `provision`: deterministic names, the resource graph, the state file (atomic
//! writes, intent records, lock), plans and the concurrent engine that applies them.
//!
//! It knows no application: the config of the app it deploys is `provision-config`'s, the
//! app's resources are `provision-stack`'s.
//!
//! Invariant: this crate depends on no AWS SDK crate. Resources reach it through the
//! [`resource::Kind`] trait, implemented by the service crates.

pub mod engine;
pub mod event;
pub mod graph;
pub mod input;
pub mod names;
pub mod plan;
pub mod platform;
pub mod resource;
pub mod retry;
pub mod state;
pub mod suggest;
mod time;
pub mod wait;

pub use resource::{Cx, Desired, FailedCall, Kind, Live, LogicalId, Lookup, Record, ResourceError};
