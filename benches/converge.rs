//! Convergence at scale, against the real test control plane (kube-apiserver + etcd from tests/cluster)
//! and the in-process ARM simulator with ARM's throttling, with the operator's controllers in-process
//! (and, for the memory figure, the real `mua-operator run` binary):
//!
//! - `guards`: N ResourceGuards created at once → all Ready; time against the write throttle's floor,
//!   429 share, ARM reads and writes per object, failures, operator overhead per reconcile.
//! - `guards-unthrottled`: the same with throttling off at both ends: the operator's own cost.
//! - `vaults`: N VaultProtections linking N seeded vaults to one guard (by `guard.id`), backup side.
//! - `watch`: M ResourceGuards watched by `mua-operator run` as a process: peak RSS, connections to the
//!   API server, API-server errors.
//!
//! Run with `cargo bench --bench converge` (all parts; `-- guards vaults` picks parts). Scale:
//! `MUA_BENCH_OBJECTS` (default 1000), `MUA_BENCH_WATCHED` (default 10000); `MUA_BENCH_QUICK=1` is a
//! smoke run (50 objects, 500 watched). `MUA_BENCH_WRAP` (e.g. `heaptrack`) runs the `watch` part's
//! operator under a wrapper such as a heap profiler.

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

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::{ControlPlane, User};
use kube::Resource;
use kube::api::Api;
use mua_operator::azure::{ArmClient, ArmMetrics, ThrottlePolicy};
use mua_operator::controller::{
    BackupSide, Context, SecuritySide, SideContext, SideState, resource_guard, vault_protection,
};
use mua_operator::crd::{CriticalOperationRequest, ResourceGuard, VaultProtection};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use serde_json::json;
use simulator::*;
use support::apiserver::Latency;
use support::timing::{Reconcile, ReconcileTimer};
use support::{Sample, met, ms, percentile, sum};

/// Objects created at once by the API client: enough to outrun the operator, few enough for 2 cores.
const CREATE_CONCURRENCY: usize = 32;
/// Subscriptions the watched guards are spread over (so the operator's writes fit ARM's buckets).
const WATCH_SUBSCRIPTIONS: usize = 100;

struct Scale {
    objects: usize,
    watched: usize,
}

fn scale() -> Scale {
    let quick = support::quick();
    Scale {
        objects: support::env_number("MUA_BENCH_OBJECTS", if quick { 50 } else { 1000 }),
        watched: support::env_number("MUA_BENCH_WATCHED", if quick { 500 } else { 10_000 }),
    }
}

const PARTS: [&str; 4] = ["guards", "guards-unthrottled", "vaults", "watch"];

fn main() {
    let run = support::chosen(&PARTS);
    let timer = ReconcileTimer::default();
    support::trace(&timer);

    let scale = scale();
    let runtime = support::runtime();
    let cp = ControlPlane::shared();
    println!(
        "converge: {} objects, {} watched; {} CPUs; API server {}",
        scale.objects,
        scale.watched,
        support::cpus(),
        cp.server
    );
    runtime.block_on(async {
        warm_up(cp).await;
        if run("guards") {
            guards(cp, &timer, scale.objects, true).await;
        }
        if run("guards-unthrottled") {
            guards(cp, &timer, scale.objects, false).await;
        }
        if run("vaults") {
            vaults(cp, &timer, scale.objects).await;
        }
        if run("watch") {
            watch(cp, scale.watched).await;
        }
    });
}

/// The first objects of a kind a fresh API server stores take it seconds (building the CRD's validation
/// and storage); one of each kind, in a namespace no controller watches, keeps that out of the figures.
async fn warm_up(cp: &ControlPlane) {
    let ns = cp.namespace("warm-up").await;
    let warm_guard: ResourceGuard = serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": "warm-up"},
        "spec": {"subscriptionId": SECURITY_SUB, "resourceGroup": "security-rg", "name": "warm-up", "region": "westeurope"},
    }))
    .expect("a ResourceGuard");
    let protection: VaultProtection = serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "warm-up"},
        "spec": {"vault": {"id": vault("warm-up")}, "guard": {"id": guard("warm-up")}},
    }))
    .expect("a VaultProtection");
    let started = Instant::now();
    support::create_all(&ns.admin_api(), vec![warm_guard], CREATE_CONCURRENCY).await;
    support::create_all(&ns.admin_api(), vec![protection], CREATE_CONCURRENCY).await;
    println!(
        "warm-up: the first two objects took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn start_sim(seed: Option<&std::path::Path>, throttling: bool) -> TestSim {
    let seed = seed.map(|p| p.to_path_buf());
    TestSim::start_with(move |options| {
        if let Some(seed) = seed {
            options.seed = Some(seed);
        }
        options.throttling = throttling;
    })
    .await
}

