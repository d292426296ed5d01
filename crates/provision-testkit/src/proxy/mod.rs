//! A fault-injecting, latency-modelling HTTP proxy between an AWS SDK client (provision) and
//! the emulator: point `AWS_ENDPOINT_URL` at [`Proxy::url`] and it forwards every call to moto,
//! except that, as configured, it
//!
//! - **identifies** each call (service from the SigV4 credential scope, operation from
//!   `X-Amz-Target`, the `Action` parameter, or the REST method and path) and counts it;
//! - **injects faults** from a seed, deterministically for a given seed and request order:
//!   the service's own throttling error in its own wire format, a 500 internal error, a reply
//!   *dropped* after the emulator did the work (the resource exists, the client was told
//!   otherwise: a 500 or a closed connection), and delays;
//! - **freezes** after the N-th forwarded mutating call ([`Proxy::freeze_after`]): once that
//!   call's reply is back from the emulator (and every earlier forwarded call's too), it
//!   answers nothing more, so a test can SIGKILL the client at a deterministic point;
//! - **models AWS latency** ([`Latency`]): slow resources read back pending until their
//!   scaled time has passed, and new IAM roles cannot be used at once;
//! - in **strict mode** ([`Strict`]), refuses what real AWS refuses and the emulator accepts
//!   (each operation's input rules from the API reference: character sets, lengths, ranges,
//!   Fargate sizes, tags, Route 53 record rules...), answers a reused ACM idempotency token
//!   with the certificate it first produced, and injects, once per resource, the
//!   eventual-consistency errors AWS gives and the emulator never does (a new VPC or group
//!   `NotFound`, the ECS service-linked role, a new IAM role Lambda or SageMaker cannot
//!   assume yet, a new certificate ELB cannot find yet). See the `strict` module for every
//!   rule and injection with its source.
//!
//! ```ignore
//! let emulator = Emulator::start()?;
//! let proxy = Proxy::start(ProxyConfig {
//!     seed: 7,
//!     faults: Faults { throttle: 0.1, drop_reply: 0.05, ..Faults::none() },
//!     latency: Some(Latency::new(0.05)),
//!     ..ProxyConfig::new(emulator.url())
//! })
//! .await?;
//! // run provision with AWS_ENDPOINT_URL=proxy.url()
//! proxy.freeze_after(12);
//! proxy.frozen().await; // now kill the provision process
//! proxy.unfreeze();     // held requests are answered by a closed connection, never forwarded
//! ```
//!
//! The proxy answers its own control endpoints (never forwarded, never faulted, never held):
//!
//! | request | does |
//! |---|---|
//! | `GET /__proxy/stats` | [`Stats`] as JSON |
//! | `POST /__proxy/reset` | zero the stats, restart the fault sequence, unfreeze |
//! | `POST /__proxy/freeze?after=N` | [`Proxy::freeze_after`] |
//! | `GET /__proxy/frozen?timeout_ms=T` | wait until frozen: 200 and [`Frozen`] as JSON, or 504 |
//! | `POST /__proxy/unfreeze` | [`Proxy::unfreeze`] |
//! | `GET /__proxy/faults`, `POST /__proxy/faults?throttle=R&...` | read or change [`Faults`] (fields as query parameters; `delay_max_ms`, `drop_reply_as=reset\|server-error\|either`, `mutating_only`, `services=a,b`, `operations=x,y`) |
//! | `GET /__proxy/model` | the latency model's times ([`ModelledTime`]) as JSON, 404 without a model |
//! | `GET /__proxy/strict`, `POST /__proxy/strict?mode=all\|rules\|injections\|off` (or `rules=B&injections=B`) | read or change [`Strict`] |
//!
//! Requests to moto's own `/moto-api` are forwarded untouched and uncounted.

mod call;
mod model;
mod stats;
mod strict;
mod wire;
mod xml;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use call::{Call, Protocol, is_mutating};
pub use model::{Latency, Modelled, ModelledTime, UnknownModelled};
pub use stats::{FaultCounts, OperationStats, Stats, StrictCounts};
pub use strict::{Injection, Strict, UnknownStrict};

use call::RequestParts;
use model::{Exchange, Model};
use wire::Shape;

