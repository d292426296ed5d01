//! The engine against an in-memory cloud whose resources behave like AWS's in the ways the
//! engine must cope with: tags, pending states, lost replies, failures.

use std::collections::BTreeMap;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::*;
use crate::event::{Event, EventSink};
use crate::graph::Graph;
use crate::plan::Action;
use crate::resource::{Derived, Desired, Kind, Live, Lookup, Node, Ref, Settings, to_settings};
use crate::state::{Deposed, LocalStore, Record, State, StateStore, Status};

#[derive(Clone, Debug)]
struct Obj {
    stack: String,
    id: String,
    settings: Settings,
    ready: bool,
}

#[derive(Default)]
struct Cloud {
    objects: StdMutex<BTreeMap<String, Obj>>,
    next: AtomicU32,
    log: StdMutex<Vec<String>>,
    /// Logical ids whose next create succeeds but whose reply is lost.
    lose_reply: StdMutex<Vec<String>>,
    /// Logical ids whose create fails.
    fail_create: StdMutex<Vec<String>>,
    /// Every create call's logical id and idempotency token, in order.
    tokens: StdMutex<Vec<(String, String)>>,
}

impl Cloud {
    fn log(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
    fn entries(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn mutations(&self) -> Vec<String> {
        self.entries()
            .into_iter()
            .filter(|e| !e.starts_with("read "))
            .collect()
    }
    fn count(&self, id: &str) -> usize {
        self.objects
            .lock()
            .unwrap()
            .values()
            .filter(|o| o.id == id)
            .count()
    }
    fn position(&self, entry: &str) -> usize {
        self.entries()
            .iter()
            .position(|e| e == entry)
            .unwrap_or_else(|| panic!("{entry:?} not in {:?}", self.entries()))
    }
}

struct FakeKind {
    cloud: Arc<Cloud>,
    replace_on: &'static [&'static str],
    create_before_delete: bool,
    /// Created resources start pending and need a wait.
    slow: bool,
    /// Settings the service does not report back.
    hidden: &'static [&'static str],
}

impl FakeKind {
    fn live(&self, pid: &str, o: &Obj) -> Live {
        let mut settings = o.settings.clone();
        for h in self.hidden {
            settings.remove(*h);
        }
        let l = Live::new(
            pid,
            settings,
            json!({"id": pid, "size": o.settings.get("size")}),
        );
        if o.ready { l } else { l.pending("pending") }
    }
}

#[async_trait]
impl Kind for FakeKind {
    fn name(&self) -> &'static str {
        if self.slow {
            "fake.slow"
        } else if self.create_before_delete {
            "fake.cbd"
        } else {
            "fake.thing"
        }
    }
    fn noun(&self) -> &'static str {
        "thing"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        self.replace_on
    }
    fn create_before_delete(&self) -> bool {
        self.create_before_delete
    }
    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        self.cloud.log(format!("read {}", lookup.id));
        let objects = self.cloud.objects.lock().unwrap();
        if let Some(pid) = lookup.physical_id() {
            return match objects.get(pid) {
                Some(o) => {
                    cx.ensure_ours(
                        pid,
                        [
                            ("provision:stack", o.stack.as_str()),
                            ("provision:id", o.id.as_str()),
                        ],
                    )?;
                    Ok(Some(self.live(pid, o)))
                }
                None => Ok(None),
            };
        }
        Ok(objects
            .iter()
            .find(|(_, o)| o.stack == cx.stack_name() && o.id == lookup.id.as_str())
            .map(|(pid, o)| self.live(pid, o)))
    }
    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let id = desired.id.to_string();
        self.cloud
            .tokens
            .lock()
            .unwrap()
            .push((id.clone(), desired.token.clone()));
        if self.cloud.fail_create.lock().unwrap().contains(&id) {
            return Err(ResourceError::fatal(format!("{id} refused")).with_hint("fix it"));
        }
        let pid = format!("p{}", self.cloud.next.fetch_add(1, Ordering::SeqCst));
        let obj = Obj {
            stack: cx.stack_name().to_string(),
            id: id.clone(),
            settings: desired.settings.clone(),
            ready: !self.slow,
        };
        self.cloud
            .objects
            .lock()
            .unwrap()
            .insert(pid.clone(), obj.clone());
        self.cloud.log(format!("create {id}"));
        let mut lose = self.cloud.lose_reply.lock().unwrap();
        if let Some(i) = lose.iter().position(|x| *x == id) {
            lose.remove(i);
            return Err(ResourceError::transient("connection reset"));
        }
        Ok(self.live(&pid, &obj))
    }
    async fn update(
        &self,
        _cx: &Cx,
        desired: &Desired,
        live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        let mut objects = self.cloud.objects.lock().unwrap();
        let o = objects
            .get_mut(&live.physical_id)
            .ok_or_else(|| ResourceError::fatal("gone"))?;
        o.settings = desired.settings.clone();
        self.cloud.log(format!("update {}", desired.id));
        Ok(self.live(&live.physical_id, o))
    }
    async fn wait_ready(&self, cx: &Cx, live: Live) -> Result<Live, ResourceError> {
        cx.sleep(Duration::from_millis(30)).await?;
        let mut objects = self.cloud.objects.lock().unwrap();
        let o = objects
            .get_mut(&live.physical_id)
            .ok_or_else(|| ResourceError::fatal("gone"))?;
        o.ready = true;
        self.cloud.log(format!("ready {}", cx.id()));
        Ok(self.live(&live.physical_id, o))
    }
    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(pid) = record.physical_id.as_deref() else {
            return Ok(());
        };
        let mut objects = self.cloud.objects.lock().unwrap();
        if let Some(o) = objects.get(pid) {
            cx.ensure_ours(
                pid,
                [
                    ("provision:stack", o.stack.as_str()),
                    ("provision:id", o.id.as_str()),
                ],
            )?;
            objects.remove(pid);
            self.cloud.log(format!("delete {}", cx.id()));
        }
        Ok(())
    }
}