/// The operator's controllers of one side, running in-process.
struct Operator {
    /// Its controller and ARM metrics.
    registry: Registry,
    throttled: bool,
    controller: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

/// The operator's context in `ns` for one side, made of the shared part and that side's state (its ARM
/// client, of the security side or the backup side), and a registry holding its controller and ARM
/// metrics.
async fn context<S: SideState>(
    cp: &ControlPlane,
    ns: &str,
    arm: (ArmClient, ArmMetrics),
    side: impl FnOnce(ArmClient) -> S,
) -> (Arc<SideContext<S>>, Registry) {
    let (arm, arm_metrics) = arm;
    let shared = Arc::new(Context::new(cp.client(User::Admin).await).with_namespace(Some(ns.to_string())));
    let mut registry = Registry::default();
    shared.metrics.register(&mut registry);
    arm_metrics.register(&mut registry);
    (Arc::new(SideContext::new(shared, side(arm))), registry)
}

/// Creates `objects` at once while the operator runs, waits until all are ready, stops the operator, and
/// gathers what the run cost.
async fn converge<K>(
    part: &'static str,
    ts: &TestSim,
    operator: Operator,
    api: Api<K>,
    objects: Vec<K>,
    is_ready: fn(&K) -> bool,
    timer: &ReconcileTimer,
) -> Run
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + serde::Serialize + Send + 'static,
{
    tokio::time::sleep(Duration::from_millis(500)).await; // the controller's first (empty) list
    timer.take();
    ts.sim.state.reset_calls();
    let admin = api.clone().into_client();
    let plural = K::plural(&()).to_string();
    let status_writes = || Latency::now(&admin, &plural, "status");
    let at_start = status_writes().await;
    let n = objects.len();
    let started = Instant::now();
    let waiting = tokio::spawn(support::wait_ready(
        api.clone(),
        n,
        started,
        deadline_for(n, 1),
        is_ready,
    ));
    support::create_all(&api, objects, CREATE_CONCURRENCY).await;
    let created = started.elapsed();
    let at_created = status_writes().await;
    let ready = waiting.await.expect("the watch task");
    let at_ready = status_writes().await;
    let _ = operator.stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), operator.controller).await;
    Run {
        part,
        objects: n,
        throttled: operator.throttled,
        started,
        created,
        ready,
        samples: support::scrape(&operator.registry),
        reconciles: timer.take(),
        sim_admitted: support::arm_calls(ts),
        writes_per_object: 1,
        status_latency: [at_created.since(&at_start), at_ready.since(&at_created)],
    }
}

fn arm_client(
    ts: &TestSim,
    credential: mua_operator::azure::TokenCredentialRef,
    throttling: bool,
) -> (ArmClient, ArmMetrics) {
    let metrics = ArmMetrics::new();
    let mut client = ArmClient::new(&ts.cloud, ts.http.clone(), CONTOSO, credential).with_metrics(metrics.clone());
    if !throttling {
        client = client.with_throttle(ThrottlePolicy::disabled());
    }
    (client, metrics)
}

/// What one convergence run produced.
struct Run {
    part: &'static str,
    objects: usize,
    throttled: bool,
    /// When the first object was sent to the API server, and how long creating them all took.
    started: Instant,
    created: Duration,
    ready: Vec<Duration>,
    samples: Vec<Sample>,
    reconciles: Vec<Reconcile>,
    sim_admitted: u64,
    /// Writes one identity makes per object (for the floor).
    writes_per_object: usize,
    /// The API server's own time for the status writes answered while the objects were being created,
    /// and after.
    status_latency: [Latency; 2],
}

