//! Helpers of the benchmarks: reconcile timing from spans, Prometheus text sums, a process's
//! memory and connections from /proc, percentiles, and the generated simulator seed.

#![allow(dead_code)]

pub mod apiserver;
pub mod procfs;
pub mod timing;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, filter};

/// Creates `objects` through `api`, at most `concurrency` at a time.
pub async fn create_all<K>(api: &kube::Api<K>, objects: Vec<K>, concurrency: usize)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
{
    use futures::{StreamExt, TryStreamExt};
    futures::stream::iter(objects)
        .map(|object| async move { api.create(&kube::api::PostParams::default(), &object).await })
        .buffer_unordered(concurrency)
        .try_for_each(|_| async { Ok(()) })
        .await
        .expect("creating the objects");
}

/// A number from the environment variable `name` (`_` allowed as a separator), or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Whether `MUA_BENCH_QUICK` asks for a smoke run.
pub fn quick() -> bool {
    std::env::var("MUA_BENCH_QUICK").is_ok_and(|v| v != "0" && !v.is_empty())
}

/// The benchmark's runtime (multi-threaded, as the operator's).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// Spawns `command` (a `mua-operator run …`) with the kubeconfig `kubeconfig` and its JSON log (level
/// info) written to `log`; the process is killed if the handle is dropped.
pub fn spawn_operator(
    mut command: tokio::process::Command,
    kubeconfig: &std::path::Path,
    log: std::fs::File,
) -> tokio::process::Child {
    command
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("starting mua-operator run")
}

/// Which of a benchmark's `parts` to run: those named on the command line (`cargo bench` passes
/// `--bench`, which is not a part), or all.
pub fn chosen(parts: &'static [&'static str]) -> impl Fn(&str) -> bool {
    let chosen: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    for part in &chosen {
        assert!(parts.contains(&part.as_str()), "unknown part {part}; parts: {parts:?}");
    }
    move |part| chosen.is_empty() || chosen.iter().any(|c| c == part)
}

/// Reconcile spans to `timer`; the operator's log lines to stderr at `MUA_BENCH_LOG` (warnings by default).
pub fn trace(timer: &timing::ReconcileTimer) {
    tracing_subscriber::registry()
        .with(
            timer
                .clone()
                .with_filter(filter::filter_fn(timing::ReconcileTimer::wants)),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(
                    filter::EnvFilter::try_from_env("MUA_BENCH_LOG").unwrap_or_else(|_| "mua_operator=warn".into()),
                ),
        )
        .init();
}

/// One sample of a Prometheus text exposition: the metric name, its labels and value.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the text format (the operator's own label values hold no commas, quotes or braces).
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.parse::<f64>().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                })
                .collect();
            Some(Sample {
                name: name.to_string(),
                labels,
                value,
            })
        })
        .collect()
}

/// The samples of `registry` now.
pub fn scrape(registry: &Registry) -> Vec<Sample> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("metrics encode");
    parse_prometheus(&text)
}

/// The sum of the samples called `name` whose labels pass `filter`.
pub fn sum(samples: &[Sample], name: &str, filter: impl Fn(&BTreeMap<String, String>) -> bool) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && filter(&s.labels))
        .map(|s| s.value)
        .fold(0.0, |a, b| a + b)
}

/// The `p`-quantile (0..=1) of sorted `values`, by nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The machine's load average (other work on a shared machine skews every figure).
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// The time one identity's writes need under ARM's write bucket (200 at once, then 10/s): the floor a
/// convergence run is compared with.
pub fn write_floor(writes: usize) -> Duration {
    Duration::from_secs_f64(writes.saturating_sub(200) as f64 / 10.0)
}