struct Recorder(StdMutex<Vec<Event>>);
impl EventSink for Recorder {
    fn emit(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

struct World {
    cloud: Arc<Cloud>,
    thing: Arc<dyn Kind>,
    slow: Arc<dyn Kind>,
    cbd: Arc<dyn Kind>,
    kinds: Kinds,
    dir: tempfile::TempDir,
    events: Arc<Recorder>,
    _cancel: watch::Sender<bool>,
    engine: Engine,
}

fn world() -> World {
    let cloud = Arc::new(Cloud::default());
    let thing: Arc<dyn Kind> = Arc::new(FakeKind {
        cloud: cloud.clone(),
        replace_on: &["zone"],
        create_before_delete: false,
        slow: false,
        hidden: &["secret"],
    });
    let slow: Arc<dyn Kind> = Arc::new(FakeKind {
        cloud: cloud.clone(),
        replace_on: &[],
        create_before_delete: false,
        slow: true,
        hidden: &[],
    });
    let cbd: Arc<dyn Kind> = Arc::new(FakeKind {
        cloud: cloud.clone(),
        replace_on: &["size"],
        create_before_delete: true,
        slow: false,
        hidden: &[],
    });
    let kinds = Kinds::of([&thing, &slow, &cbd].map(|k| k.clone() as Arc<dyn Kind>)).unwrap();
    let events = Arc::new(Recorder(StdMutex::new(Vec::new())));
    let (tx, rx) = watch::channel(false);
    let stack = Stack {
        name: "webshop-test".into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
    };
    let settings = RunSettings {
        wait_scale: 0.01,
        ..RunSettings::default()
    };
    let engine = Engine::new(stack, events.clone(), settings, rx);
    World {
        cloud,
        thing,
        slow,
        cbd,
        kinds,
        dir: tempfile::tempdir().unwrap(),
        events,
        _cancel: tx,
        engine,
    }
}

#[derive(serde::Deserialize)]
struct Out {
    id: String,
}

impl World {
    fn store(&self) -> Arc<dyn StateStore> {
        Arc::new(LocalStore::new(self.dir.path().join("state.json")))
    }

    async fn state(&self) -> State {
        self.store()
            .load()
            .await
            .unwrap()
            .unwrap_or_else(|| State::new("webshop-test", "123456789012", "us-east-1"))
    }

    /// vpc <- subnet <- service, with `size` settings; `slow` makes the vpc need a wait.
    fn graph(&self, size: u32, zone: &str, cbd_size: u32) -> Graph {
        let mut g = Graph::new();
        let vpc = Node::new("net/vpc", self.slow.clone())
            .named("vpc")
            .fixed(&json!({"size": size}));
        let vpc_ref: Ref<Out> = vpc.handle();
        let zone = zone.to_string();
        let subnet = Node::new("net/subnet", self.thing.clone()).spec(
            vpc_ref.ready(),
            move |vpc| json!({"vpc": vpc.id, "zone": zone}),
        );
        let subnet_ref: Ref<Out> = subnet.handle();
        let config = Node::new("ml/config", self.cbd.clone())
            .named(format!("config-{cbd_size}"))
            .fixed(&json!({"size": cbd_size}));
        let config_ref: Ref<Out> = config.handle();
        let endpoint = Node::new("ml/endpoint", self.thing.clone()).spec(
            (subnet_ref.ready(), config_ref.ready()),
            |(s, c)| json!({"subnet": s.id, "config": c.id}),
        );
        for n in [vpc, subnet, config, endpoint] {
            g.add(n).unwrap();
        }
        let e: Ref<Out> = Ref::new("ml/endpoint");
        g.set_outputs(Derived::new(e.ready(), |e| {
            BTreeMap::from([("endpoint".to_string(), json!(e.id))])
        }));
        g
    }

    async fn up(&self, graph: Graph) -> Result<Summary, RunError> {
        let state = self.state().await;
        let prepared = self.engine.plan(&graph, &state).await?;
        let handle = StateHandle::new(self.store(), state);
        self.engine
            .apply(Arc::new(graph), prepared, handle, &self.kinds)
            .await
    }

    async fn plan(&self, graph: &Graph) -> Plan {
        let state = self.state().await;
        self.engine.plan(graph, &state).await.unwrap().plan
    }

    async fn down(&self) -> Result<Summary, RunError> {
        let state = self.state().await;
        let handle = StateHandle::new(self.store(), state);
        self.engine.destroy(handle, &self.kinds).await
    }
}

#[tokio::test]
async fn up_creates_in_dependency_order_and_a_rerun_changes_nothing() {
    let w = world();
    let s = w.up(w.graph(1, "a", 1)).await.unwrap();
    assert_eq!(s.created, 4);
    assert!(w.cloud.position("ready net/vpc") < w.cloud.position("create net/subnet"));
    assert!(w.cloud.position("create net/subnet") < w.cloud.position("create ml/endpoint"));
    assert!(w.cloud.position("create ml/config") < w.cloud.position("create ml/endpoint"));

    let state = w.state().await;
    assert_eq!(state.resources.len(), 4);
    assert!(
        state
            .resources
            .values()
            .all(|r| r.physical_id.is_some() && r.status == Status::Ready)
    );
    assert_eq!(
        state.outputs.get("endpoint"),
        Some(&json!(
            state.resources[&LogicalId::from("ml/endpoint")]
                .physical_id
                .clone()
                .unwrap()
        ))
    );

    let before = w.cloud.mutations().len();
    let plan = w.plan(&w.graph(1, "a", 1)).await;
    assert!(!plan.has_changes(), "{plan:#?}");
    let serial = w.state().await.serial;
    let s = w.up(w.graph(1, "a", 1)).await.unwrap();
    assert_eq!((s.unchanged, s.created, s.updated), (4, 0, 0));
    assert_eq!(
        w.cloud.mutations().len(),
        before,
        "a rerun must make no mutating call"
    );
    assert_eq!(
        w.state().await.serial,
        serial,
        "a rerun must not rewrite the state"
    );
}

#[tokio::test]
async fn the_intent_is_recorded_before_the_create_call() {
    let w = world();
    w.cloud
        .fail_create
        .lock()
        .unwrap()
        .push("net/subnet".into());
    let err = w.up(w.graph(1, "a", 1)).await.unwrap_err();
    assert!(err.to_string().contains("net/subnet refused"), "{err}");
    let state = w.state().await;
    let r = &state.resources[&LogicalId::from("net/subnet")];
    assert_eq!(r.status, Status::Creating);
    assert_eq!(r.physical_id, None);
    // The token the call carried, recorded before it was made.
    let sent = w.cloud.tokens.lock().unwrap().clone();
    assert!(
        sent.contains(&("net/subnet".to_string(), r.token.clone())),
        "{sent:?}"
    );
}

#[tokio::test]
async fn a_failure_skips_only_what_depends_on_it() {
    let w = world();
    w.cloud
        .fail_create
        .lock()
        .unwrap()
        .push("net/subnet".into());
    match w.up(w.graph(1, "a", 1)).await {
        Err(RunError::Failed { failures, summary }) => {
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].id.as_str(), "net/subnet");
            assert_eq!(failures[0].error.hint.as_deref(), Some("fix it"));
            assert_eq!(summary.skipped, 1, "the endpoint needs the subnet");
            assert_eq!(summary.created, 2, "the vpc and the config do not");
        }
        other => panic!("{other:?}"),
    }
    // Fixed, a rerun finishes the job without touching what exists.
    w.cloud.fail_create.lock().unwrap().clear();
    let s = w.up(w.graph(1, "a", 1)).await.unwrap();
    assert_eq!((s.created, s.unchanged), (2, 2));
    for id in ["net/vpc", "net/subnet", "ml/config", "ml/endpoint"] {
        assert_eq!(w.cloud.count(id), 1, "{id}");
    }
}