fn report(run: &Run) {
    let p = run.part;
    let n = run.objects;
    let s = &run.samples;
    println!("[{p}] load average at the end: {}", support::load());
    println!(
        "[{p}] {n} objects, throttling {}",
        if run.throttled { "on (ARM's figures)" } else { "off" }
    );
    println!("[{p}] created in {:.1} s", run.created.as_secs_f64());
    let floor = support::write_floor(n * run.writes_per_object);
    match run.ready.last() {
        Some(all) if run.ready.len() == n => {
            let half = run.ready[(n - 1) / 2];
            let ninety = run.ready[((n * 9).div_ceil(10)).saturating_sub(1)];
            let ratio = if floor.is_zero() {
                "n/a: within the burst".to_string()
            } else {
                let r = all.as_secs_f64() / floor.as_secs_f64();
                match run.throttled {
                    true => format!(
                        "{r:.3} x the throttle floor {:.1} s [target <= 1.1 x: {}]",
                        floor.as_secs_f64(),
                        met(r <= 1.1)
                    ),
                    false => format!(
                        "{r:.3} x the throttled floor {:.1} s (no throttle in this run)",
                        floor.as_secs_f64()
                    ),
                }
            };
            println!(
                "[{p}] all Ready after {:.2} s = {ratio}; 50% after {:.2} s, 90% after {:.2} s",
                all.as_secs_f64(),
                half.as_secs_f64(),
                ninety.as_secs_f64()
            );
        }
        _ => println!("[{p}] NOT all Ready: {} of {n} before the deadline", run.ready.len()),
    }
    let requests = sum(s, "mua_arm_requests_total", |_| true);
    let throttled = sum(s, "mua_arm_requests_total", |l| l["status"] == "429");
    let answered = |methods: &[&str]| {
        sum(s, "mua_arm_requests_total", |l| {
            methods.contains(&l["method"].as_str()) && l["status"] != "429"
        })
    };
    let share = if requests > 0.0 {
        throttled / requests * 100.0
    } else {
        0.0
    };
    println!(
        "[{p}] ARM requests {requests:.0} (ARM calls the simulator admitted: {}), answered 429: {throttled:.0} = {share:.2}% [target <= 1%: {}]",
        run.sim_admitted,
        met(share <= 1.0)
    );
    let reads = answered(&["GET", "HEAD"]);
    let writes = answered(&["PUT", "PATCH", "POST", "DELETE"]);
    // Judged as printed, to two decimals: a read shared by every object (the guard all vaults link to)
    // is 0.001 of a read per object.
    let reads_per_object = format!("{:.2}", reads / n as f64);
    println!(
        "[{p}] ARM reads per object {reads_per_object} ({reads:.0} reads) [target 1: {}], writes per object {:.2} ({writes:.0} writes)",
        met(reads_per_object.parse::<f64>().is_ok_and(|r| r <= 1.0)),
        writes / n as f64
    );
    for sample in s.iter().filter(|x| x.name == "mua_arm_requests_total") {
        println!(
            "[{p}]   {} {} -> {}: {}",
            sample.labels["method"], sample.labels["route"], sample.labels["status"], sample.value
        );
    }
    let reconciles = sum(s, "mua_reconciles_total", |_| true);
    let failures = sum(s, "mua_reconcile_failures_total", |_| true);
    let retries = sum(s, "mua_arm_retries_total", |_| true);
    println!("[{p}] reconciles {reconciles:.0}, reconcile failures {failures:.0}, ARM retries {retries:.0}");

    let sorted = |f: &dyn Fn(&Reconcile) -> Duration, during: Option<bool>| {
        let creating = |r: &Reconcile| r.started.saturating_duration_since(run.started) < run.created;
        let mut values: Vec<Duration> = run
            .reconciles
            .iter()
            .filter(|r| during.is_none_or(|d| creating(r) == d))
            .map(f)
            .collect();
        values.sort();
        values
    };
    let quantiles = |values: &[Duration]| {
        format!(
            "p50 {}, p99 {}, max {}",
            ms(percentile(values, 0.5)),
            ms(percentile(values, 0.99)),
            ms(values.last().copied().unwrap_or_default())
        )
    };
    let overhead = sorted(&|r| r.overhead, None);
    let p99 = percentile(&overhead, 0.99);
    let kube: u32 = run.reconciles.iter().map(|r| r.kube_requests).sum();
    println!(
        "[{p}] operator overhead per reconcile ({} timed, {:.1} Kubernetes requests each): {} [target p99 <= 50 ms: {}]",
        overhead.len(),
        kube as f64 / overhead.len().max(1) as f64,
        quantiles(&overhead),
        met(p99 <= Duration::from_millis(50))
    );
    println!(
        "[{p}]   the operator's own code: {}",
        quantiles(&sorted(&|r| r.overhead.saturating_sub(r.kube_wall), None))
    );
    println!(
        "[{p}]   its status writes (server-side apply): {}",
        quantiles(&sorted(&|r| r.status_wall, None))
    );
    println!(
        "[{p}]   its Event writes: {}",
        quantiles(&sorted(&|r| r.event_wall, None))
    );
    for (during, what) in [(true, "while the objects were being created"), (false, "after")] {
        let values = sorted(&|r| r.overhead, Some(during));
        println!(
            "[{p}]   overhead of the {} reconciles started {what}: {}",
            values.len(),
            quantiles(&values)
        );
    }
    for (latency, what) in run
        .status_latency
        .iter()
        .zip(["while the objects were being created", "after"])
    {
        println!(
            "[{p}]   the API server's own time for the status writes answered {what}: {}",
            latency.summary()
        );
    }
    let wall = sorted(&|r| r.wall, None);
    println!(
        "[{p}] reconcile wall time (ARM and throttle waits included): {}",
        quantiles(&wall)
    );
    // The same from the metrics alone, as a mean: reconcile time less ARM request time and throttle waits.
    let reconcile_s = sum(s, "mua_reconcile_duration_seconds_sum", |_| true);
    let arm_s = sum(s, "mua_arm_request_duration_seconds_sum", |_| true);
    let wait_s = sum(s, "mua_arm_throttle_wait_seconds_total", |_| true);
    if reconciles > 0.0 {
        println!(
            "[{p}] from the metrics: mean reconcile {}, of which ARM requests {} and throttle waits {}: mean overhead {}",
            ms(Duration::from_secs_f64(reconcile_s / reconciles)),
            ms(Duration::from_secs_f64(arm_s / reconciles)),
            ms(Duration::from_secs_f64(wait_s / reconciles)),
            ms(Duration::from_secs_f64(
                ((reconcile_s - arm_s - wait_s) / reconciles).max(0.0)
            ))
        );
    }
}

