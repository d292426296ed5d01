//! The heart of `provision`: the config model and its validation, deterministic names,
//! the resource graph, the state file (atomic writes, intent records, lock), plans and the
//! concurrent engine that applies them.
//!
//! Invariant: this crate depends on no AWS SDK crate. Resources reach it through the
//! [`resource::Kind`] trait, implemented by the service crates.

pub mod config;
pub mod engine;
pub mod event;
pub mod graph;
pub mod names;
pub mod plan;
pub mod resource;
pub mod retry;
pub mod state;
mod time;
pub mod wait;

pub use config::Config;
pub use resource::{Cx, Desired, FailedCall, Kind, Live, LogicalId, Lookup, Record, ResourceError};
