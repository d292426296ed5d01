//! The resource graph: nodes, their dependencies, and the stack's outputs.

use std::collections::{BTreeMap, HashMap};

mod render;

use serde_json::Value;

use crate::input::{Derived, Ref, Unresolved};
use crate::resource::{LogicalId, Node};

/// The stack's outputs (`api_url`, names), derived from what its resources publish.
pub type StackOutputs = Derived<BTreeMap<String, Value>>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("two resources have the logical id {0}")]
    Duplicate(LogicalId),
    #[error("{node} depends on {missing}, which is not in the stack")]
    MissingDependency { node: LogicalId, missing: LogicalId },
    #[error("resources depend on each other in a cycle: {}", .0.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(" -> "))]
    Cycle(Vec<LogicalId>),
    /// The config asks for something the stack cannot build (validation normally says so first).
    #[error("{node}: {message}")]
    Invalid { node: LogicalId, message: String },
}

/// The stack as resources: what to create, in which order, and what to report at the end.
pub struct Graph {
    nodes: Vec<Node>,
    index: HashMap<LogicalId, usize>,
    outputs: StackOutputs,
}

impl Default for Graph {
    fn default() -> Self {
        Self::new()
    }
}

impl Graph {
    pub fn new() -> Self {
        Graph {
            nodes: Vec::new(),
            index: HashMap::new(),
            outputs: Derived::new((), |()| BTreeMap::new()),
        }
    }

    pub fn add(&mut self, node: Node) -> Result<(), GraphError> {
        if self.index.contains_key(&node.id) {
            return Err(GraphError::Duplicate(node.id));
        }
        self.index.insert(node.id.clone(), self.nodes.len());
        self.nodes.push(node);
        Ok(())
    }

    /// Adds `node` and returns a typed handle on its outputs, for the nodes that read them.
    pub fn insert<T>(&mut self, node: Node) -> Result<Ref<T>, GraphError> {
        let handle = node.handle();
        self.add(node)?;
        Ok(handle)
    }

    /// Sets how the stack's outputs (`api_url`, names) derive from its resources' outputs.
    pub fn set_outputs(&mut self, outputs: StackOutputs) {
        self.outputs = outputs;
    }

    /// The stack's outputs, from the outputs its resources published.
    pub fn outputs(
        &self,
        published: &HashMap<LogicalId, Value>,
    ) -> Result<BTreeMap<String, Value>, Unresolved> {
        self.outputs.eval(published)
    }

    /// What the stack's outputs read.
    pub fn output_deps(&self) -> &[crate::input::Dep] {
        self.outputs.deps()
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn get(&self, id: &LogicalId) -> Option<&Node> {
        self.index.get(id).map(|&i| &self.nodes[i])
    }

    pub fn contains(&self, id: &LogicalId) -> bool {
        self.index.contains_key(id)
    }

    /// Checks every dependency exists and there is no cycle; returns a dependency-first order.
    pub fn order(&self) -> Result<Vec<LogicalId>, GraphError> {
        for n in &self.nodes {
            for d in n.deps() {
                if !self.index.contains_key(&d.id) {
                    return Err(GraphError::MissingDependency {
                        node: n.id.clone(),
                        missing: d.id.clone(),
                    });
                }
            }
        }
        for d in self.outputs.deps() {
            if !self.index.contains_key(&d.id) {
                return Err(GraphError::MissingDependency {
                    node: LogicalId::from("the stack's outputs"),
                    missing: d.id.clone(),
                });
            }
        }
        let edges: Vec<(LogicalId, Vec<LogicalId>)> = self
            .nodes
            .iter()
            .map(|n| {
                (
                    n.id.clone(),
                    n.deps().iter().map(|d| d.id.clone()).collect(),
                )
            })
            .collect();
        topological(&edges)
    }
}

/// Orders `(node, dependencies)` pairs dependencies first (Kahn's algorithm, stable in input
/// order), or reports a cycle. Dependencies on ids not in the list are ignored.
pub fn topological(edges: &[(LogicalId, Vec<LogicalId>)]) -> Result<Vec<LogicalId>, GraphError> {
    let index: HashMap<&LogicalId, usize> = edges
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id, i))
        .collect();
    let mut missing: Vec<usize> = edges
        .iter()
        .map(|(_, deps)| deps.iter().filter(|d| index.contains_key(d)).count())
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); edges.len()];
    for (i, (_, deps)) in edges.iter().enumerate() {
        for d in deps {
            if let Some(&j) = index.get(d) {
                dependents[j].push(i);
            }
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..edges.len()).filter(|&i| missing[i] == 0).collect();
    let mut out = Vec::with_capacity(edges.len());
    while let Some(i) = ready.pop_front() {
        out.push(edges[i].0.clone());
        for &j in &dependents[i] {
            missing[j] -= 1;
            if missing[j] == 0 {
                ready.push_back(j);
            }
        }
    }
    if out.len() == edges.len() {
        return Ok(out);
    }
    // Walk from any node left over along unfinished dependencies until one repeats.
    let mut path: Vec<usize> = Vec::new();
    let mut at = (0..edges.len()).find(|&i| missing[i] > 0).unwrap_or(0);
    loop {
        if let Some(pos) = path.iter().position(|&p| p == at) {
            let mut cycle: Vec<LogicalId> =
                path[pos..].iter().map(|&i| edges[i].0.clone()).collect();
            cycle.push(edges[at].0.clone());
            return Err(GraphError::Cycle(cycle));
        }
        path.push(at);
        let next = edges[at]
            .1
            .iter()
            .filter_map(|d| index.get(d).copied())
            .find(|&j| missing[j] > 0);
        match next {
            Some(j) => at = j,
            None => {
                return Err(GraphError::Cycle(
                    path.iter().map(|&i| edges[i].0.clone()).collect(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: &str, deps: &[&str]) -> (LogicalId, Vec<LogicalId>) {
        (
            id.into(),
            deps.iter().map(|d| LogicalId::from(*d)).collect(),
        )
    }

    #[test]
    fn orders_dependencies_first() {
        let order = topological(&[
            e("c", &["b"]),
            e("b", &["a"]),
            e("a", &[]),
            e("d", &["a", "c"]),
        ])
        .unwrap();
        let pos = |x: &str| order.iter().position(|i| i.as_str() == x).unwrap();
        assert!(pos("a") < pos("b") && pos("b") < pos("c") && pos("c") < pos("d"));
    }

    #[test]
    fn reports_the_cycle() {
        let err = topological(&[e("a", &["c"]), e("b", &["a"]), e("c", &["b"]), e("x", &[])])
            .unwrap_err();
        match err {
            GraphError::Cycle(ids) => {
                assert_eq!(ids.first(), ids.last());
                assert_eq!(ids.len(), 4, "{ids:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ignores_dependencies_outside_the_list() {
        let order = topological(&[e("a", &["gone"])]).unwrap();
        assert_eq!(order, vec![LogicalId::from("a")]);
    }
}
