//! Typed inputs: a dependency is declared by reading it.
//!
//! A node's desired settings are a function of other nodes' outputs. The function does not get
//! a map of outputs to read from; it names what it reads, as an [`Input`], and receives the
//! values of exactly those inputs:
//!
//! ```ignore
//! Node::new("network/subnet/public-0", kinds.subnet.clone())
//!     .spec((vpc.ready(), zones.ready()), move |(vpc, zones)| SubnetSpec { vpc_id: vpc.vpc_id, .. })
//! ```
//!
//! The inputs are the node's dependencies ([`Input::deps`]): naming `vpc.ready()` both makes the
//! node wait for the VPC to be ready and hands it the VPC's outputs, so a read cannot go
//! undeclared, and a declaration cannot go unread. `Ready` and `Exists` say what the node
//! waits for ([`Until`]). A dependency whose outputs are not read (a policy that must be
//! attached before a role is used) is declared as such, with [`crate::resource::Node::ordered_after`].
//!
//! Inputs compose: tuples, `Vec`s and `Option`s of inputs are inputs, and so is a [`Derived`]
//! value (a function of inputs), which is how the stack's outputs are put together from its
//! parts. Reading goes through [`Outputs`], a view of the published outputs restricted to the
//! declared dependencies, so even an [`Input`] implemented wrongly fails every time, never only
//! when the undeclared node happened to finish first.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::resource::LogicalId;

/// When a dependent may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Once the dependency exists and its outputs are known (an endpoint's name and ARN).
    Exists,
    /// Once the dependency is ready for use (the NAT gateway is `available`).
    Ready,
}

/// One dependency of a node: what it waits for, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dep {
    pub id: LogicalId,
    pub until: Until,
}

/// Adds `dep` to `deps`, once per id: `Ready` is the stronger requirement and wins if both are
/// asked for. Keeps the order of first mention.
pub fn add_dep(deps: &mut Vec<Dep>, dep: Dep) {
    match deps.iter_mut().find(|d| d.id == dep.id) {
        Some(d) => {
            if dep.until == Until::Ready {
                d.until = Until::Ready;
            }
        }
        None => deps.push(dep),
    }
}

/// A typed handle on another node's outputs.
pub struct Ref<T> {
    id: LogicalId,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Ref<T> {
    fn clone(&self) -> Self {
        Ref {
            id: self.id.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Ref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ref({})", self.id)
    }
}

impl<T> Ref<T> {
    pub fn new(id: impl Into<LogicalId>) -> Self {
        Ref {
            id: id.into(),
            _t: PhantomData,
        }
    }
    pub fn id(&self) -> &LogicalId {
        &self.id
    }
    /// The node's outputs, once it is ready for use.
    pub fn ready(&self) -> Ready<T> {
        Ready(self.clone())
    }
    /// The node's outputs, as soon as it exists (its name and ARN), ready or not.
    pub fn exists(&self) -> Exists<T> {
        Exists(self.clone())
    }
}

/// A value not known yet because what it comes from has not been created (or, for a read the
/// node did not declare, will never be given to it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("known after {0} is created")]
pub struct Unresolved(pub LogicalId);

/// The published outputs a spec may read: those of its declared dependencies, nothing else.
pub struct Outputs<'a> {
    all: &'a HashMap<LogicalId, Value>,
    declared: &'a [Dep],
}

impl<'a> Outputs<'a> {
    /// A view of `all` that answers only for `declared`.
    pub fn restricted(all: &'a HashMap<LogicalId, Value>, declared: &'a [Dep]) -> Self {
        Outputs { all, declared }
    }

    /// The typed outputs of `id`, or [`Unresolved`] if it has none yet, they do not have the
    /// shape `T`, or `id` is not a declared dependency.
    pub fn get<T: DeserializeOwned>(&self, id: &LogicalId) -> Result<T, Unresolved> {
        if !self.declared.iter().any(|d| &d.id == id) {
            return Err(Unresolved(id.clone()));
        }
        // Deserialised from the borrowed value: no copy of the JSON is made.
        self.all
            .get(id)
            .and_then(|v| T::deserialize(v).ok())
            .ok_or_else(|| Unresolved(id.clone()))
    }
}

/// Something a spec reads, and the dependencies reading it implies.
pub trait Input: Send + Sync + 'static {
    /// What the spec receives.
    type Value;
    /// Adds the dependencies this input reads to `into` (see [`add_dep`]).
    fn deps(&self, into: &mut Vec<Dep>);
    /// Reads the value from the dependencies' outputs.
    fn read(&self, outputs: &Outputs<'_>) -> Result<Self::Value, Unresolved>;
}

/// Another node's outputs once it is ready: [`Ref::ready`].
pub struct Ready<T>(Ref<T>);

/// Another node's outputs as soon as it exists: [`Ref::exists`].
pub struct Exists<T>(Ref<T>);

impl<T: DeserializeOwned + 'static> Input for Ready<T> {
    type Value = T;
    fn deps(&self, into: &mut Vec<Dep>) {
        add_dep(
            into,
            Dep {
                id: self.0.id.clone(),
                until: Until::Ready,
            },
        );
    }
    fn read(&self, outputs: &Outputs<'_>) -> Result<T, Unresolved> {
        outputs.get(&self.0.id)
    }
}