fn deadline_for(objects: usize, writes_per_object: usize) -> Duration {
    support::write_floor(objects * writes_per_object) * 3 + Duration::from_secs(120)
}

/// Part 1 (and its unthrottled variant): N ResourceGuards created at once.
async fn guards(cp: &ControlPlane, timer: &ReconcileTimer, n: usize, throttling: bool) {
    let part = if throttling { "guards" } else { "guards-unthrottled" };
    let ns = cp.namespace(part).await;
    let ts = start_sim(None, throttling).await;
    let (ctx, registry) = context(
        cp,
        &ns.name,
        arm_client(&ts, ts.security_side(), throttling),
        SecuritySide::new,
    )
    .await;

    let operator_api: Api<ResourceGuard> = Api::namespaced(ctx.client.clone(), &ns.name);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(resource_guard::run(operator_api, ctx.clone(), async {
        let _ = stopped.await;
    }));
    let objects: Vec<ResourceGuard> = (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": format!("g-{i}")},
                "spec": {
                    "subscriptionId": SECURITY_SUB, "resourceGroup": "security-rg", "name": format!("{part}-{i}"),
                    "region": "westeurope", "description": "Ask #backup-approvals",
                    "excludedOperations": ["ChangeMarsSecurityPin"],
                },
            }))
            .expect("a ResourceGuard")
        })
        .collect();
    let operator = Operator {
        registry,
        throttled: throttling,
        controller,
        stop,
    };
    report(
        &converge(
            part,
            &ts,
            operator,
            ns.admin_api(),
            objects,
            support::guard_ready,
            timer,
        )
        .await,
    );
}

