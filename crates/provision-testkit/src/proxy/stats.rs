//! What the proxy saw and did, for assertions and for the benchmark's report.

use std::collections::BTreeMap;

use serde::Serialize;

/// A snapshot of the proxy's counters since it started or was last reset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// API calls received (every attempt, including the ones answered with a fault). The
    /// proxy's control endpoints and moto's `/moto-api` are not counted.
    pub total: u64,
    /// Of `total`, the mutating ones.
    pub mutating: u64,
    /// Calls that reached the emulator.
    pub forwarded: u64,
    /// Per `service:Operation`.
    pub operations: BTreeMap<String, OperationStats>,
    /// Faults injected, by type.
    pub faults: FaultCounts,
    /// Requests (or replies) held by a freeze and never answered.
    pub held: u64,
    /// Responses the latency model changed (a resource shown still pending) and calls it
    /// refused (a role not yet usable...), by modelled kind.
    pub modelled: BTreeMap<String, u64>,
    /// What strict mode refused, injected and replayed.
    pub strict: StrictCounts,
}

/// Strict mode's doings ([`Strict`](crate::proxy::Strict)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StrictCounts {
    /// Requests refused, by rule (`ec2.security_group_description`...).
    pub refused: BTreeMap<String, u64>,
    /// Transient errors injected, by [`Injection`](crate::proxy::Injection) name.
    pub injected: BTreeMap<String, u64>,
    /// ACM requests answered from the idempotency memory (`acm_idempotency_token`, and
    /// `acm_idempotency_token_deleted_certificate` when that ARN's certificate was deleted).
    pub replayed: BTreeMap<String, u64>,
    /// The first refusals and replays, `service:Operation rule: Code: message`, for
    /// assertion messages (at most [`StrictCounts::LOGGED`]).
    pub log: Vec<String>,
}

impl StrictCounts {
    pub const LOGGED: usize = 100;

    /// Refusals of every rule.
    pub fn refusals(&self) -> u64 {
        self.refused.values().sum()
    }
}

/// The calls of one operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OperationStats {
    /// Attempts received.
    pub calls: u64,
    pub mutating: bool,
    /// Faults injected into this operation's calls (all types).
    pub faults: u64,
}

/// Faults injected, by type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Answered with the service's throttling error (never forwarded).
    pub throttle: u64,
    /// Answered with the service's 500 internal error (never forwarded).
    pub server_error: u64,
    /// Forwarded and done by the emulator, but the client was told otherwise.
    pub drop_reply: u64,
    /// Held back before forwarding.
    pub delay: u64,
}

impl FaultCounts {
    pub fn total(&self) -> u64 {
        self.throttle + self.server_error + self.drop_reply + self.delay
    }
}

impl Stats {
    /// Calls of one `service:Operation` (0 if none).
    pub fn calls(&self, key: &str) -> u64 {
        self.operations.get(key).map_or(0, |o| o.calls)
    }

    /// The number of replies dropped.
    pub fn dropped_replies(&self) -> u64 {
        self.faults.drop_reply
    }
}