/// What the proxy forwards to and what it does to the calls.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The emulator: `http://127.0.0.1:PORT`.
    pub upstream: String,
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Seeds every fault decision: the same seed and request order give the same faults.
    pub seed: u64,
    pub faults: Faults,
    /// AWS's slow resources, scaled; `None` forwards states as the emulator reports them.
    pub latency: Option<Latency>,
    /// AWS's input rules and transient errors; `None` is off (as `Some(Strict::default())`).
    pub strict: Option<Strict>,
}

impl ProxyConfig {
    /// Forward to `upstream`, on a free loopback port, with no faults and no latency model.
    pub fn new(upstream: impl Into<String>) -> ProxyConfig {
        ProxyConfig {
            upstream: upstream.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 0,
            faults: Faults::none(),
            latency: None,
            strict: None,
        }
    }
}

/// The share (0.0 to 1.0) of calls that get each fault.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Answered with the service's throttling error, without forwarding.
    pub throttle: f64,
    /// Answered with the service's 500 internal error, without forwarding.
    pub server_error: f64,
    /// Of the successful mutating calls: forwarded and done, then the reply is replaced by a
    /// 500 or a closed connection ([`DropReply`]).
    pub drop_reply: f64,
    /// Held back before forwarding for a time up to `delay_max`.
    pub delay: f64,
    pub delay_max: Duration,
    /// How a dropped reply reaches the client.
    pub drop_reply_as: DropReply,
    /// Which calls are eligible for faults.
    pub only: FaultFilter,
}

impl Faults {
    /// No faults at all.
    pub fn none() -> Faults {
        Faults {
            throttle: 0.0,
            server_error: 0.0,
            drop_reply: 0.0,
            delay: 0.0,
            delay_max: Duration::from_millis(200),
            drop_reply_as: DropReply::Either,
            only: FaultFilter::default(),
        }
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults::none()
    }
}

/// How the client learns (wrongly) that a call it made did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReply {
    /// The service's 500 internal error.
    ServerError,
    /// The connection closes without a reply (the SDK sees an incomplete message).
    Reset,
    /// Either, chosen from the seed per call.
    Either,
}

/// Which calls faults apply to; the empty filter admits all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultFilter {
    /// Only calls that change something.
    pub mutating_only: bool,
    /// Only these services, by SDK name (`EC2`) or signing name (`ec2`), any case.
    pub services: Vec<String>,
    /// Only these operations: `CreateVpc` or `EC2:CreateVpc`.
    pub operations: Vec<String>,
}

impl FaultFilter {
    fn admits(&self, call: &Call) -> bool {
        (!self.mutating_only || call.mutating)
            && (self.services.is_empty()
                || self.services.iter().any(|s| {
                    s.eq_ignore_ascii_case(&call.service)
                        || s.eq_ignore_ascii_case(&call.signing_name)
                }))
            && (self.operations.is_empty()
                || self
                    .operations
                    .iter()
                    .any(|o| *o == call.operation || *o == call.key()))
    }
}

/// Where a freeze happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Frozen {
    /// The `service:Operation` of the N-th mutating call (`None` for `freeze_after(0)`).
    pub operation: Option<String>,
    /// N.
    pub after: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the upstream {0:?} is not an http:// URL")]
    Upstream(String),
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The proxy, serving until dropped.
pub struct Proxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    server: JoinHandle<()>,
}

