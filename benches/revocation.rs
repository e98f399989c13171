//! How late an elevation is revoked after it expires (DESIGN.md §7: p99 ≤ 1 s, also across an operator
//! restart), against the real test control plane (kube-apiserver + etcd from tests/cluster) and the
//! in-process ARM simulator with ARM's throttling. The CriticalOperationRequest controller runs
//! in-process with production defaults (concurrency 16, client-side throttle on, default retries).
//!
//! Every part first sets up N requests the way people make them: per request one ResourceGuard with
//! `spec.elevation` (its own guard in Azure, so each grant is a role assignment of its own) and one
//! VaultProtection naming it (distinct VaultProtections, so no request waits for another's elevation; no
//! VaultProtection controller runs: a request only needs its VaultProtection to exist). Each request is
//! created as backup-admin for `5m` (the API's minimum) and approved by approver-a by server-side apply on
//! the status subresource (field manager `kubectl-mua/approver-a`). Nothing is timed before all are Active.
//!
//! - `real-time`: the operator on the system clock; the benchmark waits for the real expiry. Lateness is
//!   measured from `status.expiresAt`, the exact end the operator enforces (a whole second, as
//!   `metav1.Time` holds it, and the end Azure was given).
//! - `simulator-clock`: the operator on the simulator's clock, which the benchmark moves past every
//!   request's end at once: from that jump to each request's Expired (the controller looks at every
//!   request again when its clock jumps).
//! - `restart`: the controller is stopped with every request Active, the simulator's clock is moved past
//!   the expiry, and a fresh controller (new context, clients and credentials) is started: from that start
//!   to each request's Expired.
//!
//! Run with `cargo bench --bench revocation` (all parts, about 8 minutes: `real-time` waits out the 5
//! minutes); `-- real-time simulator-clock restart` picks parts. `MUA_BENCH_QUICK=1` uses 10 requests
//! instead of 50, `MUA_BENCH_REQUESTS` any number.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark, like a test, stops at the first broken precondition"
)]