impl<T: DeserializeOwned + 'static> Input for Exists<T> {
    type Value = T;
    fn deps(&self, into: &mut Vec<Dep>) {
        add_dep(
            into,
            Dep {
                id: self.0.id.clone(),
                until: Until::Exists,
            },
        );
    }
    fn read(&self, outputs: &Outputs<'_>) -> Result<T, Unresolved> {
        outputs.get(&self.0.id)
    }
}

/// No input: for settings that depend on nothing the stack makes.
impl Input for () {
    type Value = ();
    fn deps(&self, _into: &mut Vec<Dep>) {}
    fn read(&self, _outputs: &Outputs<'_>) -> Result<(), Unresolved> {
        Ok(())
    }
}

/// Each of several inputs of one kind (the subnets of a load balancer).
impl<I: Input> Input for Vec<I> {
    type Value = Vec<I::Value>;
    fn deps(&self, into: &mut Vec<Dep>) {
        for i in self {
            i.deps(into);
        }
    }
    fn read(&self, outputs: &Outputs<'_>) -> Result<Self::Value, Unresolved> {
        self.iter().map(|i| i.read(outputs)).collect()
    }
}

/// An input the config may or may not call for (an image the stack builds, or none).
impl<I: Input> Input for Option<I> {
    type Value = Option<I::Value>;
    fn deps(&self, into: &mut Vec<Dep>) {
        if let Some(i) = self {
            i.deps(into);
        }
    }
    fn read(&self, outputs: &Outputs<'_>) -> Result<Self::Value, Unresolved> {
        self.as_ref().map(|i| i.read(outputs)).transpose()
    }
}

macro_rules! tuple_input {
    ($($name:ident)+) => {
        #[allow(non_snake_case)]
        impl<$($name: Input),+> Input for ($($name,)+) {
            type Value = ($($name::Value,)+);
            fn deps(&self, into: &mut Vec<Dep>) {
                let ($($name,)+) = self;
                $($name.deps(into);)+
            }
            fn read(&self, outputs: &Outputs<'_>) -> Result<Self::Value, Unresolved> {
                let ($($name,)+) = self;
                Ok(($($name.read(outputs)?,)+))
            }
        }
    };
}

tuple_input!(A);
tuple_input!(A B);
tuple_input!(A B C);
tuple_input!(A B C D);
tuple_input!(A B C D E);
tuple_input!(A B C D E F);
tuple_input!(A B C D E F G);
tuple_input!(A B C D E F G H);

type Compute<T> = Box<dyn Fn(&Outputs<'_>) -> Result<T, Unresolved> + Send + Sync>;

/// A value computed from declared inputs: a node's desired settings, the stack's outputs. It
/// knows its dependencies, and it is an [`Input`] itself, so derived values compose.
pub struct Derived<T> {
    deps: Vec<Dep>,
    compute: Compute<T>,
}

impl<T: 'static> Derived<T> {
    /// `f` of the values of `input`, which are its dependencies.
    pub fn new<I, F>(input: I, f: F) -> Self
    where
        I: Input,
        F: Fn(I::Value) -> T + Send + Sync + 'static,
    {
        let mut deps = Vec::new();
        input.deps(&mut deps);
        Derived {
            deps,
            compute: Box::new(move |outputs| input.read(outputs).map(&f)),
        }
    }

    /// What it reads.
    pub fn deps(&self) -> &[Dep] {
        &self.deps
    }

    /// Computes it from the outputs published so far, seeing only its own dependencies'.
    pub fn eval(&self, all: &HashMap<LogicalId, Value>) -> Result<T, Unresolved> {
        (self.compute)(&Outputs::restricted(all, &self.deps))
    }
}

impl<T: 'static> Input for Derived<T> {
    type Value = T;
    fn deps(&self, into: &mut Vec<Dep>) {
        for d in &self.deps {
            add_dep(into, d.clone());
        }
    }
    fn read(&self, outputs: &Outputs<'_>) -> Result<T, Unresolved> {
        (self.compute)(outputs)
    }
}

