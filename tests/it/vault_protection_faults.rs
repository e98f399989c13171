//! Convergence under Azure's bad days: with a fifth of ARM calls failing (5xx) and a 429 storm, 100
//! VaultProtections all converge and every vault ends with exactly one link, to the right guard.

use crate::operator;
use crate::simulator;

use std::time::Duration;

use futures::future::join_all;
use mua_operator::azure::vaults::{self, VaultId};
use operator::*;
use reqwest::Method;
use serde_json::{Value, json};
use simulator::*;

const VAULTS: usize = 100;

fn vault_name(i: usize) -> String {
    format!("fault-vault-{i:03}")
}

/// The example seed plus `VAULTS` Recovery Services vaults, so creating them costs no ARM writes.
fn seed_with_vaults(dir: &std::path::Path) -> std::path::PathBuf {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sim-seed.yaml");
    let mut seed: Value = yaml_serde::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    let vaults = seed["vaults"].as_array_mut().unwrap();
    for i in 0..VAULTS {
        vaults.push(
            json!({"subscription": BACKUP_SUB, "resourceGroup": "backup-rg", "name": vault_name(i),
            "location": "westeurope", "kind": "RecoveryServicesVault"}),
        );
    }
    let path = dir.join("seed.yaml");
    std::fs::write(&path, yaml_serde::to_string(&seed).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn a_hundred_vaults_converge_through_5xx_and_a_429_storm_with_one_link_each() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed_with_vaults(dir.path());
    let op = Operator::start_with(
        "vp-faults",
        Options {
            seed: Some(seed),
            ..Options::default()
        },
    )
    .await;
    let guard_id = op.ts.create_guard("fault-guard").await;
    let storm_end = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3);
    let faults = json!([
        {"pathContains": "/providers/", "errorRate": 0.2, "errorStatus": 503},
        {"pathContains": "/providers/", "throttleUntil": storm_end.to_string()},
    ]);
    op.ts.admin(Method::PUT, "/_sim/faults", Some(faults)).await;

    join_all((0..VAULTS).map(|i| {
        let id = vault(&vault_name(i));
        let (op, guard) = (&op, json!({"id": guard_id}));
        async move { op.create_protection(&format!("vp-{i:03}"), &id, guard, json!({})).await }
    }))
    .await;
    eventually_within("all 100 Ready", Duration::from_secs(180), || async {
        let list = op.protections().list(&Default::default()).await.ok()?;
        let ready = list
            .iter()
            .filter(|vp| Operator::condition(*vp, "Ready").is_some_and(|c| c.0 == "True"))
            .count();
        (ready == VAULTS).then_some(())
    })
    .await;

    op.ts.admin(Method::PUT, "/_sim/faults", Some(json!([]))).await;
    let metrics = op.metrics();
    let answered = |status: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("mua_arm_requests_total{") && l.contains(&format!("status=\"{status}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert!(
        answered("503") > 0 && answered("429") > 0,
        "the faults fired:\n{metrics}"
    );
    let state = op.ts.admin(Method::GET, "/_sim/state", None).await;
    let links: Vec<&str> = state["resources"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|id| id.contains("/backupresourceguardproxies/"))
        .map(String::as_str)
        .collect();
    assert_eq!(links.len(), VAULTS, "exactly one link per vault: {links:?}");
    for i in 0..VAULTS {
        let id = VaultId::parse(&vault(&vault_name(i))).unwrap();
        let link = vaults::get_link(&op.backup, &id).await.unwrap();
        assert_eq!(link.map(|l| l.guard_id), Some(guard_id.clone()), "vault {i}");
    }
}