#[path = "../tests/cluster/mod.rs"]
mod cluster;
#[path = "../tests/simulator/mod.rs"]
mod simulator;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cluster::{ControlPlane, TestNamespace, User};
use futures::{StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use mua_operator::azure::authorization::BACKUP_MUA_OPERATOR;
use mua_operator::azure::{ArmClient, ArmMetrics};
use mua_operator::controller::{BackupIdentity, Context, SecurityContext, SecuritySide, critical_operation_request};
use mua_operator::crd::critical_operation_request::RequestPhase;
use mua_operator::crd::{CriticalOperationRequest, ResourceGuard, VaultProtection};
use mua_operator::sim::state::SimState;
use prometheus_client::registry::Registry;
use serde_json::json;
use simulator::*;
use support::timing::{Reconcile, ReconcileTimer};
use support::{met, ms, percentile};

const PARTS: [&str; 3] = ["real-time", "simulator-clock", "restart"];
/// Every request's duration: the shortest the API accepts.
const DURATION_TEXT: &str = "5m";
const DURATION: Duration = Duration::from_secs(300);
/// DESIGN.md §7: elevation revoked after expiry, p99.
const TARGET: Duration = Duration::from_secs(1);
/// API calls the benchmark makes at once while setting up (creates, approvals).
const SETUP_CONCURRENCY: usize = 8;
/// What kube-runtime calls a reconcile its requeue timer started.
const TIMER: &str = "reconciler requested retry";

fn requests() -> usize {
    support::env_number("MUA_BENCH_REQUESTS", if support::quick() { 10 } else { 50 })
}

fn main() {
    let run = support::chosen(&PARTS);
    let timer = ReconcileTimer::default();
    support::trace(&timer);
    ANCHOR.get_or_init(|| (Instant::now(), Timestamp::now()));

    let n = requests();
    let runtime = support::runtime();
    let cp = ControlPlane::shared();
    println!(
        "revocation: {n} requests of {DURATION_TEXT} per part; {} CPUs; load average {}; API server {}",
        support::cpus(),
        support::load(),
        cp.server
    );
    runtime.block_on(async {
        if run("real-time") {
            real_time(cp, &timer, n).await;
        }
        if run("simulator-clock") {
            simulator_clock(cp, &timer, n).await;
        }
        if run("restart") {
            restart(cp, &timer, n).await;
        }
    });
}

// ---------------------------------------------------------------------------------------------------
// Time

/// One instant and the wall-clock time it was, to place the spans' `Instant`s on the wall clock.
static ANCHOR: OnceLock<(Instant, Timestamp)> = OnceLock::new();

/// The wall-clock time of `at` (the system clock, which is also the simulator's until a part moves it).
fn wall(at: Instant) -> Timestamp {
    let (instant, time) = *ANCHOR.get().expect("the anchor is set in main");
    let since = SignedDuration::try_from(at.saturating_duration_since(instant)).unwrap_or_default();
    let before = SignedDuration::try_from(instant.saturating_duration_since(at)).unwrap_or_default();
    time + since - before
}

/// `later` − `earlier`, signed.
fn between(earlier: Timestamp, later: Timestamp) -> SignedDuration {
    later.duration_since(earlier)
}

/// Sorted durations and how many were negative (counted as zero): p50, p90, p99, max, n.
struct Spread {
    sorted: Vec<Duration>,
    early: usize,
}

impl Spread {
    fn new(values: impl IntoIterator<Item = Duration>) -> Self {
        let mut sorted: Vec<Duration> = values.into_iter().collect();
        sorted.sort();
        Spread { sorted, early: 0 }
    }

    fn signed(values: impl IntoIterator<Item = SignedDuration>) -> Self {
        let values: Vec<SignedDuration> = values.into_iter().collect();
        let early = values.iter().filter(|d| d.is_negative()).count();
        let mut spread = Spread::new(values.into_iter().map(|d| Duration::try_from(d).unwrap_or_default()));
        spread.early = early;
        spread
    }

    fn p(&self, q: f64) -> Duration {
        percentile(&self.sorted, q)
    }

    /// `[target p99 <= 1 s: met]`.
    fn target(&self) -> String {
        format!("[target p99 <= 1 s: {}]", met(self.p(0.99) <= TARGET))
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}, p90 {}, p99 {}, max {}, n = {}",
            ms(self.p(0.5)),
            ms(self.p(0.9)),
            ms(self.p(0.99)),
            ms(self.sorted.last().copied().unwrap_or_default()),
            self.sorted.len()
        )?;
        if self.early > 0 {
            write!(f, " ({} before the expiry, counted as 0)", self.early)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------
// What the benchmark sees of the requests

/// One request as the benchmark's watch saw it.
#[derive(Clone, Debug, Default)]
struct Seen {
    /// When the watch first showed phase Active, and Expired.
    active: Option<Instant>,
    expired: Option<Instant>,
    /// `status.expiresAt`: the exact end the operator enforces (whole seconds).
    expires: Option<Timestamp>,
    /// `status.endedAt`: when the operator recorded the end (whole seconds, after Azure took the removal).
    ended_at: Option<Timestamp>,
}

type Sightings = Arc<Mutex<BTreeMap<String, Seen>>>;

/// Watches the namespace's requests and notes when each became Active and Expired.
fn watch_requests(api: Api<CriticalOperationRequest>) -> (Sightings, tokio::task::JoinHandle<()>) {
    let sightings = Sightings::default();
    let noted = sightings.clone();
    let task = tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let cor = match event {
                Ok(watcher::Event::Apply(cor) | watcher::Event::InitApply(cor)) => cor,
                Ok(_) => continue,
                Err(err) => {
                    eprintln!("watch error: {err}");
                    continue;
                }
            };
            let now = Instant::now();
            let Some(status) = &cor.status else { continue };
            let mut all = noted.lock().unwrap();
            let seen = all.entry(cor.name_any()).or_default();
            match status.phase {
                Some(RequestPhase::Active) => {
                    seen.active.get_or_insert(now);
                }
                Some(RequestPhase::Expired) => {
                    seen.expired.get_or_insert(now);
                }
                _ => {}
            }
            seen.expires = status.expires_at.as_ref().map(|t| t.0);
            seen.ended_at = status.ended_at.as_ref().map(|t| t.0);
        }
    });
    (sightings, task)
}

