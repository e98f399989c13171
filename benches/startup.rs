//! Operator start-up (DESIGN.md §7: start-up to first reconcile ≤ 1 s): the real `mua-operator run
//! --controllers=security,backup` binary, against the real test control plane (tests/cluster) and the
//! in-process ARM simulator with ARM's throttling, timed from its exec.
//!
//! - `restart`: `MUA_BENCH_ROUNDS` rounds (default 10). While no operator runs, each round creates a
//!   ResourceGuard and a VaultProtection (a seeded vault linked by `guard.id` to a guard made
//!   beforehand); then it starts the operator and times `/readyz` answering 200, its first ARM call, and
//!   each object Ready (seen by a watch); then SIGTERM and the exit. The first round finds no Leases, the
//!   others find them released by the process before.
//! - `in-place`: one such start with `MUA_BENCH_OBJECTS` ResourceGuards (default 1000) converged in the
//!   namespace beforehand, so the initial list and a resync read of each come with the start.
//!
//! Run with `cargo bench --bench startup` (`-- restart` or `-- in-place` picks a part).

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
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cluster::{ControlPlane, TestNamespace, User};
use mua_operator::crd::{ResourceGuard, VaultProtection};
use serde_json::json;
use simulator::*;
use support::{met, ms, percentile};

const PARTS: [&str; 2] = ["restart", "in-place"];
/// Subscriptions the in-place guards are spread over (so that their writes fit ARM's buckets).
const SUBSCRIPTIONS: usize = 100;
/// How long one start may take before the benchmark gives up on it.
const START_DEADLINE: Duration = Duration::from_secs(60);

fn main() {
    let run = support::chosen(&PARTS);
    let rounds = support::env_number("MUA_BENCH_ROUNDS", 10);
    let objects = support::env_number("MUA_BENCH_OBJECTS", 1000);
    let runtime = support::runtime();
    let cp = ControlPlane::shared();
    println!("startup: {} CPUs; API server {}", support::cpus(), cp.server);
    runtime.block_on(async {
        // One vault to link per start: the restarts', and two in the in-place part.
        let bench = Bench::new(cp, rounds + 2).await;
        if run("restart") {
            restart(&bench, rounds).await;
        }
        if run("in-place") {
            in_place(&bench, objects, rounds).await;
        }
    });
}

/// The simulator, the guard VaultProtections link to, and the operator's files.
struct Bench {
    cp: &'static ControlPlane,
    ts: TestSim,
    guard_id: String,
    dir: tempfile::TempDir,
    /// Seeded vaults not linked yet: one per start.
    next_vault: std::sync::atomic::AtomicUsize,
}