/// `examples/sim-seed.yaml` plus `vaults` Recovery Services vaults `bench-vault-<i>` in backup-rg
/// (westeurope) and `subscriptions` extra subscriptions in the vaults' tenant, each with a resource group
/// `security-rg` (westeurope) in which the security side is Owner.
pub fn seed(vaults: usize, subscriptions: usize) -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sim-seed.yaml");
    let text = std::fs::read_to_string(path).expect("reading examples/sim-seed.yaml");
    let mut seed: serde_json::Value = yaml_serde::from_str(&text).expect("parsing examples/sim-seed.yaml");
    let backup_sub = "5e13b949-1218-4d18-8b99-7e12155ec4f7";
    let contoso = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let security_oid = "7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c01";
    let list = |seed: &mut serde_json::Value, key: &str| -> Vec<serde_json::Value> {
        seed[key].as_array().cloned().unwrap_or_default()
    };
    let mut all_vaults = list(&mut seed, "vaults");
    for i in 0..vaults {
        all_vaults.push(serde_json::json!({
            "subscription": backup_sub, "resourceGroup": "backup-rg", "name": vault_name(i),
            "location": "westeurope", "kind": "RecoveryServicesVault",
        }));
    }
    let mut all_subscriptions = list(&mut seed, "subscriptions");
    let mut assignments = list(&mut seed, "roleAssignments");
    for i in 0..subscriptions {
        let id = spread_subscription(i);
        all_subscriptions.push(serde_json::json!({
            "id": id, "tenant": contoso, "name": format!("bench-{i}"),
            "resourceGroups": [{"name": "security-rg", "location": "westeurope"}],
        }));
        assignments.push(serde_json::json!({
            "principal": security_oid, "role": "Owner", "scope": format!("/subscriptions/{id}"),
        }));
    }
    seed["vaults"] = all_vaults.into();
    seed["subscriptions"] = all_subscriptions.into();
    seed["roleAssignments"] = assignments.into();
    seed
}

pub fn vault_name(i: usize) -> String {
    format!("bench-vault-{i}")
}

/// The `i`-th extra subscription of [`seed`].
pub fn spread_subscription(i: usize) -> String {
    format!("00000000-0000-4000-8000-{:012x}", i + 1)
}

/// A seed file in `dir`: [`seed`] written as YAML.
pub fn seed_file(dir: &std::path::Path, vaults: usize, subscriptions: usize) -> std::path::PathBuf {
    let path = dir.join("bench-seed.yaml");
    let seed = seed(vaults, subscriptions);
    std::fs::write(&path, yaml_serde::to_string(&seed).expect("the seed serializes")).expect("writing the seed");
    path
}

/// ARM calls the simulator admitted (its token endpoint not counted).
pub fn arm_calls(ts: &crate::simulator::TestSim) -> u64 {
    let calls = ts.sim.state.calls();
    calls
        .by_route
        .iter()
        .filter(|(route, _)| !route.contains("oauth2"))
        .map(|(_, n)| n)
        .sum()
}

fn ready<K: kube::Resource>(conditions: Option<&mua_operator::crd::shared::Conditions>, object: &K) -> bool {
    conditions
        .and_then(|c| c.get("Ready"))
        .is_some_and(|c| c.status == "True" && c.observed_generation == object.meta().generation)
}

pub fn guard_ready(rg: &mua_operator::crd::ResourceGuard) -> bool {
    ready(rg.status.as_ref().map(|s| &s.conditions), rg)
}

pub fn protection_ready(vp: &mua_operator::crd::VaultProtection) -> bool {
    ready(vp.status.as_ref().map(|s| &s.conditions), vp)
}

/// Watches `api` until `n` objects are ready (or `deadline` passes); returns when each became ready,
/// measured from `started`, sorted.
pub async fn wait_ready<K>(
    api: kube::Api<K>,
    n: usize,
    started: Instant,
    deadline: Duration,
    is_ready: fn(&K) -> bool,
) -> Vec<Duration>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let mut times: Vec<Duration> = ready_times(api, n, started, deadline, is_ready)
        .await
        .into_values()
        .collect();
    times.sort();
    times
}

/// Watches `api` until `n` objects are ready (or `deadline` passes); returns when each became ready, by
/// name, measured from `started`.
pub async fn ready_times<K>(
    api: kube::Api<K>,
    n: usize,
    started: Instant,
    deadline: Duration,
    is_ready: fn(&K) -> bool,
) -> HashMap<String, Duration>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    use futures::StreamExt;
    use kube::ResourceExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let mut ready_at: HashMap<String, Duration> = HashMap::new();
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let until = tokio::time::Instant::from_std(started + deadline);
    while ready_at.len() < n {
        let event = match tokio::time::timeout_at(until, stream.next()).await {
            Ok(Some(Ok(event))) => event,
            Ok(Some(Err(err))) => {
                eprintln!("watch error: {err}");
                continue;
            }
            Ok(None) | Err(_) => break,
        };
        if let watcher::Event::Apply(object) | watcher::Event::InitApply(object) = event
            && is_ready(&object)
        {
            ready_at.entry(object.name_any()).or_insert_with(|| started.elapsed());
        }
    }
    ready_at
}