/// When each guard's grant was gone from the simulator's listing, polled every 10 ms. The simulator
/// ends an assignment at its Azure-side end time lazily, on its next access: the poll is that access.
#[derive(Default)]
struct Grants {
    /// By lowercase guard ID: the assignment's Azure-side end (simulated clock).
    end: HashMap<String, Timestamp>,
    /// By lowercase guard ID: when the assignment was first missing (simulated clock).
    gone: HashMap<String, Timestamp>,
}

fn poll_grants(state: Arc<SimState>) -> (Arc<Mutex<Grants>>, tokio::task::JoinHandle<()>) {
    let grants = Arc::new(Mutex::new(Grants::default()));
    let polled = grants.clone();
    let task = tokio::spawn(async move {
        loop {
            let listed: HashMap<String, Option<Timestamp>> = state.read(|world| {
                world
                    .role_assignments
                    .values()
                    .filter(|a| {
                        a.principal_id.eq_ignore_ascii_case(BACKUP_OID)
                            && a.role_definition.eq_ignore_ascii_case(BACKUP_MUA_OPERATOR)
                    })
                    .map(|a| (a.scope.to_ascii_lowercase(), a.end_time))
                    .collect()
            });
            let now = state.clock.now();
            {
                let mut g = polled.lock().unwrap();
                for (scope, end) in &listed {
                    if let Some(end) = end {
                        g.end.entry(scope.clone()).or_insert(*end);
                    }
                }
                let missing: Vec<String> = g.end.keys().filter(|s| !listed.contains_key(*s)).cloned().collect();
                for scope in missing {
                    g.gone.entry(scope).or_insert(now);
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    (grants, task)
}

/// When the operator's AdminRemove of each guard's grant went through, by lowercase guard ID (a removal
/// that found the grant already ended by Azure is refused and not stored).
fn removals(state: &SimState) -> HashMap<String, Timestamp> {
    state.read(|world| {
        world
            .schedule_requests
            .values()
            .map(|r| &r["properties"])
            .filter(|p| p["requestType"] == "AdminRemove")
            .filter_map(|p| {
                let scope = p["scope"].as_str()?.to_ascii_lowercase();
                Some((scope, p["createdOn"].as_str()?.parse().ok()?))
            })
            .collect()
    })
}

/// The reconciles of `name` in `namespace`, by start.
fn reconciles_of<'a>(records: &'a [Reconcile], namespace: &str, name: &str) -> Vec<&'a Reconcile> {
    let suffix = format!("/{name}.{namespace}");
    let mut of: Vec<&Reconcile> = records.iter().filter(|r| r.object.ends_with(&suffix)).collect();
    of.sort_by_key(|r| r.started);
    of
}

/// The last reconcile of a request that started before `before` (the one whose status write the watch
/// then showed).
fn last_before<'a>(reconciles: &[&'a Reconcile], before: Instant) -> Option<&'a Reconcile> {
    reconciles.iter().rev().find(|r| r.started < before).copied()
}

// ---------------------------------------------------------------------------------------------------
// Setting up

fn request_name(i: usize) -> String {
    format!("r-{i}")
}

fn azure_guard_name(i: usize) -> String {
    format!("revocation-guard-{i}")
}

/// One part's world: a namespace and a simulator with N guards and VaultProtections, and a watch on the
/// namespace's requests.
struct Setup {
    part: &'static str,
    n: usize,
    ns: TestNamespace,
    ts: TestSim,
    seen: Sightings,
    watch: tokio::task::JoinHandle<()>,
}