impl Proxy {
    /// Listens and starts serving (on the current Tokio runtime).
    pub async fn start(config: ProxyConfig) -> Result<Proxy, ProxyError> {
        let upstream = upstream_base(&config.upstream)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: config.listen,
            source,
        })?;
        let (freeze, _) = watch::channel(FreezeStatus {
            epoch: 0,
            phase: Phase::Open,
            held: 0,
        });
        let shared = Arc::new(Shared {
            upstream,
            seed: config.seed,
            faults: Mutex::new(config.faults),
            model: config.latency.map(Model::new),
            strict: strict::Enforcer::new(config.strict.unwrap_or_default()),
            client: Client::builder(TokioExecutor::new()).build_http(),
            counters: Mutex::new(Counters::default()),
            gate: Mutex::new(Gate::default()),
            freeze,
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(Proxy {
            shared,
            addr,
            url: format!("http://{addr}"),
            server,
        })
    }

    /// `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters since the start or the last [`reset`](Proxy::reset).
    pub fn stats(&self) -> Stats {
        self.shared.counters().stats.clone()
    }

    /// Zeroes the stats, restarts the fault sequence (so a rerun sees the same faults for the
    /// same request order) and unfreezes. The latency model keeps its memory: the resources
    /// it times still exist in the emulator.
    pub fn reset(&self) {
        self.shared.reset();
    }

    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).clone()
    }

    /// Changes the faults from the next call on (for example none, to check the outcome).
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// The latency model's settings, if there is one.
    pub fn latency(&self) -> Option<&Latency> {
        self.shared.model.as_ref().map(Model::latency)
    }

    /// Arms the kill point: the `n`-th mutating call forwarded from now on is the last one
    /// answered by the emulator; the proxy then answers nothing (its reply and every later
    /// request are held) until [`unfreeze`](Proxy::unfreeze). `0` freezes at once.
    pub fn freeze_after(&self, n: u64) {
        self.shared.freeze_after(n);
    }

    /// Waits until the proxy is frozen: the kill point's reply came back from the emulator
    /// and no other forwarded call is still there.
    pub async fn frozen(&self) -> Frozen {
        let mut rx = self.shared.freeze.subscribe();
        loop {
            if let Phase::Frozen(f) = &rx.borrow_and_update().phase {
                return f.clone();
            }
            // The sender lives as long as `self`.
            if rx.changed().await.is_err() {
                return Frozen {
                    operation: None,
                    after: 0,
                };
            }
        }
    }

    pub fn is_frozen(&self) -> bool {
        matches!(self.shared.freeze.borrow().phase, Phase::Frozen(_))
    }

    /// Waits until at least `n` requests are held by the current freeze (so a test knows
    /// its requests reached the proxy before it unfreezes).
    pub async fn wait_held(&self, n: u64) {
        let mut rx = self.shared.freeze.subscribe();
        let _ = rx
            .wait_for(|s| !matches!(s.phase, Phase::Open) && s.held >= n)
            .await;
    }

    /// Disarms the kill point and opens again. Requests held by the freeze are answered by a
    /// closed connection and never forwarded: they belong to the client that was killed.
    pub fn unfreeze(&self) {
        self.shared.unfreeze();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its set of connections, which aborts them too.
        self.server.abort();
    }
}

fn upstream_base(url: &str) -> Result<String, ProxyError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| ProxyError::Upstream(url.to_string()))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(authority)) => Ok(format!("http://{authority}")),
        _ => Err(ProxyError::Upstream(url.to_string())),
    }
}

/// State shared by the connections.
struct Shared {
    upstream: String,
    seed: u64,
    faults: Mutex<Faults>,
    model: Option<Model>,
    strict: strict::Enforcer,
    client: Client<HttpConnector, Full<Bytes>>,
    counters: Mutex<Counters>,
    gate: Mutex<Gate>,
    /// The freeze, watched by held requests (to be released) and by tests (to kill).
    freeze: watch::Sender<FreezeStatus>,
}

#[derive(Default)]
struct Counters {
    stats: Stats,
    /// The next call's index in the fault sequence.
    next_call: u64,
}

/// The kill point's bookkeeping.
#[derive(Default)]
struct Gate {
    /// Mutating calls still to forward before the kill point, when armed.
    armed: Option<u64>,
    after: u64,
    /// The kill-point call, once forwarded.
    kill_operation: Option<String>,
    /// Whether the kill-point call's reply is back from the emulator.
    kill_reply_back: bool,
    /// Calls forwarded whose reply is not back yet.
    in_flight: u64,
}

#[derive(Clone, Debug)]
struct FreezeStatus {
    /// Changes at every unfreeze: requests held under an epoch are released when it ends.
    epoch: u64,
    phase: Phase,
    /// Requests held under this epoch.
    held: u64,
}

#[derive(Clone, Debug)]
enum Phase {
    Open,
    /// The kill-point call was forwarded; nothing more is forwarded or answered.
    Freezing,
    /// ... and every forwarded call is back: the emulator's state is final.
    Frozen(Frozen),
}

/// A forwarded call, until its reply is back.
struct Ticket {
    kill_point: bool,
}

