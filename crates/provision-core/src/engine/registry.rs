//! The registry of kinds: how `down` finds the code for each kind a state records.

use std::collections::HashMap;
use std::sync::Arc;

use crate::resource::Kind;

/// Every kind the stack uses, by [`Kind::name`]: how `down` finds the code to delete a record.
#[derive(Clone, Default)]
pub struct Kinds(HashMap<String, Arc<dyn Kind>>);

/// Two kinds with one name: a state record names its kind, so it could not say which of the
/// two manages it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "two resource kinds are named `{0}`: a state record names its kind, so it could not say which one manages it"
)]
pub struct DuplicateKind(pub String);

impl Kinds {
    pub fn new() -> Self {
        Kinds(HashMap::new())
    }

    /// A registry of `kinds`, refusing two with one name.
    pub fn of(kinds: impl IntoIterator<Item = Arc<dyn Kind>>) -> Result<Self, DuplicateKind> {
        let mut registry = Kinds::new();
        for k in kinds {
            registry.add(k)?;
        }
        Ok(registry)
    }

    /// Adds `kind`, unless a kind of that name is there already.
    pub fn add(&mut self, kind: Arc<dyn Kind>) -> Result<(), DuplicateKind> {
        match self.0.entry(kind.name().to_string()) {
            std::collections::hash_map::Entry::Occupied(e) => Err(DuplicateKind(e.key().clone())),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(kind);
                Ok(())
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Kind>> {
        self.0.get(name)
    }

    /// The names of every kind, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