impl Setup {
    async fn new(cp: &ControlPlane, part: &'static str, n: usize) -> Setup {
        let ns = cp.namespace(&format!("revocation-{part}")).await;
        // The seed's vaults for the VaultProtections to name (no VaultProtection controller runs).
        let dir = tempfile::tempdir().expect("a temporary directory");
        let seed = dir.path().join("bench-seed.yaml");
        let text = yaml_serde::to_string(&support::seed(n, 0)).expect("the seed serializes");
        std::fs::write(&seed, text).expect("writing the seed");
        let ts = TestSim::start_with(|options| {
            options.seed = Some(seed);
            options.throttling = true;
        })
        .await;
        // The guards in Azure, made by the security side (its own writes: see `writes`).
        futures::stream::iter(0..n)
            .map(|i| {
                let ts = &ts;
                async move { ts.create_guard(&azure_guard_name(i)).await }
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let guards: Vec<ResourceGuard> = (0..n)
            .map(|i| {
                object(json!({
                    "apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": format!("g-{i}")},
                    "spec": {
                        "subscriptionId": SECURITY_SUB, "resourceGroup": "security-rg", "name": azure_guard_name(i),
                        "region": "westeurope",
                        "elevation": {"approvers": {"groups": ["mua-approvers"]}, "requiredApprovals": 1, "maxDuration": "1h"},
                    },
                }))
            })
            .collect();
        support::create_all(&ns.admin_api(), guards, SETUP_CONCURRENCY).await;
        let protections: Vec<VaultProtection> = (0..n)
            .map(|i| {
                object(json!({
                    "apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": format!("vp-{i}")},
                    "spec": {"vault": {"id": vault(&support::vault_name(i))}, "guard": {"name": format!("g-{i}")}},
                }))
            })
            .collect();
        support::create_all(&ns.admin_api(), protections, SETUP_CONCURRENCY).await;
        let (seen, watch) = watch_requests(ns.admin_api());
        Setup {
            part,
            n,
            ns,
            ts,
            seen,
            watch,
        }
    }

    /// Creates the N requests as backup-admin and approves each as approver-a (as `kubectl mua approve`
    /// does); waits until all are Active. The controller must be running.
    async fn request_and_approve(&self, cp: &ControlPlane) {
        let requester: Api<CriticalOperationRequest> = self.ns.api(cp.client(User::BackupAdmin).await);
        let requests: Vec<CriticalOperationRequest> = (0..self.n)
            .map(|i| {
                object(json!({
                    "apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
                    "metadata": {"name": request_name(i)},
                    "spec": {"vaultProtection": format!("vp-{i}"), "operation": "DisableSoftDelete",
                             "duration": DURATION_TEXT, "justification": "revocation benchmark"},
                }))
            })
            .collect();
        support::create_all(&requester, requests, SETUP_CONCURRENCY).await;
        let approver: Api<CriticalOperationRequest> = self.ns.api(cp.client(User::ApproverA).await);
        let manager = format!("kubectl-mua/{}", User::ApproverA.name());
        futures::stream::iter(0..self.n)
            .map(|i| {
                let (approver, manager) = (&approver, &manager);
                let approval = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
                    "status": {"approvals": [{"approver": User::ApproverA.name(), "groups": [User::ApproverA.group()],
                        "decision": "Approve", "time": Timestamp::now().to_string(), "comment": "checked"}]}});
                async move {
                    approver
                        .patch_status(&request_name(i), &PatchParams::apply(manager), &Patch::Apply(approval))
                        .await
                }
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await
            .expect("approving the requests");
        let active = self.wait_all(Duration::from_secs(120), |s| s.active.is_some()).await;
        assert_eq!(active, self.n, "[{}] not every request became Active", self.part);
    }

    /// Waits until every request passes `done`, for at most `within`; returns how many did.
    async fn wait_all(&self, within: Duration, done: impl Fn(&Seen) -> bool) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let count = self.seen.lock().unwrap().values().filter(|s| done(s)).count();
            if count >= self.n || Instant::now() >= deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn seen(&self, name: &str) -> Seen {
        self.seen.lock().unwrap().get(name).cloned().unwrap_or_default()
    }