/// Part 2: N VaultProtections linking N seeded vaults to one guard given by ARM ID.
async fn vaults(cp: &ControlPlane, timer: &ReconcileTimer, n: usize) {
    let part = "vaults";
    let ns = cp.namespace(part).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let seed = support::seed_file(dir.path(), n, 0);
    let ts = start_sim(Some(&seed), true).await;
    // The guard, made beforehand by the security side (its own identity and write budget).
    let guard_id = ts.create_guard("bench-vaults-guard").await;
    let (ctx, registry) = context(cp, &ns.name, arm_client(&ts, ts.backup_side(), true), BackupSide::new).await;

    let client = ctx.client.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(vault_protection::run(
        Api::<VaultProtection>::namespaced(client.clone(), &ns.name),
        Api::<ResourceGuard>::namespaced(client.clone(), &ns.name),
        Api::<CriticalOperationRequest>::namespaced(client, &ns.name),
        ctx.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let objects: Vec<VaultProtection> = (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": format!("v-{i}")},
                "spec": {"vault": {"id": vault(&support::vault_name(i))}, "guard": {"id": guard_id}},
            }))
            .expect("a VaultProtection")
        })
        .collect();
    let operator = Operator {
        registry,
        throttled: true,
        controller,
        stop,
    };
    let run = converge(
        part,
        &ts,
        operator,
        ns.admin_api(),
        objects,
        support::protection_ready,
        timer,
    )
    .await;
    let links = ts.sim.state.read(|world| {
        world
            .resources
            .keys()
            .filter(|id| id.ends_with("/backupresourceguardproxies/vaultproxy"))
            .count()
    });
    report(&run);
    println!("[{part}] vault links in the simulator: {links} of {n}");
}