impl Bench {
    async fn new(cp: &'static ControlPlane, vaults: usize) -> Bench {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let seed = support::seed_file(dir.path(), vaults, SUBSCRIPTIONS);
        let ts = TestSim::start_with(move |options| options.seed = Some(seed)).await;
        let guard_id = ts.create_guard("startup-guard").await;
        for (name, contents) in [
            ("ca.crt", ts.sim.ca_pem.as_str()),
            ("security.secret", SECURITY_SECRET),
            ("backup.secret", BACKUP_SECRET),
        ] {
            std::fs::write(dir.path().join(name), contents).expect("writing the operator's files");
        }
        Bench {
            cp,
            ts,
            guard_id,
            dir,
            next_vault: Default::default(),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A ResourceGuard `name` and a VaultProtection `name` for the next seeded vault, not yet reconciled.
    async fn pending_pair(&self, ns: &TestNamespace, name: &str) {
        let vault_index = self.next_vault.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let protection: VaultProtection = serde_json::from_value(json!({
            "apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": name},
            "spec": {"vault": {"id": vault(&support::vault_name(vault_index))}, "guard": {"id": self.guard_id}},
        }))
        .expect("a VaultProtection");
        support::create_all(&ns.admin_api(), vec![guard(name, SECURITY_SUB)], 1).await;
        support::create_all(&ns.admin_api(), vec![protection], 1).await;
    }

    /// Starts `mua-operator run` for both sides in `ns`, its log in `log`.
    fn spawn(&self, ns: &TestNamespace, port: u16, log: &Path) -> tokio::process::Child {
        let log = std::fs::File::create(log).expect("a log file");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mua-operator"));
        command
            .args(["run", "--controllers=security,backup", "--namespace", &ns.name])
            .args(["--lease-namespace", &ns.name])
            .args(["--metrics-bind-address", &format!("127.0.0.1:{port}")])
            .args([
                "--arm-url",
                &self.ts.sim.arm_url,
                "--authority-host",
                &self.ts.sim.authority_host,
            ])
            .args(["--tenant-id", CONTOSO])
            .args(["--security-client-id", SECURITY_APP, "--backup-client-id", BACKUP_APP])
            .arg("--security-client-secret-file")
            .arg(self.file("security.secret"))
            .arg("--backup-client-secret-file")
            .arg(self.file("backup.secret"))
            .arg("--ca-file")
            .arg(self.file("ca.crt"));
        support::spawn_operator(command, &self.cp.kubeconfig_path(User::Admin), log)
    }

    /// One start: the operator is executed with `pending` (a ResourceGuard and a VaultProtection of that
    /// name) waiting among `guards` ResourceGuards and `protections` VaultProtections; times what it
    /// does, then stops it with SIGTERM.
    async fn start(&self, ns: &TestNamespace, pending: &str, guards: usize, protections: usize, log: &Path) -> Start {
        let port = free_port();
        let arm_before = support::arm_calls(&self.ts);
        let started = Instant::now();
        // The watches list first, so what they report is the operator's doing.
        let guards_ready = tokio::spawn(support::ready_times(
            ns.admin_api::<ResourceGuard>(),
            guards,
            started,
            START_DEADLINE,
            support::guard_ready,
        ));
        let protections_ready = tokio::spawn(support::ready_times(
            ns.admin_api::<VaultProtection>(),
            protections,
            started,
            START_DEADLINE,
            support::protection_ready,
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let exec = Instant::now();
        let mut child = self.spawn(ns, port, log);
        let http = reqwest::Client::new();
        let get = |path: &str| {
            http.get(format!("http://127.0.0.1:{port}{path}"))
                .timeout(Duration::from_millis(200))
                .send()
        };
        let (mut readyz, mut first_arm, mut reconciled) = (None, None, None);
        while [readyz, first_arm, reconciled].contains(&None) && exec.elapsed() < START_DEADLINE {
            if first_arm.is_none() && support::arm_calls(&self.ts) > arm_before {
                first_arm = Some(exec.elapsed());
            }
            if readyz.is_none() {
                if get("/readyz").await.is_ok_and(|a| a.status().is_success()) {
                    readyz = Some(exec.elapsed());
                }
            } else if reconciled.is_none() {
                // Once it serves: the first reconcile that finished, whatever its object.
                let text = match get("/metrics").await {
                    Ok(answer) => answer.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                if support::sum(&support::parse_prometheus(&text), "mua_reconciles_total", |_| true) > 0.0 {
                    reconciled = Some(exec.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let since_exec =
            |times: HashMap<String, Duration>| times.get(pending).map(|t| t.saturating_sub(exec - started));
        let guard = since_exec(guards_ready.await.expect("the guard watch"));
        let protection = since_exec(protections_ready.await.expect("the protection watch"));
        let arm_calls = support::arm_calls(&self.ts) - arm_before;
        let stopping = Instant::now();
        // SAFETY: signals our own child process.
        unsafe { libc::kill(child.id().expect("running") as i32, libc::SIGTERM) };
        let exit = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
        Start {
            readyz,
            first_arm,
            reconciled,
            guard,
            protection,
            arm_calls,
            shutdown: exit.is_ok().then(|| stopping.elapsed()),
        }
    }
}

/// What one start took, from the exec; `None` where it did not happen within the deadline.
struct Start {
    readyz: Option<Duration>,
    first_arm: Option<Duration>,
    /// The operator's `mua_reconciles_total` above 0 on `/metrics`.
    reconciled: Option<Duration>,
    guard: Option<Duration>,
    protection: Option<Duration>,
    /// ARM calls the simulator admitted during the start.
    arm_calls: u64,
    /// From SIGTERM to the exit.
    shutdown: Option<Duration>,
}

fn guard(name: &str, subscription: &str) -> ResourceGuard {
    serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": name},
        "spec": {"subscriptionId": subscription, "resourceGroup": "security-rg", "name": name, "region": "westeurope"},
    }))
    .expect("a ResourceGuard")
}

/// A port nobody listens on now (the operator binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Part 1: R starts in a small namespace, each after the previous one's SIGTERM.
async fn restart(bench: &Bench, rounds: usize) {
    let part = "restart";
    let ns = bench.cp.namespace("startup-restart").await;
    let mut starts = Vec::new();
    for round in 0..rounds {
        let name = format!("round-{round}");
        bench.pending_pair(&ns, &name).await;
        let log = bench.file(&format!("{part}-{round}.log"));
        starts.push(bench.start(&ns, &name, round + 1, round + 1, &log).await);
    }
    report(part, &starts);
}

/// Part 2: one start with `objects` ResourceGuards converged in the namespace beforehand.
async fn in_place(bench: &Bench, objects: usize, round: usize) {
    let part = "in-place";
    let ns = bench.cp.namespace("startup-in-place").await;
    let guards: Vec<ResourceGuard> = (0..objects)
        .map(|i| {
            guard(
                &format!("in-place-{i}"),
                &support::spread_subscription(i % SUBSCRIPTIONS),
            )
        })
        .collect();
    support::create_all(&ns.admin_api(), guards, 32).await;
    // A first operator converges them (and one pending pair, so that the start below has the same shape).
    bench.pending_pair(&ns, "converging").await;
    let converging = bench
        .start(&ns, "converging", objects + 1, 1, &bench.file("in-place-0.log"))
        .await;
    assert!(
        converging.guard.is_some(),
        "the {objects} ResourceGuards did not converge within {START_DEADLINE:?}"
    );
    let name = format!("round-{round}");
    bench.pending_pair(&ns, &name).await;
    let start = bench
        .start(&ns, &name, objects + 2, 2, &bench.file("in-place-1.log"))
        .await;
    println!(
        "[{part}] {objects} ResourceGuards converged in place; the simulator admitted {} ARM calls while the start was timed",
        start.arm_calls
    );
    report(part, &[start]);
}

fn report(part: &str, starts: &[Start]) {
    let figure = |what: &str, pick: &dyn Fn(&Start) -> Option<Duration>, target: Option<Duration>| {
        let mut times: Vec<Duration> = starts.iter().filter_map(pick).collect();
        times.sort();
        let missing = starts.len() - times.len();
        let max = times.last().copied().unwrap_or_default();
        let judged = match target {
            Some(t) => format!(" [target <= {}: {}]", ms(t), met(missing == 0 && max <= t)),
            None => String::new(),
        };
        println!(
            "[{part}] {what}: p50 {}, p90 {}, max {}{}{judged}",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.9)),
            ms(max),
            if missing > 0 {
                format!(" ({missing} of {} never)", starts.len())
            } else {
                String::new()
            },
        );
    };
    println!(
        "[{part}] {} starts, from the exec of `mua-operator run --controllers=security,backup`:",
        starts.len()
    );
    figure("/readyz answers 200", &|s| s.readyz, None);
    figure("first ARM call", &|s| s.first_arm, None);
    figure(
        "first reconcile done (`mua_reconciles_total` > 0)",
        &|s| s.reconciled,
        Some(Duration::from_secs(1)),
    );
    figure("the pending ResourceGuard Ready", &|s| s.guard, None);
    figure("the pending VaultProtection Ready", &|s| s.protection, None);
    figure("SIGTERM to exit", &|s| s.shutdown, None);
}