    /// The security identity's ARM writes the simulator admitted so far (guards, grants, removals; token
    /// requests not counted), for comparison with ARM's write bucket.
    fn writes(&self) -> u64 {
        let calls = self.ts.sim.state.calls();
        calls
            .by_principal
            .iter()
            .filter(|(principal, _)| principal.eq_ignore_ascii_case(SECURITY_OID))
            .flat_map(|(_, routes)| routes.iter())
            .filter(|(route, _)| !route.contains("oauth2"))
            .filter(|(route, _)| {
                ["PUT ", "PATCH ", "POST ", "DELETE "]
                    .iter()
                    .any(|m| route.starts_with(m))
            })
            .map(|(_, n)| n)
            .sum()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

fn object<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
    serde_json::from_value(value).expect("a well-formed object")
}

// ---------------------------------------------------------------------------------------------------
// The operator

/// The CriticalOperationRequest controller running in-process.
struct Operator {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    arm: ArmMetrics,
}

impl Operator {
    /// Starts the controller over the part's namespace with a context of its own, as a new operator
    /// process has: a new Kubernetes client, new ARM clients and credentials (production defaults), on
    /// the simulator's clock or (`sim_clock == false`) the system clock.
    async fn start(cp: &ControlPlane, setup: &Setup, sim_clock: bool) -> Operator {
        let ts = &setup.ts;
        let arm = ArmMetrics::new();
        let client =
            |credential| ArmClient::new(&ts.cloud, ts.http.clone(), CONTOSO, credential).with_metrics(arm.clone());
        let mut shared = Context::new(cp.client(User::Admin).await).with_namespace(Some(setup.ns.name.clone()));
        if sim_clock {
            shared = shared.with_clock(ts.sim.state.clock.clone());
        }
        let security = SecuritySide::new(client(ts.security_side()))
            .identifying_backup(BackupIdentity::of(&client(ts.backup_side())));
        let ctx = SecurityContext::new(Arc::new(shared), security);
        let api = Api::namespaced(ctx.client.clone(), &setup.ns.name);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(critical_operation_request::run(api, Arc::new(ctx), async {
            let _ = stopped.await;
        }));
        Operator { stop, task, arm }
    }