impl<T> fmt::Debug for Derived<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Derived").field("deps", &self.deps).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Vpc {
        vpc_id: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Subnet {
        subnet_id: String,
    }

    fn outputs(pairs: &[(&str, Value)]) -> HashMap<LogicalId, Value> {
        pairs
            .iter()
            .map(|(id, v)| (LogicalId::from(*id), v.clone()))
            .collect()
    }

    fn ids(deps: &[Dep]) -> Vec<(&str, Until)> {
        deps.iter().map(|d| (d.id.as_str(), d.until)).collect()
    }

    #[test]
    fn what_is_read_is_what_is_waited_for() {
        let vpc: Ref<Vpc> = Ref::new("vpc");
        let subnets: Vec<Ref<Subnet>> = vec![Ref::new("subnet/a"), Ref::new("subnet/b")];
        let spec = Derived::new(
            (
                vpc.ready(),
                subnets.iter().map(Ref::exists).collect::<Vec<_>>(),
            ),
            |(vpc, subnets)| {
                let ids: Vec<String> = subnets.into_iter().map(|s| s.subnet_id).collect();
                format!("{} {}", vpc.vpc_id, ids.join(","))
            },
        );
        assert_eq!(
            ids(spec.deps()),
            [
                ("vpc", Until::Ready),
                ("subnet/a", Until::Exists),
                ("subnet/b", Until::Exists)
            ]
        );
        let all = outputs(&[
            ("vpc", json!({"vpc_id": "vpc-1"})),
            ("subnet/a", json!({"subnet_id": "s-a"})),
            ("subnet/b", json!({"subnet_id": "s-b"})),
        ]);
        assert_eq!(spec.eval(&all).unwrap(), "vpc-1 s-a,s-b");
        let partial = outputs(&[("vpc", json!({"vpc_id": "vpc-1"}))]);
        assert_eq!(spec.eval(&partial), Err(Unresolved("subnet/a".into())));
    }

    #[test]
    fn one_node_read_both_ways_is_waited_for_until_ready() {
        let vpc: Ref<Vpc> = Ref::new("vpc");
        let spec = Derived::new((vpc.exists(), vpc.ready()), |_| ());
        assert_eq!(ids(spec.deps()), [("vpc", Until::Ready)]);
    }

    #[test]
    fn options_and_nothing_add_no_dependency() {
        let none: Option<Ready<Vpc>> = None;
        let spec = Derived::new(((), none), |((), vpc)| vpc.is_none());
        assert!(spec.deps().is_empty());
        assert_eq!(spec.eval(&HashMap::new()), Ok(true));
        let some = Some(Ref::<Vpc>::new("vpc").exists());
        let spec = Derived::new(some, |vpc| vpc.map(|v| v.vpc_id));
        assert_eq!(ids(spec.deps()), [("vpc", Until::Exists)]);
        let all = outputs(&[("vpc", json!({"vpc_id": "vpc-1"}))]);
        assert_eq!(spec.eval(&all), Ok(Some("vpc-1".into())));
    }

    #[test]
    fn derived_values_compose_and_keep_their_dependencies() {
        let vpc: Ref<Vpc> = Ref::new("vpc");
        let subnet: Ref<Subnet> = Ref::new("subnet");
        let a = Derived::new(vpc.ready(), |v| v.vpc_id);
        let b = Derived::new(subnet.exists(), |s| s.subnet_id);
        let both = Derived::new((a, b), |(a, b)| format!("{a}/{b}"));
        assert_eq!(
            ids(both.deps()),
            [("vpc", Until::Ready), ("subnet", Until::Exists)]
        );
        let all = outputs(&[
            ("vpc", json!({"vpc_id": "vpc-1"})),
            ("subnet", json!({"subnet_id": "s-1"})),
        ]);
        assert_eq!(both.eval(&all), Ok("vpc-1/s-1".into()));
    }

    /// An input that reads what it does not declare: the restricted view refuses it every time,
    /// even when the output is there.
    struct Sneaky;
    impl Input for Sneaky {
        type Value = Vpc;
        fn deps(&self, _into: &mut Vec<Dep>) {}
        fn read(&self, outputs: &Outputs<'_>) -> Result<Vpc, Unresolved> {
            outputs.get(&LogicalId::from("vpc"))
        }
    }

    #[test]
    fn an_undeclared_read_fails_even_when_the_output_is_known() {
        let spec = Derived::new(Sneaky, |v| v.vpc_id);
        let all = outputs(&[("vpc", json!({"vpc_id": "vpc-1"}))]);
        assert_eq!(spec.eval(&all), Err(Unresolved("vpc".into())));
    }

    #[test]
    fn outputs_of_the_wrong_shape_are_not_known() {
        let spec = Derived::new(Ref::<Vpc>::new("vpc").ready(), |v| v.vpc_id);
        let all = outputs(&[("vpc", json!({"id": "vpc-1"}))]);
        assert_eq!(spec.eval(&all), Err(Unresolved("vpc".into())));
    }
}
