//! How long `mua-operator sim --seed examples/sim-seed.yaml` takes from exec to serving: the time until it
//! prints its banner line (it prints after it listens), and until the first token request is answered.
//! Run with `cargo bench --bench sim_startup`; prints milliseconds per run and a summary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark, like a test, stops at the first broken precondition"
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

const RUNS: usize = 20;

fn main() {
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sim-seed.yaml");
    let dir = tempfile::tempdir().expect("a temporary directory");
    // The first start creates the CA and the signing key; later starts reuse them, as a user's would.
    let mut cold = None;
    let mut warm = Vec::new();
    for run in 0..=RUNS {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mua-operator"))
            .args(["sim", "--listen", "127.0.0.1:0", "--seed", seed, "--data-dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mua-operator sim");
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .expect("a banner line");
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        assert!(banner.contains("armUrl"), "unexpected banner: {banner}");
        child.kill().ok();
        child.wait().ok();
        if run == 0 {
            cold = Some(elapsed);
        } else {
            warm.push(elapsed);
        }
    }
    warm.sort_by(f64::total_cmp);
    let pct = |p: f64| warm[((warm.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "sim start-up to banner, first start (creates CA + RSA key): {:.1} ms",
        cold.unwrap()
    );
    println!(
        "sim start-up to banner, {RUNS} later starts: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.5),
        pct(0.99),
        warm.last().unwrap()
    );
}