#[tokio::test]
async fn a_lost_create_reply_is_found_not_repeated() {
    let w = world();
    w.cloud.lose_reply.lock().unwrap().push("net/subnet".into());
    w.up(w.graph(1, "a", 1)).await.unwrap();
    assert_eq!(w.cloud.count("net/subnet"), 1);
    let pid = w.state().await.resources[&LogicalId::from("net/subnet")]
        .physical_id
        .clone();
    assert!(pid.is_some());
}

#[tokio::test]
async fn a_crash_after_the_create_call_is_recovered_by_tags() {
    let w = world();
    w.up(w.graph(1, "a", 1)).await.unwrap();
    // What a kill right after the create call leaves: the intent only.
    let store = w.store();
    let mut state = w.state().await;
    let r = state
        .resources
        .get_mut(&LogicalId::from("ml/endpoint"))
        .unwrap();
    r.status = Status::Creating;
    r.physical_id = None;
    store.save(&state).await.unwrap();

    let plan = w.plan(&w.graph(1, "a", 1)).await;
    let step = plan
        .steps
        .iter()
        .find(|s| s.id.as_str() == "ml/endpoint")
        .unwrap();
    assert_eq!(step.action, Action::Adopt);
    let s = w.up(w.graph(1, "a", 1)).await.unwrap();
    assert_eq!(s.adopted, 1);
    assert_eq!(w.cloud.count("ml/endpoint"), 1);
    assert!(
        w.state().await.resources[&LogicalId::from("ml/endpoint")]
            .physical_id
            .is_some()
    );
}