    /// Stops it (as `Operator::stop` in tests/it/operator.rs does: every copy of the operator gone) and waits
    /// for the reconciles in flight; returns its ARM metrics.
    async fn stop(self) -> ArmMetrics {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
        self.arm
    }
}

/// The operator's ARM calls by method, route and status, how many were answered 429, and its client-side
/// throttle waits.
fn arm_calls(metrics: &ArmMetrics) -> String {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let samples = support::scrape(&registry);
    let mut calls: Vec<String> = samples
        .iter()
        .filter(|s| s.name == "mua_arm_requests_total")
        .map(|s| {
            format!(
                "{} {} -> {}: {}",
                s.labels["method"], s.labels["route"], s.labels["status"], s.value
            )
        })
        .collect();
    calls.sort();
    let throttled = support::sum(&samples, "mua_arm_requests_total", |l| l["status"] == "429");
    let waits = support::sum(&samples, "mua_arm_throttle_waits_total", |_| true);
    let waited = support::sum(&samples, "mua_arm_throttle_wait_seconds_total", |_| true);
    format!(
        "{}; answered 429: {throttled:.0}; calls that waited for the client-side throttle: {waits:.0}, {:.1} ms in all",
        calls.join(", "),
        waited * 1000.0
    )
}

fn print_throttle(setup: &Setup, metrics: &ArmMetrics) {
    let p = setup.part;
    println!("[{p}] the operator's ARM calls: {}", arm_calls(metrics));
    println!(
        "[{p}] the security identity's ARM writes in this part (guards made by the benchmark included): {} \
         (ARM's write bucket per identity and subscription: 200 at once, then 10/s)",
        setup.writes()
    );
}

// ---------------------------------------------------------------------------------------------------
// The parts

/// Part 1: the operator on the system clock; the benchmark waits out the 5 minutes.
async fn real_time(cp: &ControlPlane, timer: &ReconcileTimer, n: usize) {
    let setup = Setup::new(cp, "real-time", n).await;
    let p = setup.part;
    let (grants, poller) = poll_grants(setup.ts.sim.state.clone());
    timer.take();
    let operator = Operator::start(cp, &setup, false).await;
    setup.request_and_approve(cp).await;
    let first = (0..n).filter_map(|i| setup.seen(&request_name(i)).expires).min();
    let last = (0..n).filter_map(|i| setup.seen(&request_name(i)).expires).max();
    if let (Some(first), Some(last)) = (first, last) {
        println!(
            "[{p}] {n} requests Active; their elevations end within {:.2} s of each other, the last at {last}; waiting",
            between(first, last).as_secs_f64()
        );
    }
    let expired = setup
        .wait_all(DURATION + Duration::from_secs(120), |s| s.expired.is_some())
        .await;
    let metrics = operator.stop().await;
    poller.abort();
    let records = timer.take();
    let grants = std::mem::take(&mut *grants.lock().unwrap());
    let removed = removals(&setup.ts.sim.state);

    let (mut looked, mut revoked, mut observed, mut recorded) = (vec![], vec![], vec![], vec![]);
    let (mut gone, mut azure_end) = (vec![], vec![]);
    let (mut by_timer, mut by_operator) = (0, 0);
    for i in 0..n {
        let name = request_name(i);
        let seen = setup.seen(&name);
        let (Some(expires), Some(expired)) = (seen.expires, seen.expired) else {
            continue;
        };
        observed.push(between(expires, wall(expired)));
        if let Some(ended) = seen.ended_at {
            recorded.push(between(expires, ended));
        }
        let reconciles = reconciles_of(&records, &setup.ns.name, &name);
        if let Some(expiry) = last_before(&reconciles, expired) {
            looked.push(between(expires, wall(expiry.started)));
            revoked.push(between(expires, wall(expiry.started + expiry.wall)));
            by_timer += usize::from(expiry.reason == TIMER);
        }
        let scope = guard(&azure_guard_name(i)).to_ascii_lowercase();
        if let Some(at) = grants.gone.get(&scope) {
            gone.push(between(expires, *at));
        }
        if let Some(end) = grants.end.get(&scope) {
            azure_end.push(between(expires, *end));
        }
        by_operator += usize::from(removed.contains_key(&scope));
    }

    println!("[{p}] load average at the end: {}", support::load());
    println!("[{p}] {expired} of {n} requests Expired. Lateness after status.expiresAt (the exact end):");
    let revoked = Spread::signed(revoked);
    println!(
        "[{p}]   revoked in Azure and recorded (the expiry reconcile's end): {revoked} {}",
        revoked.target()
    );
    println!(
        "[{p}]   the expiry reconcile started (its requeue timer fired):    {}",
        Spread::signed(looked)
    );
    println!(
        "[{p}]   phase Expired seen by a watch:                            {}",
        Spread::signed(observed)
    );
    println!(
        "[{p}]   status.endedAt - status.expiresAt (as written, whole seconds): {}",
        Spread::signed(recorded)
    );
    println!(
        "[{p}]   the grant gone from the simulator's listing:              {} ({by_operator} removed by the \
         operator's AdminRemove, the rest by Azure's own end time)",
        Spread::signed(gone)
    );
    println!(
        "[{p}]   Azure's own end of the grant (the end the grant asked for): {}",
        Spread::signed(azure_end)
    );
    println!("[{p}] {by_timer} of {expired} expiry reconciles were started by the requeue timer");
    print_throttle(&setup, &metrics);
}

/// Part 2: the operator on the simulator's clock, which jumps past every request's end at once.
async fn simulator_clock(cp: &ControlPlane, timer: &ReconcileTimer, n: usize) {
    let setup = Setup::new(cp, "simulator-clock", n).await;
    let p = setup.part;
    let operator = Operator::start(cp, &setup, true).await;
    setup.request_and_approve(cp).await;
    timer.take();
    let jumped = Instant::now();
    setup.ts.sim.state.clock.advance(DURATION + Duration::from_secs(1));
    println!(
        "[{p}] {n} requests Active; the simulator's clock jumped {} s on, past every end at once",
        DURATION.as_secs() + 1
    );
    let expired = setup.wait_all(Duration::from_secs(60), |s| s.expired.is_some()).await;
    let metrics = operator.stop().await;
    let records = timer.take();

    let (mut observed, mut started, mut done) = (vec![], vec![], vec![]);
    for i in 0..n {
        let name = request_name(i);
        let Some(at) = setup.seen(&name).expired else { continue };
        observed.push(at.saturating_duration_since(jumped));
        if let Some(expiry) = last_before(&reconciles_of(&records, &setup.ns.name, &name), at) {
            started.push(expiry.started.saturating_duration_since(jumped));
            done.push((expiry.started + expiry.wall).saturating_duration_since(jumped));
        }
    }
    println!("[{p}] load average at the end: {}", support::load());
    println!("[{p}] {expired} of {n} Expired; from the jump to:");
    let observed = Spread::new(observed);
    println!(
        "[{p}]   phase Expired seen by a watch: {observed} {}",
        observed.target()
    );
    println!("[{p}]   the expiry reconcile started:  {}", Spread::new(started));
    println!("[{p}]   the expiry reconcile ended:    {}", Spread::new(done));
    print_throttle(&setup, &metrics);
}

/// Part 3: every request Active, the operator gone, the clock past the expiry, a fresh operator.
async fn restart(cp: &ControlPlane, timer: &ReconcileTimer, n: usize) {
    let setup = Setup::new(cp, "restart", n).await;
    let p = setup.part;
    let first = Operator::start(cp, &setup, true).await;
    setup.request_and_approve(cp).await;
    let before = first.stop().await;
    setup.ts.sim.state.clock.advance(DURATION + Duration::from_secs(1));
    let listed = setup.ts.sim.state.read(|world| {
        world
            .role_assignments
            .values()
            .filter(|a| a.role_definition.eq_ignore_ascii_case(BACKUP_MUA_OPERATOR))
            .count()
    });
    println!(
        "[{p}] {n} requests Active; the operator stopped; the simulator's clock moved {} s on (grants Azure still \
         lists: {listed}, its own end time removed the rest); starting a fresh operator",
        DURATION.as_secs() + 1
    );
    timer.take();
    let restarted = Instant::now();
    let second = Operator::start(cp, &setup, true).await;
    let expired = setup.wait_all(Duration::from_secs(120), |s| s.expired.is_some()).await;
    let metrics = second.stop().await;
    let records = timer.take();

    let mut lateness = vec![];
    let mut first_reconcile: Option<Instant> = None;
    for i in 0..n {
        let name = request_name(i);
        let Some(at) = setup.seen(&name).expired else { continue };
        lateness.push(at.saturating_duration_since(restarted));
        for r in reconciles_of(&records, &setup.ns.name, &name) {
            first_reconcile = Some(first_reconcile.map_or(r.started, |f| f.min(r.started)));
        }
    }
    println!("[{p}] load average at the end: {}", support::load());
    let lateness = Spread::new(lateness);
    println!(
        "[{p}] {expired} of {n} Expired; from the fresh operator's start to phase Expired seen by a watch: {lateness} {}",
        lateness.target()
    );
    if let Some(at) = first_reconcile {
        println!(
            "[{p}]   of which until its first reconcile started (client, initial list): {}",
            ms(at.saturating_duration_since(restarted))
        );
    }
    println!("[{p}] before the restart: {}", arm_calls(&before));
    print_throttle(&setup, &metrics);
}
