//! The graph as people and tools read it (`provision graph`): text, JSON and Graphviz, every
//! resource in dependency order with what it waits for. The binary prints these; the stack's
//! snapshot tests compare them, so every change to the graph shows as a reviewed diff.

use serde_json::{Value, json};

use super::{Graph, GraphError};
use crate::input::Until;
use crate::resource::Node;

impl Graph {
    fn ordered(&self) -> Result<Vec<&Node>, GraphError> {
        Ok(self.order()?.iter().filter_map(|id| self.get(id)).collect())
    }

    /// One line per resource: `<id>  <noun>  after <dep>, <dep> (exists)`.
    pub fn render_text(&self) -> Result<String, GraphError> {
        let mut text = String::new();
        for n in self.ordered()? {
            let deps: Vec<String> = n
                .deps()
                .iter()
                .map(|d| match d.until {
                    Until::Exists => format!("{} (exists)", d.id),
                    Until::Ready => d.id.to_string(),
                })
                .collect();
            let after = if deps.is_empty() {
                String::new()
            } else {
                format!("  after {}", deps.join(", "))
            };
            text.push_str(&format!("{}  {}{after}\n", n.id, n.kind.noun()));
        }
        Ok(text)
    }

    /// `{"stack": ..., "nodes": [{"id", "kind", "noun", "name", "deps": [{"id", "until"}]}]}`.
    pub fn render_json(&self, stack: &str) -> Result<Value, GraphError> {
        let nodes: Vec<Value> = self
            .ordered()?
            .iter()
            .map(|n| {
                json!({
                    "id": n.id,
                    "kind": n.kind.name(),
                    "noun": n.kind.noun(),
                    "name": n.name,
                    "deps": n.deps().iter().map(|d| json!({
                        "id": d.id,
                        "until": match d.until { Until::Ready => "ready", Until::Exists => "exists" },
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(json!({ "stack": stack, "nodes": nodes }))
    }

    /// Graphviz: an edge from each dependency to its dependent, dashed for `exists`.
    pub fn render_dot(&self, stack: &str) -> Result<String, GraphError> {
        let mut text = format!(
            "digraph \"{stack}\" {{\n  rankdir=LR;\n  node [shape=box, fontname=\"sans-serif\"];\n"
        );
        for n in self.ordered()? {
            text.push_str(&format!(
                "  \"{}\" [label=\"{}\\n{}\"];\n",
                n.id,
                n.id,
                n.kind.noun()
            ));
            for d in n.deps() {
                let style = if d.until == Until::Exists {
                    " [style=dashed]"
                } else {
                    ""
                };
                text.push_str(&format!("  \"{}\" -> \"{}\"{style};\n", d.id, n.id));
            }
        }
        text.push_str("}\n");
        Ok(text)
    }
}