#[tokio::test]
async fn settings_update_in_place_or_replace_as_the_kind_says() {
    let w = world();
    w.up(w.graph(1, "a", 1)).await.unwrap();
    let old_subnet = w.state().await.resources[&LogicalId::from("net/subnet")]
        .physical_id
        .clone();

    // `size` of the vpc is mutable: one update.
    let plan = w.plan(&w.graph(2, "a", 1)).await;
    let vpc = plan
        .steps
        .iter()
        .find(|s| s.id.as_str() == "net/vpc")
        .unwrap();
    assert_eq!(vpc.action, Action::Update);
    assert_eq!(vpc.changes[0].old, Some(json!(1)));
    assert_eq!(vpc.changes[0].new, Some(json!(2)));
    let s = w.up(w.graph(2, "a", 1)).await.unwrap();
    assert_eq!((s.updated, s.unchanged), (1, 3));

    // `zone` of the subnet forces a replacement, and its dependent follows.
    let plan = w.plan(&w.graph(2, "b", 1)).await;
    let subnet = plan
        .steps
        .iter()
        .find(|s| s.id.as_str() == "net/subnet")
        .unwrap();
    assert_eq!(subnet.action, Action::Replace);
    assert!(subnet.changes[0].forces_replacement);
    let endpoint = plan
        .steps
        .iter()
        .find(|s| s.id.as_str() == "ml/endpoint")
        .unwrap();
    assert_eq!(
        endpoint.action,
        Action::Update,
        "its subnet id is known only after the replacement"
    );
    let s = w.up(w.graph(2, "b", 1)).await.unwrap();
    assert_eq!((s.replaced, s.updated), (1, 1));
    let new_subnet = w.state().await.resources[&LogicalId::from("net/subnet")]
        .physical_id
        .clone();
    assert_ne!(old_subnet, new_subnet);
    assert_eq!(w.cloud.count("net/subnet"), 1);
    assert!(w.cloud.position("delete net/subnet") < w.cloud.position("update ml/endpoint"));
}

