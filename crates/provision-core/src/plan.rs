//! What `up` would do, resource by resource, setting by setting.

use serde::Serialize;
use serde_json::Value;

use crate::resource::{LogicalId, Settings};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    /// Exists, unchanged, but not ready yet (a rerun after an interrupted wait).
    Wait,
    /// Exists and unchanged, but the state did not know it: it will be recorded.
    Adopt,
    Noop,
}

impl Action {
    pub fn is_change(self) -> bool {
        !matches!(self, Action::Noop | Action::Wait)
    }
    pub fn verb(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Wait => "wait for",
            Action::Adopt => "record",
            Action::Noop => "keep",
        }
    }
}

/// One setting that differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    pub setting: String,
    /// `None` when the setting is not set now (or is not known).
    pub old: Option<Value>,
    /// `None` when the new value is known only after a dependency is created.
    pub new: Option<Value>,
    pub forces_replacement: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    pub id: LogicalId,
    pub kind: String,
    pub noun: String,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// Why, in words, when the changes alone do not say (`depends on network/vpc, which is replaced`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.steps.iter().any(|s| s.action.is_change())
    }
    pub fn count(&self, action: Action) -> usize {
        self.steps.iter().filter(|s| s.action == action).count()
    }
}

/// The settings that differ between what is wanted and what is live.
///
/// A key the live resource does not report is compared with `applied`, the settings the last
/// successful run applied; a service that hides a setting cannot be checked for drift on it,
/// but a change in the config still shows.
pub fn diff(
    desired: &Settings,
    live: &Settings,
    applied: Option<&Settings>,
    replace_on: &[&str],
) -> Vec<Change> {
    let mut out = Vec::new();
    for (key, want) in desired {
        let have = live.get(key).or_else(|| applied.and_then(|a| a.get(key)));
        if have != Some(want) {
            out.push(Change {
                setting: key.clone(),
                old: have.cloned(),
                new: Some(want.clone()),
                forces_replacement: replace_on.contains(&key.as_str()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(v: Value) -> Settings {
        match v {
            Value::Object(m) => m,
            _ => Settings::new(),
        }
    }

    #[test]
    fn equal_settings_have_no_changes() {
        let s = settings(json!({"cidr": "10.0.0.0/16", "dns": true}));
        assert!(diff(&s, &s, None, &[]).is_empty());
    }

    #[test]
    fn changed_settings_say_old_and_new_and_whether_they_replace() {
        let want = settings(json!({"cidr": "10.1.0.0/16", "dns": true}));
        let have = settings(json!({"cidr": "10.0.0.0/16", "dns": false}));
        let changes = diff(&want, &have, None, &["cidr"]);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].setting, "cidr");
        assert_eq!(changes[0].old, Some(json!("10.0.0.0/16")));
        assert_eq!(changes[0].new, Some(json!("10.1.0.0/16")));
        assert!(changes[0].forces_replacement);
        assert!(!changes[1].forces_replacement);
    }

    #[test]
    fn unreported_settings_compare_with_what_was_applied() {
        let want = settings(json!({"secret": "b", "size": 1}));
        let have = settings(json!({"size": 1}));
        let applied = settings(json!({"secret": "a", "size": 1}));
        let changes = diff(&want, &have, Some(&applied), &[]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].old, Some(json!("a")));
        assert!(diff(&want, &have, Some(&want), &[]).is_empty());
    }
}
