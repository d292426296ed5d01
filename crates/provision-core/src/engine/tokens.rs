//! Idempotency tokens and settings fingerprints.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::resource::{LogicalId, Settings};

/// A new idempotency token for one create attempt: 32 hex digits, which every service takes
/// (ACM's `IdempotencyToken` is 1-32 characters of `\w`, EC2's `ClientToken` at most 64 ASCII
/// characters, ECS's `clientToken` at most 36; see each API reference).
///
/// It must be new for every intent, never derived from the stack and logical id alone: ACM
/// treats a token it saw within the last hour as the same request and answers with the
/// certificate it made then, deleted since by a `down` (RequestCertificate, "IdempotencyToken");
/// EC2 does the same with client tokens ("Ensuring idempotency in Amazon EC2 API requests").
/// So a `down` then `up`, or a replacement, gets a token of its own. The engine records it in
/// the intent before the call, so a run killed mid-create is rerun with the same token.
///
/// The token is a hash of the stack, the logical id, the generation, the wall clock in
/// nanoseconds, the process id and a per-process counter: unique across runs and within one.
pub fn fresh_token(stack: &str, id: &LogicalId, generation: u32) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = Sha256::new();
    h.update(stack.as_bytes());
    h.update([0]);
    h.update(id.as_str().as_bytes());
    h.update([0]);
    h.update(generation.to_be_bytes());
    h.update(nanos.to_be_bytes());
    h.update(std::process::id().to_be_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
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

pub(super) fn canonical(v: &Value) -> Value {
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