#[tokio::test]
async fn create_before_delete_keeps_the_old_one_until_dependents_switched() {
    let w = world();
    w.up(w.graph(1, "a", 1)).await.unwrap();
    let s = w.up(w.graph(1, "a", 2)).await.unwrap();
    assert_eq!((s.replaced, s.updated, s.deleted), (1, 1, 1));
    let log = w.cloud.mutations();
    let create = log.iter().rposition(|e| e == "create ml/config").unwrap();
    let update = log.iter().position(|e| e == "update ml/endpoint").unwrap();
    let delete = log.iter().position(|e| e == "delete ml/config").unwrap();
    assert!(create < update && update < delete, "{log:?}");
    let state = w.state().await;
    assert!(state.deposed.is_empty());
    assert_eq!(state.resources[&LogicalId::from("ml/config")].generation, 1);
    assert_eq!(w.cloud.count("ml/config"), 1);
}

#[tokio::test]
async fn a_failed_switch_keeps_the_old_resource() {
    let w = world();
    w.up(w.graph(1, "a", 1)).await.unwrap();
    // The endpoint cannot be updated (its kind has no failure switch for updates, so make its
    // new config's create fail instead): the old config must survive.
    w.cloud.fail_create.lock().unwrap().push("ml/config".into());
    assert!(w.up(w.graph(1, "a", 2)).await.is_err());
    assert_eq!(w.cloud.count("ml/config"), 1, "the old config still serves");
    assert_eq!(w.state().await.deposed.len(), 1);
    w.cloud.fail_create.lock().unwrap().clear();
    w.up(w.graph(1, "a", 2)).await.unwrap();
    assert_eq!(w.cloud.count("ml/config"), 1);
    assert!(w.state().await.deposed.is_empty());
}

#[tokio::test]
async fn a_deposed_resource_that_is_live_again_is_kept() {
    let w = world();
    w.up(w.graph(1, "a", 1)).await.unwrap();
    // What a revert after a failed switch leaves when the kind's names follow its settings:
    // the create found the old resource by name and adopted it, while it is still deposed.
    let store = w.store();
    let mut state = w.state().await;
    let id = LogicalId::from("ml/config");
    let record = state.resources[&id].clone();
    state.deposed.push(Deposed {
        id: id.clone(),
        record,
    });
    store.save(&state).await.unwrap();

    w.up(w.graph(1, "a", 1)).await.unwrap();
    assert_eq!(
        w.cloud.count("ml/config"),
        1,
        "the live resource must not be deleted"
    );
    assert!(!w.cloud.mutations().iter().any(|m| m == "delete ml/config"));
    assert!(w.state().await.deposed.is_empty());
}

#[tokio::test]
async fn resources_dropped_from_the_config_are_deleted() {
    let w = world();
    w.up(w.graph(1, "a", 1)).await.unwrap();
    let mut g = Graph::new();
    g.add(
        Node::new("net/vpc", w.slow.clone())
            .named("vpc")
            .fixed(&json!({"size": 1})),
    )
    .unwrap();
    let plan = w.plan(&g).await;
    assert_eq!(plan.count(Action::Delete), 3);
    let s = w.up(g).await.unwrap();
    assert_eq!((s.deleted, s.unchanged), (3, 1));
    let log = w.cloud.mutations();
    let pos = |x: &str| log.iter().position(|e| e == x).unwrap();
    assert!(pos("delete ml/endpoint") < pos("delete net/subnet"));
    assert!(pos("delete ml/endpoint") < pos("delete ml/config"));
    assert_eq!(w.state().await.resources.len(), 1);
}

#[tokio::test]
async fn down_deletes_dependents_first_and_empties_the_state() {
    let w = world();
    w.up(w.graph(1, "a", 1)).await.unwrap();
    let s = w.down().await.unwrap();
    assert_eq!(s.deleted, 4);
    assert!(w.cloud.objects.lock().unwrap().is_empty());
    assert!(w.cloud.position("delete ml/endpoint") < w.cloud.position("delete net/subnet"));
    assert!(w.cloud.position("delete net/subnet") < w.cloud.position("delete net/vpc"));
    let state = w.state().await;
    assert!(state.is_empty() && state.outputs.is_empty());
}

