//! The registry of kinds: how `down` finds the code for each kind a state records.

use std::collections::HashMap;
use std::sync::Arc;

use crate::resource::Kind;

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
