//! Idempotency tokens and settings fingerprints.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::resource::{LogicalId, Settings};

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