#[tokio::test]
async fn down_refuses_a_resource_of_another_stack() {
    let w = world();
    w.up(w.graph(1, "a", 1)).await.unwrap();
    // Someone points the state at another stack's resource.
    w.cloud.objects.lock().unwrap().insert(
        "foreign".into(),
        Obj {
            stack: "other-stack".into(),
            id: "net/vpc".into(),
            settings: Settings::new(),
            ready: true,
        },
    );
    let store = w.store();
    let mut state = w.state().await;
    state
        .resources
        .get_mut(&LogicalId::from("net/vpc"))
        .unwrap()
        .physical_id = Some("foreign".into());
    store.save(&state).await.unwrap();
    let err = w.down().await.unwrap_err();
    assert!(
        err.to_string().contains("belongs to stack other-stack"),
        "{err}"
    );
    assert!(w.cloud.objects.lock().unwrap().contains_key("foreign"));
    // Everything else of ours is gone, and the refused record stays for the user to fix.
    assert_eq!(w.state().await.resources.len(), 1);
}

#[tokio::test]
async fn a_dependent_that_only_needs_a_name_starts_before_the_wait_ends() {
    let w = world();
    let mut g = Graph::new();
    let parent = Node::new("ml/endpoint", w.slow.clone()).fixed(&json!({"size": 1}));
    let pref: Ref<Out> = parent.handle();
    let child =
        Node::new("web/role", w.thing.clone()).spec(pref.exists(), |p| json!({"arn": p.id}));
    g.add(parent).unwrap();
    g.add(child).unwrap();
    w.up(g).await.unwrap();
    assert!(w.cloud.position("create web/role") < w.cloud.position("ready ml/endpoint"));
}

#[tokio::test]
async fn plan_reads_only() {
    let w = world();
    w.up(w.graph(1, "a", 1)).await.unwrap();
    let before = w.cloud.mutations();
    let plan = w.plan(&w.graph(3, "b", 4)).await;
    assert!(plan.has_changes());
    assert_eq!(w.cloud.mutations(), before);
    let events = w.events.0.lock().unwrap().len();
    assert!(events > 0);
}

#[test]
fn fresh_tokens_are_32_hex_digits_and_never_repeat() {
    let tokens: std::collections::BTreeSet<String> = (0..1000)
        .map(|_| fresh_token("s", &"x".into(), 0))
        .collect();
    assert_eq!(tokens.len(), 1000);
    assert!(
        tokens
            .iter()
            .all(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
    );
}

/// ACM answers a token it saw in the last hour with the certificate it made then: a `down` and
/// `up` must not send the same token again. A rerun after a crash must, to find its resource.
#[tokio::test]
async fn each_create_attempt_has_its_own_token_and_a_rerun_keeps_the_intents() {
    let w = world();
    w.cloud
        .fail_create
        .lock()
        .unwrap()
        .push("net/subnet".into());
    w.up(w.graph(1, "a", 1)).await.unwrap_err();
    w.cloud.fail_create.lock().unwrap().clear();
    w.up(w.graph(1, "a", 1)).await.unwrap();
    let sent = |id: &str| -> Vec<String> {
        w.cloud
            .tokens
            .lock()
            .unwrap()
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, t)| t.clone())
            .collect()
    };
    let subnet = sent("net/subnet");
    assert_eq!(subnet.len(), 2);
    assert_eq!(
        subnet[0], subnet[1],
        "the rerun of a recorded intent keeps its token"
    );

    let first = w.state().await;
    w.down().await.unwrap();
    w.up(w.graph(1, "a", 1)).await.unwrap();
    let second = w.state().await;
    for (id, record) in &second.resources {
        assert_ne!(
            first.resources[id].token, record.token,
            "{id}: up after down reused a token"
        );
    }
    // A replacement is a new create too.
    w.up(w.graph(1, "b", 1)).await.unwrap();
    let replaced = w.state().await;
    let id = LogicalId::from("net/subnet");
    assert_ne!(replaced.resources[&id].token, second.resources[&id].token);
}

#[test]
fn fingerprints_ignore_key_order() {
    let a = to_settings(&json!({"a": 1, "b": {"x": 1, "y": 2}}));
    let b = to_settings(&json!({"b": {"y": 2, "x": 1}, "a": 1}));
    assert_eq!(fingerprint(&a), fingerprint(&b));
}