/// The connection closes without a reply (hyper closes it when a service fails).
#[derive(Debug, thiserror::Error)]
#[error("reply withheld")]
struct Withheld;

type Reply = Result<Response<Full<Bytes>>, Withheld>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The counters stay meaningful after a panic elsewhere; keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn counters(&self) -> MutexGuard<'_, Counters> {
        lock(&self.counters)
    }

    fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.counters().stats);
    }

    fn reset(&self) {
        *self.counters() = Counters::default();
        self.unfreeze();
    }

    fn freeze_after(&self, n: u64) {
        let mut gate = lock(&self.gate);
        gate.after = n;
        gate.kill_operation = None;
        if n > 0 {
            gate.armed = Some(n);
            gate.kill_reply_back = false;
            return;
        }
        gate.armed = None;
        gate.kill_reply_back = true;
        let in_flight = gate.in_flight;
        self.freeze.send_modify(|s| {
            s.phase = if in_flight == 0 {
                Phase::Frozen(Frozen {
                    operation: None,
                    after: 0,
                })
            } else {
                Phase::Freezing
            }
        });
    }

    fn unfreeze(&self) {
        let mut gate = lock(&self.gate);
        gate.armed = None;
        gate.kill_operation = None;
        gate.kill_reply_back = false;
        self.freeze.send_modify(|s| {
            s.epoch += 1;
            s.phase = Phase::Open;
            s.held = 0;
        });
    }

    /// The epoch whose freeze holds everything now, if there is one.
    fn closed_epoch(&self) -> Option<u64> {
        let status = self.freeze.borrow();
        (!matches!(status.phase, Phase::Open)).then_some(status.epoch)
    }

    /// Holds a request until the freeze of `epoch` ends, then withholds its reply.
    async fn hold(&self, epoch: u64) -> Withheld {
        self.count(|s| s.held += 1);
        let mut rx = self.freeze.subscribe();
        self.freeze.send_modify(|s| {
            if s.epoch == epoch {
                s.held += 1;
            }
        });
        let _ = rx.wait_for(|s| s.epoch != epoch).await;
        Withheld
    }

    /// Answers with `response` unless a freeze holds everything.
    async fn deliver(&self, response: Response<Full<Bytes>>) -> Reply {
        match self.closed_epoch() {
            Some(epoch) => Err(self.hold(epoch).await),
            None => Ok(response),
        }
    }

    /// Lets a call through to the emulator, or says which freeze holds it.
    fn enter(&self, call: &Call) -> Result<Ticket, u64> {
        let mut gate = lock(&self.gate);
        if let Some(epoch) = self.closed_epoch() {
            return Err(epoch);
        }
        gate.in_flight += 1;
        let mut kill_point = false;
        if call.mutating
            && let Some(left) = gate.armed.as_mut()
        {
            *left = left.saturating_sub(1);
            if *left == 0 {
                gate.armed = None;
                gate.kill_operation = Some(call.key());
                kill_point = true;
                self.freeze.send_modify(|s| s.phase = Phase::Freezing);
            }
        }
        Ok(Ticket { kill_point })
    }

    /// A forwarded call's reply is back.
    fn exit(&self, ticket: Ticket) {
        let mut gate = lock(&self.gate);
        gate.in_flight = gate.in_flight.saturating_sub(1);
        if ticket.kill_point {
            gate.kill_reply_back = true;
        }
        if gate.kill_reply_back && gate.in_flight == 0 {
            gate.kill_reply_back = false;
            let frozen = Frozen {
                operation: gate.kill_operation.clone(),
                after: gate.after,
            };
            self.freeze.send_modify(|s| {
                if matches!(s.phase, Phase::Freezing) {
                    s.phase = Phase::Frozen(frozen);
                }
            });
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors, say: give the connections a moment to close.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(shared.clone(), req));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// What the seed decided for one call.
struct Decision {
    throttle: bool,
    server_error: bool,
    delay: Option<Duration>,
    drop_reply: Option<DropReply>,
    request_id: String,
}

/// splitmix64: a tiny, good-enough mixer; each decision of call `i` draws from its own
/// stream, so a decision never depends on how many draws earlier calls made.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn draw(seed: u64, index: u64, stream: u64) -> u64 {
    mix(seed ^ mix(index.wrapping_mul(8).wrapping_add(stream)))
}