/// Part 4: M ResourceGuards watched and reconciled by `mua-operator run` as its own process.
async fn watch(cp: &ControlPlane, m: usize) {
    let part = "watch";
    let ns = cp.namespace(part).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let seed = support::seed_file(dir.path(), 0, WATCH_SUBSCRIPTIONS);
    let ts = start_sim(Some(&seed), true).await;
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECURITY_SECRET).expect("writing the secret");
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, &ts.sim.ca_pem).expect("writing the CA");
    let api_port: u16 = cp
        .server
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("the API server's port");
    let sim_port: u16 = ts
        .sim
        .arm_url
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("the simulator's port");
    let admin = cp.client(User::Admin).await;
    let apiserver_errors = || async {
        let samples = support::apiserver::scrape(&admin).await;
        sum(&samples, "apiserver_request_total", |l| {
            l.get("code").is_some_and(|c| c.starts_with('5') || c == "429")
        })
    };

    // `MUA_BENCH_WRAP="heaptrack"` (say) runs the operator under a profiler; the figures are then the
    // profiled process's.
    let wrapper: Vec<String> = std::env::var("MUA_BENCH_WRAP")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let operator_pid = |child: &tokio::process::Child| {
        let spawned = child.id().expect("a pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match support::procfs::process_named(spawned, "mua-operator") {
                Some(pid) => break pid,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                None => panic!("no mua-operator process below pid {spawned}"),
            }
        }
    };
    let start_operator = |log: &str| {
        let log = std::fs::File::create(dir.path().join(log)).expect("a log file");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = tokio::process::Command::new(program);
                command.args(args).arg(env!("CARGO_BIN_EXE_mua-operator"));
                command
            }
            None => tokio::process::Command::new(env!("CARGO_BIN_EXE_mua-operator")),
        };
        command
            .args(["run", "--controllers", "security", "--namespace", &ns.name])
            .args(["--arm-url", &ts.sim.arm_url, "--authority-host", &ts.sim.authority_host])
            .args(["--tenant-id", CONTOSO, "--client-id", SECURITY_APP])
            .arg("--ca-file")
            .arg(&ca)
            .arg("--client-secret-file")
            .arg(&secret);
        support::spawn_operator(command, &cp.kubeconfig_path(User::Admin), log)
    };
    let errors_before = apiserver_errors().await;
    let mut operator = start_operator("operator-1.log");
    let pid = operator_pid(&operator);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = support::procfs::memory_kib(pid).map_or(0, |(_, rss)| rss);

    // Sample connections and memory every 200 ms while the objects are created and reconciled.
    let sampling = Arc::new(std::sync::Mutex::new((0usize, 0usize, 0u64)));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            loop {
                let api = support::procfs::established_to(pid, api_port);
                let sim = support::procfs::established_to(pid, sim_port);
                let rss = support::procfs::memory_kib(pid).map_or(0, |(_, rss)| rss);
                {
                    let mut s = sampling.lock().unwrap();
                    *s = (s.0.max(api), s.1.max(sim), s.2.max(rss));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let objects: Vec<ResourceGuard> = (0..m)
        .map(|i| {
            serde_json::from_value(json!({
                "apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": format!("w-{i}")},
                "spec": {
                    "subscriptionId": support::spread_subscription(i % WATCH_SUBSCRIPTIONS),
                    "resourceGroup": "security-rg", "name": format!("watched-{i}"), "region": "westeurope",
                    "description": "Ask #backup-approvals", "excludedOperations": ["ChangeMarsSecurityPin"],
                    "tags": {"team": "security", "cost-center": "1234"},
                },
            }))
            .expect("a ResourceGuard")
        })
        .collect();
    let api: Api<ResourceGuard> = ns.admin_api();
    let started = Instant::now();
    let waiting = tokio::spawn(support::wait_ready(
        api.clone(),
        m,
        started,
        Duration::from_secs(1800),
        support::guard_ready,
    ));
    support::create_all(&api, objects, CREATE_CONCURRENCY).await;
    let created = started.elapsed();
    let ready = waiting.await.expect("the watch task");
    // Steady state: a little longer with everything cached.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (hwm, rss) = support::procfs::memory_kib(pid).unwrap_or_default();
    let steady_api = support::procfs::established_to(pid, api_port);
    let (max_api, max_sim, _) = *sampling.lock().unwrap();
    println!(
        "[{part}] {m} ResourceGuards (Manage, spread over {WATCH_SUBSCRIPTIONS} subscriptions) reconciled by `mua-operator run` (pid {pid}): created in {:.1} s, {} Ready after {:.1} s",
        created.as_secs_f64(),
        ready.len(),
        ready.last().copied().unwrap_or_default().as_secs_f64()
    );
    println!(
        "[{part}] operator memory: idle {:.1} MiB, peak (VmHWM) {:.1} MiB, after convergence {:.1} MiB [target <= 64 MiB: {}]",
        idle as f64 / 1024.0,
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0,
        met(hwm <= 64 * 1024)
    );
    println!(
        "[{part}] operator connections to the API server: at most {max_api} while converging, {steady_api} after; to ARM at most {max_sim}"
    );
    println!(
        "[{part}] ARM calls admitted by the simulator: {} ({:.2} per object)",
        support::arm_calls(&ts),
        support::arm_calls(&ts) as f64 / m as f64
    );

    // A restart with every object in place: the initial list, and one read per object.
    // SAFETY: signals our own child process.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = tokio::time::timeout(Duration::from_secs(30), operator.wait()).await;
    sampler.abort();
    ts.sim.state.reset_calls();
    let restarted = Instant::now();
    operator = start_operator("operator-2.log");
    let pid2 = operator_pid(&operator);
    let mut max_api2 = 0;
    let resynced = loop {
        max_api2 = max_api2.max(support::procfs::established_to(pid2, api_port));
        let reads = support::arm_calls(&ts);
        if reads >= m as u64 || restarted.elapsed() > Duration::from_secs(600) {
            break reads;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let resync_time = restarted.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (hwm2, rss2) = support::procfs::memory_kib(pid2).unwrap_or_default();
    let calls = ts.sim.state.calls();
    println!(
        "[{part}] restart with {m} objects in place: {resynced} ARM calls in {:.1} s ({:?}); memory peak {:.1} MiB, after {:.1} MiB [target <= 64 MiB: {}]; API-server connections at most {max_api2}",
        resync_time.as_secs_f64(),
        calls.by_route,
        hwm2 as f64 / 1024.0,
        rss2 as f64 / 1024.0,
        met(hwm2 <= 64 * 1024)
    );
    // SAFETY: signals our own child process.
    unsafe { libc::kill(pid2 as i32, libc::SIGTERM) };
    let _ = tokio::time::timeout(Duration::from_secs(30), operator.wait()).await;

    let errors = apiserver_errors().await - errors_before;
    let mut logged = HashMap::<String, usize>::new();
    for log in ["operator-1.log", "operator-2.log"] {
        let text = std::fs::read_to_string(dir.path().join(log)).unwrap_or_default();
        for line in text.lines() {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let level = entry["level"].as_str().unwrap_or_default();
            if level == "WARN" || level == "ERROR" {
                let message = entry["fields"]["message"].as_str().unwrap_or_default().to_string();
                *logged.entry(format!("{level} {message}")).or_default() += 1;
            }
        }
    }
    println!(
        "[{part}] API-server errors (5xx and 429 answers, all clients): {errors:.0}; operator WARN/ERROR log lines: {} {:?} [target 0: {}]",
        logged.values().sum::<usize>(),
        logged,
        met(errors == 0.0 && logged.is_empty())
    );
}