#[tokio::test]
async fn observing_reports_drift_without_changing_anything() {
    let w = world();
    w.up(w.graph(1, "a", 1)).await.unwrap();
    let state = w.state().await;
    let subnet = state.resources[&LogicalId::from("net/subnet")]
        .physical_id
        .clone()
        .unwrap();
    let vpc = state.resources[&LogicalId::from("net/vpc")]
        .physical_id
        .clone()
        .unwrap();
    {
        let mut objects = w.cloud.objects.lock().unwrap();
        objects.remove(&subnet);
        objects
            .get_mut(&vpc)
            .unwrap()
            .settings
            .insert("size".into(), json!(5));
    }
    let before = w.cloud.mutations();
    let observed = w.engine.observe(&state, &w.kinds).await;
    assert_eq!(observed.len(), 4);
    let drift: BTreeMap<String, Drift> = observed
        .iter()
        .filter_map(|o| o.drift().map(|d| (o.id.to_string(), d)))
        .collect();
    assert_eq!(drift.len(), 2, "{drift:?}");
    assert_eq!(drift["net/subnet"], Drift::Deleted);
    match &drift["net/vpc"] {
        Drift::Changed { changes } => {
            assert_eq!(changes[0].setting, "size");
            assert_eq!(changes[0].old, Some(json!(1)), "old is what was applied");
            assert_eq!(changes[0].new, Some(json!(5)), "new is what AWS has now");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.cloud.mutations(), before, "observing changes nothing");
}

#[tokio::test]
async fn settings_aws_hides_count_as_applied_only_after_a_whole_create() {
    let w = world();
    let graph = || {
        let mut g = Graph::new();
        g.add(Node::new("x/thing", w.thing.clone()).fixed(&json!({"zone": "a", "secret": "s"})))
            .unwrap();
        g
    };
    w.up(graph()).await.unwrap();
    assert!(
        !w.plan(&graph()).await.has_changes(),
        "applied by a whole create: nothing to do"
    );

    // A kill after the create was journalled but before its follow-up calls: the record holds
    // the id but no fingerprint. The hidden setting may never have been applied.
    let store = w.store();
    let mut state = w.state().await;
    let r = state
        .resources
        .get_mut(&LogicalId::from("x/thing"))
        .unwrap();
    r.status = Status::Created;
    r.fingerprint = None;
    store.save(&state).await.unwrap();
    let plan = w.plan(&graph()).await;
    let step = &plan.steps[0];
    assert_eq!(step.action, Action::Update, "{plan:#?}");
    assert_eq!(step.changes[0].setting, "secret");
    assert_eq!(step.changes[0].old, None);
    w.up(graph()).await.unwrap();
    assert!(!w.plan(&graph()).await.has_changes());
}

#[test]
fn the_registry_refuses_two_kinds_of_one_name() {
    let w = world();
    let mut kinds = Kinds::of([w.thing.clone(), w.slow.clone()]).unwrap();
    let again: Arc<dyn Kind> = Arc::new(FakeKind {
        cloud: w.cloud.clone(),
        replace_on: &[],
        create_before_delete: false,
        slow: false,
        hidden: &[],
    });
    let err = kinds.add(again.clone()).unwrap_err();
    assert_eq!(err, DuplicateKind("fake.thing".into()));
    assert!(err.to_string().contains("`fake.thing`"), "{err}");
    // The first one stays: a duplicate never replaces what was registered.
    assert!(Arc::ptr_eq(kinds.get("fake.thing").unwrap(), &w.thing));
    assert_eq!(
        Kinds::of([w.thing.clone(), again]).err(),
        Some(DuplicateKind("fake.thing".into()))
    );
    assert_eq!(kinds.names(), ["fake.slow", "fake.thing"]);
}

/// A node that cannot start yet says what it waits for (the printer shows it with `-v`).
#[tokio::test]
async fn a_waiting_node_says_what_it_waits_for() {
    let w = world();
    w.up(w.graph(1, "a", 1)).await.unwrap();
    let events = w.events.0.lock().unwrap().clone();
    let blocked: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Blocked { id, on } => Some((id.to_string(), on.to_string())),
            _ => None,
        })
        .collect();
    assert!(
        blocked.contains(&("net/subnet".into(), "net/vpc".into())),
        "{blocked:?}"
    );
    // Once per change of what it waits for, not once per scheduling pass.
    for (id, _) in &blocked {
        let mut ons: Vec<&String> = blocked
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, on)| on)
            .collect();
        let n = ons.len();
        ons.dedup();
        assert_eq!(
            ons.len(),
            n,
            "{id} said twice in a row what it waits for: {blocked:?}"
        );
    }
}