/// A uniform number in [0, 1).
fn unit(seed: u64, index: u64, stream: u64) -> f64 {
    (draw(seed, index, stream) >> 11) as f64 / (1u64 << 53) as f64
}

impl Shared {
    /// Counts a call and draws its faults.
    fn begin(&self, call: &Call) -> Decision {
        let faults = lock(&self.faults).clone();
        let index = {
            let mut counters = self.counters();
            let index = counters.next_call;
            counters.next_call += 1;
            let stats = &mut counters.stats;
            stats.total += 1;
            if call.mutating {
                stats.mutating += 1;
            }
            let op = stats.operations.entry(call.key()).or_default();
            op.calls += 1;
            op.mutating = call.mutating;
            index
        };
        let seed = self.seed;
        let eligible = faults.only.admits(call);
        let hit = |stream, rate: f64| eligible && unit(seed, index, stream) < rate;
        let throttle = hit(1, faults.throttle);
        let server_error = !throttle && hit(2, faults.server_error);
        let delay = hit(3, faults.delay).then(|| faults.delay_max.mul_f64(unit(seed, index, 4)));
        let drop_reply =
            (call.mutating && hit(5, faults.drop_reply)).then(|| match faults.drop_reply_as {
                DropReply::Either if unit(seed, index, 6) < 0.5 => DropReply::Reset,
                DropReply::Either => DropReply::ServerError,
                other => other,
            });
        let id = draw(seed, index, 7);
        let request_id = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            id >> 32,
            (id >> 16) & 0xffff,
            id & 0xffff,
            (id >> 48) & 0xffff,
            (id.rotate_left(17)) & 0xffff_ffff_ffff
        );
        Decision {
            throttle,
            server_error,
            delay,
            drop_reply,
            request_id,
        }
    }

    fn count_fault(&self, call: &Call, f: impl FnOnce(&mut FaultCounts)) {
        self.count(|s| {
            f(&mut s.faults);
            s.operations.entry(call.key()).or_default().faults += 1;
        });
    }

    /// Counts a strict refusal, replay or injection under `name`, logging refusals and
    /// replays for assertion messages.
    fn count_strict(
        &self,
        call: &Call,
        kind: StrictKind,
        name: &str,
        error: Option<&wire::AwsError>,
    ) {
        self.count(|s| {
            let counts = &mut s.strict;
            let map = match kind {
                StrictKind::Refused => &mut counts.refused,
                StrictKind::Injected => &mut counts.injected,
                StrictKind::Replayed => &mut counts.replayed,
            };
            *map.entry(name.to_string()).or_default() += 1;
            if kind != StrictKind::Injected && counts.log.len() < StrictCounts::LOGGED {
                let detail =
                    error.map_or(String::new(), |e| format!(": {}: {}", e.code, e.message));
                counts.log.push(format!("{} {name}{detail}", call.key()));
            }
        });
    }

    fn count_modelled(&self, kinds: &[Modelled]) {
        if kinds.is_empty() {
            return;
        }
        let distinct: HashSet<&Modelled> = kinds.iter().collect();
        self.count(|s| {
            for kind in distinct {
                *s.modelled.entry(kind.name().to_string()).or_default() += 1;
            }
        });
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StrictKind {
    Refused,
    Injected,
    Replayed,
}

/// Reads a hosted zone's name from the emulator for strict mode's Route 53 rules (the zone
/// may have been made without the proxy). Best effort: without it those rules skip the zone.
async fn learn_zone(shared: &Shared, headers: &HeaderMap, id: &str) {
    let Ok(mut request) = Request::builder()
        .method(Method::GET)
        .uri(format!("{}/2013-04-01/hostedzone/{id}", shared.upstream))
        .body(Full::new(Bytes::new()))
    else {
        return;
    };
    // The emulator reads the account and region from the credential scope.
    for name in [header::AUTHORIZATION.as_str(), "x-amz-date"] {
        if let Some(v) = headers.get(name) {
            request.headers_mut().insert(name, v.clone());
        }
    }
    if let Ok(response) = shared.client.request(request).await
        && response.status().is_success()
        && let Ok(body) = response.into_body().collect().await
    {
        shared.strict.learn_zone(id, &body.to_bytes());
    }
}

/// A successful JSON reply written by the proxy itself (ACM's idempotency memory).
fn json_reply(call: &Call, body: String, shape: &Shape<'_>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    let content_type = shape
        .content_type
        .filter(|ct| ct.starts_with("application/x-amz-json"))
        .unwrap_or("application/x-amz-json-1.1")
        .to_string();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(shape.request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    let _ = call;
    response
}

/// Hop-by-hop headers, which belong to one connection and are not forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    // The proxy has the whole body already; the emulator need not agree to receive it.
    "expect",
];

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in HOP_BY_HOP {
        out.remove(*name);
    }
    out
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    // A client that goes away mid-body gets nothing.
    let body = body.collect().await.map_err(|_| Withheld)?.to_bytes();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();

    if path.starts_with("/__proxy/") {
        return Ok(control(&shared, &parts.method, &path, &query).await);
    }
    if path.starts_with("/moto-api") {
        return Ok(match forward(&shared, &parts, body).await {
            Ok((status, headers, body)) => upstream_response(status, &headers, body, &parts.method),
            Err(e) => bad_gateway(&e),
        });
    }

    let (call, form) = call::identify(&RequestParts {
        method: &parts.method,
        path: &path,
        query: &query,
        headers: &parts.headers,
        body: &body,
    });
    let decision = shared.begin(&call);
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let shape = Shape {
        head: parts.method == Method::HEAD,
        content_type: content_type.as_deref(),
        request_id: &decision.request_id,
    };

    if let Some(epoch) = shared.closed_epoch() {
        return Err(shared.hold(epoch).await);
    }
    if decision.throttle {
        shared.count_fault(&call, |f| f.throttle += 1);
        return shared
            .deliver(wire::render(&call, &wire::throttling(&call), &shape))
            .await;
    }
    if decision.server_error {
        shared.count_fault(&call, |f| f.server_error += 1);
        return shared
            .deliver(wire::render(&call, &wire::internal_error(&call), &shape))
            .await;
    }
    if let Some(delay) = decision.delay {
        shared.count_fault(&call, |f| f.delay += 1);
        tokio::time::sleep(delay).await;
    }
    let exchange = Exchange {
        call: &call,
        form: &form,
        path: &path,
        body: &body,
    };
    let request = strict::Request::new(&call, &form, &body, &path);
    if let Some(zone) = shared.strict.zone_to_learn(&call, &path) {
        learn_zone(&shared, &parts.headers, &zone).await;
    }
    match shared.strict.check(&request) {
        Some(strict::Verdict::Refuse { rule, error }) => {
            shared.count_strict(&call, StrictKind::Refused, rule, Some(&error));
            return shared.deliver(wire::render(&call, &error, &shape)).await;
        }
        Some(strict::Verdict::Replay { name, body }) => {
            shared.count_strict(&call, StrictKind::Replayed, name, None);
            return shared.deliver(json_reply(&call, body, &shape)).await;
        }
        _ => {}
    }
    if let Some(model) = &shared.model
        && let Some((kind, error)) = model.refuse(&exchange)
    {
        shared.count_modelled(&[kind]);
        // The model's refusal of a new role is the strict injection for that role too.
        if kind == Modelled::RolePropagation
            && shared.strict.settings().injections
            && let Some(injection) = shared.strict.model_refused_role(&request)
        {
            shared.count_strict(&call, StrictKind::Injected, injection.name(), None);
        }
        return shared.deliver(wire::render(&call, &error, &shape)).await;
    }
    if let Some(strict::Verdict::Inject { injection, error }) = shared.strict.inject(&request) {
        shared.count_strict(&call, StrictKind::Injected, injection.name(), None);
        return shared.deliver(wire::render(&call, &error, &shape)).await;
    }

    let ticket = match shared.enter(&call) {
        Ok(ticket) => ticket,
        Err(epoch) => return Err(shared.hold(epoch).await),
    };
    let kill_point = ticket.kill_point;
    shared.count(|s| s.forwarded += 1);
    // The exchange with the emulator runs on its own, so a client that goes away (killed)
    // cannot cut it off halfway: what was forwarded is done, and the freeze knows when.
    let upstream = {
        let shared = shared.clone();
        let parts = parts.clone();
        let body = body.clone();
        tokio::spawn(async move {
            let result = forward(&shared, &parts, body).await;
            shared.exit(ticket);
            result
        })
    };
    let (status, headers, mut reply) = match upstream.await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => return shared.deliver(bad_gateway(&e)).await,
        Err(_) => return Err(Withheld),
    };

    if status.is_success() {
        shared.strict.observe(&request, &reply);
        if let Some(model) = &shared.model {
            let observed = model.observe(&exchange, &reply);
            shared.count_modelled(&observed.pending);
            if let Some(body) = observed.body {
                reply = Bytes::from(body);
            }
        }
        // The kill point's reply is held by the freeze anyway; it is not also dropped.
        if let Some(style) = decision.drop_reply.filter(|_| !kill_point) {
            shared.count_fault(&call, |f| f.drop_reply += 1);
            return match style {
                DropReply::Reset | DropReply::Either => match shared.closed_epoch() {
                    Some(epoch) => Err(shared.hold(epoch).await),
                    None => Err(Withheld),
                },
                DropReply::ServerError => {
                    shared
                        .deliver(wire::render(&call, &wire::internal_error(&call), &shape))
                        .await
                }
            };
        }
    }
    shared
        .deliver(upstream_response(status, &headers, reply, &parts.method))
        .await
}

#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error("bad upstream request: {0}")]
    Request(#[from] http::Error),
    #[error("the emulator did not answer: {0}")]
    Send(#[from] hyper_util::client::legacy::Error),
    #[error("the emulator's reply broke off: {0}")]
    Body(#[from] hyper::Error),
}

async fn forward(
    shared: &Shared,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Bytes), ForwardError> {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{}", shared.upstream, path_and_query))
        .body(Full::new(body))?;
    let mut headers = end_to_end(&parts.headers);
    // hyper writes the length of the buffered body itself.
    headers.remove(header::CONTENT_LENGTH);
    *request.headers_mut() = headers;
    let response = shared.client.request(request).await?;
    let (head, body) = response.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok((head.status, head.headers, bytes))
}

fn upstream_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
    method: &Method,
) -> Response<Full<Bytes>> {
    let mut out_headers = end_to_end(headers);
    // The body may have been rewritten: hyper writes its length. A reply to HEAD keeps the
    // length of the body it describes.
    if *method != Method::HEAD {
        out_headers.remove(header::CONTENT_LENGTH);
    }
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
}

fn bad_gateway(error: &ForwardError) -> Response<Full<Bytes>> {
    text_response(StatusCode::BAD_GATEWAY, error.to_string())
}

fn text_response(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The control endpoints (see the module docs).
async fn control(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &str,
) -> Response<Full<Bytes>> {
    let params = call::parse_form(query);
    let param = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let ok = || json_response(StatusCode::OK, &serde_json::json!({ "ok": true }));
    match (method.as_str(), path) {
        ("GET", "/__proxy/stats") => json_response(StatusCode::OK, &shared.counters().stats),
        ("POST", "/__proxy/reset") => {
            shared.reset();
            ok()
        }
        ("POST", "/__proxy/freeze") => match param("after").map(str::parse::<u64>) {
            Some(Ok(n)) => {
                shared.freeze_after(n);
                ok()
            }
            _ => text_response(
                StatusCode::BAD_REQUEST,
                "freeze needs ?after=N (a whole number)".into(),
            ),
        },
        ("GET" | "POST", "/__proxy/frozen") => {
            let timeout = param("timeout_ms")
                .and_then(|t| t.parse().ok())
                .map_or(Duration::from_secs(60), Duration::from_millis);
            let mut rx = shared.freeze.subscribe();
            let frozen = tokio::time::timeout(timeout, async {
                loop {
                    if let Phase::Frozen(f) = &rx.borrow_and_update().phase {
                        return Some(f.clone());
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            })
            .await;
            match frozen {
                Ok(Some(f)) => json_response(StatusCode::OK, &f),
                _ => text_response(StatusCode::GATEWAY_TIMEOUT, "not frozen yet".into()),
            }
        }
        ("POST", "/__proxy/unfreeze") => {
            shared.unfreeze();
            ok()
        }
        ("GET", "/__proxy/faults") => {
            json_response(StatusCode::OK, &faults_json(&lock(&shared.faults)))
        }
        ("POST", "/__proxy/faults") => {
            let mut faults = lock(&shared.faults).clone();
            match apply_fault_params(&mut faults, &params) {
                Ok(()) => {
                    let json = faults_json(&faults);
                    *lock(&shared.faults) = faults;
                    json_response(StatusCode::OK, &json)
                }
                Err(message) => text_response(StatusCode::BAD_REQUEST, message),
            }
        }
        ("GET", "/__proxy/model") => match &shared.model {
            Some(model) => json_response(StatusCode::OK, &model.latency().table()),
            None => text_response(StatusCode::NOT_FOUND, "no latency model".into()),
        },
        ("GET", "/__proxy/strict") => json_response(StatusCode::OK, &shared.strict.settings()),
        ("POST", "/__proxy/strict") => {
            let mut settings = shared.strict.settings();
            let flag = |v: &str| v == "true" || v == "1";
            for (key, value) in &params {
                match key.as_str() {
                    "mode" => match value.parse::<Strict>() {
                        Ok(s) => settings = s,
                        Err(e) => return text_response(StatusCode::BAD_REQUEST, e.to_string()),
                    },
                    "rules" => settings.rules = flag(value),
                    "injections" => settings.injections = flag(value),
                    _ => {
                        return text_response(
                            StatusCode::BAD_REQUEST,
                            format!("unknown strict setting {key:?} (mode, rules, injections)"),
                        );
                    }
                }
            }
            shared.strict.set(settings);
            json_response(StatusCode::OK, &settings)
        }
        ("GET", "/__proxy/health") => ok(),
        _ => text_response(
            StatusCode::NOT_FOUND,
            format!("no control endpoint {method} {path}"),
        ),
    }
}

fn faults_json(f: &Faults) -> serde_json::Value {
    serde_json::json!({
        "throttle": f.throttle,
        "server_error": f.server_error,
        "drop_reply": f.drop_reply,
        "delay": f.delay,
        "delay_max_ms": f.delay_max.as_millis() as u64,
        "drop_reply_as": f.drop_reply_as,
        "mutating_only": f.only.mutating_only,
        "services": f.only.services,
        "operations": f.only.operations,
    })
}

fn apply_fault_params(faults: &mut Faults, params: &[(String, String)]) -> Result<(), String> {
    fn rate(key: &str, value: &str) -> Result<f64, String> {
        match value.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(format!(
                "{key} must be a share between 0 and 1, not {value:?}"
            )),
        }
    }
    let list = |v: &str| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    for (key, value) in params {
        match key.as_str() {
            "throttle" => faults.throttle = rate(key, value)?,
            "server_error" => faults.server_error = rate(key, value)?,
            "drop_reply" => faults.drop_reply = rate(key, value)?,
            "delay" => faults.delay = rate(key, value)?,
            "delay_max_ms" => {
                faults.delay_max =
                    Duration::from_millis(value.parse().map_err(|_| {
                        format!("delay_max_ms must be a whole number, not {value:?}")
                    })?)
            }
            "drop_reply_as" => {
                faults.drop_reply_as = match value.as_str() {
                    "reset" => DropReply::Reset,
                    "server-error" => DropReply::ServerError,
                    "either" => DropReply::Either,
                    _ => {
                        return Err(format!(
                            "drop_reply_as is reset, server-error or either, not {value:?}"
                        ));
                    }
                }
            }
            "mutating_only" => faults.only.mutating_only = value == "true" || value == "1",
            "services" => faults.only.services = list(value),
            "operations" => faults.only.operations = list(value),
            _ => return Err(format!("unknown fault setting {key:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fault_sequence_depends_only_on_seed_and_index() {
        let a: Vec<f64> = (0..1000).map(|i| unit(42, i, 1)).collect();
        let b: Vec<f64> = (0..1000).map(|i| unit(42, i, 1)).collect();
        let c: Vec<f64> = (0..1000).map(|i| unit(43, i, 1)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|u| (0.0..1.0).contains(u)));
        let share = a.iter().filter(|u| **u < 0.25).count();
        assert!((200..300).contains(&share), "{share}");
    }
}
