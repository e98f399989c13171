//! Two `mua-operator run --controllers=security` replicas with the same name and Azure identity, a short
//! lease in the test's namespace, and one simulator: only the lease holder acts, a standby takes over
//! when the leader dies or stops, and a leader that loses its lease exits.

use crate::cluster;
use crate::process;
use crate::simulator;

use std::time::Duration;

use cluster::{ControlPlane, TestNamespace};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, Patch, PatchParams};
use process::*;
use serde_json::json;
use simulator::*;
use tokio::time::Instant;

const LEASE_SECONDS: u64 = 4;
const SHORT_LEASE: &str = "--lease-duration=4s";
/// Time for a standby to notice an expired or released lease and take it: its own poll, a random pause
/// of up to 1 s in kube-lease-manager, and API calls on a loaded machine.
const TAKEOVER_MARGIN: Duration = Duration::from_secs(5);
const CONVERGE: Duration = Duration::from_secs(60);

/// Starts two replicas at once; returns them leader first, once one holds the lease.
async fn two_replicas(cp: &ControlPlane, ns: &TestNamespace, ts: &TestSim, lease: &str) -> (Operator, Operator) {
    let flags = [lease];
    let (mut a, mut b) = tokio::join!(Operator::start(cp, ns, ts, &flags), Operator::start(cp, ns, ts, &flags));
    let (id_a, id_b) = (a.identity().await, b.identity().await);
    assert_ne!(id_a, id_b, "replicas of the same name still have distinct identities");
    let holder = eventually(CONVERGE, "a replica holds the lease", || security_lease_holder(ns)).await;
    let (leader, standby) = if holder == id_a {
        (a, b)
    } else {
        assert_eq!(holder, id_b, "the lease holder is one of the replicas");
        (b, a)
    };
    eventually(CONVERGE, "mua_leader 1 on the holder", || async {
        (leader.security_leader_gauge().await == Some(1)).then_some(())
    })
    .await;
    (leader, standby)
}

async fn wait_for_holder(ns: &TestNamespace, id: &str, limit: Duration) {
    eventually(limit, &format!("{id} holds the lease"), || async {
        (security_lease_holder(ns).await.as_deref() == Some(id)).then_some(())
    })
    .await
}

#[tokio::test]
async fn only_the_lease_holder_acts() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("one-leader").await;
    let ts = TestSim::start().await;
    let (mut leader, standby) = two_replicas(cp, &ns, &ts, SHORT_LEASE).await;

    for replica in [&leader, &standby] {
        eventually(CONVERGE, "/readyz 200 on both replicas", || async {
            (replica.get("/readyz").await.0 == 200).then_some(())
        })
        .await;
    }
    assert_eq!(
        standby.security_leader_gauge().await,
        Some(0),
        "a standby is not leader"
    );

    let names = ["guard-a", "guard-b", "guard-c", "guard-d"];
    for name in names {
        create_guard(&ns, name).await;
    }
    for name in names {
        wait_ready(&ns, name, CONVERGE).await;
    }
    assert_eq!(
        guard_puts(&ts).await,
        names.len() as u64,
        "each guard written exactly once"
    );
    assert_eq!(
        security_lease_holder(&ns).await,
        Some(leader.identity().await),
        "the lease stayed with the first holder"
    );
    assert_eq!(standby.security_leader_gauge().await, Some(0));
}

#[tokio::test]
async fn a_standby_takes_over_within_the_lease_duration_when_the_leader_dies() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("leader-dies").await;
    let ts = TestSim::start().await;
    let (mut leader, mut standby) = two_replicas(cp, &ns, &ts, SHORT_LEASE).await;
    create_guard(&ns, "before-kill").await;
    wait_ready(&ns, "before-kill", CONVERGE).await;

    leader.signal(libc::SIGKILL);
    let killed = Instant::now();
    leader.wait_exit(Duration::from_secs(10)).await;
    let standby_id = standby.identity().await;
    wait_for_holder(&ns, &standby_id, Duration::from_secs(LEASE_SECONDS) + TAKEOVER_MARGIN).await;
    eprintln!("takeover {:?} after SIGKILL (lease {LEASE_SECONDS}s)", killed.elapsed());

    create_guard(&ns, "after-kill").await;
    wait_ready(&ns, "after-kill", CONVERGE).await;
    assert_eq!(standby.security_leader_gauge().await, Some(1));
    assert_eq!(
        guard_puts(&ts).await,
        2,
        "each guard written exactly once, across the takeover"
    );
}

#[tokio::test]
async fn sigterm_releases_the_lease_so_the_standby_takes_over_at_once() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("leader-stops").await;
    let ts = TestSim::start().await;
    // A long lease: the leader renews every 10 s, so at SIGTERM it is valid for 20 s more at least.
    let (mut leader, mut standby) = two_replicas(cp, &ns, &ts, "--lease-duration=30s").await;
    let standby_id = standby.identity().await;
    create_guard(&ns, "before-stop").await;
    wait_ready(&ns, "before-stop", CONVERGE).await;

    leader.signal(libc::SIGTERM);
    let stopped = Instant::now();
    let status = leader.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}");
    wait_for_holder(&ns, &standby_id, Duration::from_secs(10)).await;
    eprintln!("takeover {:?} after SIGTERM (lease 30s)", stopped.elapsed());
    eventually(CONVERGE, "mua_leader 1 on the new holder", || async {
        (standby.security_leader_gauge().await == Some(1)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn sigterm_while_the_controllers_start_still_releases_the_lease() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("stops-starting").await;
    let ts = TestSim::start().await;
    let flags = [SHORT_LEASE, "--graceful-shutdown-timeout=2s"];
    let mut leader = Operator::start(cp, &ns, &ts, &flags).await;
    eventually(CONVERGE, "the replica leads", || async {
        (leader.security_leader_gauge().await == Some(1)).then_some(())
    })
    .await;

    // At once: the controller may not have filled its cache yet (kube-runtime then never ends on its own).
    leader.signal(libc::SIGTERM);
    let status = leader.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "{status}");
    assert_eq!(security_lease_holder(&ns).await, None, "the lease was released");
}

#[tokio::test]
async fn a_leader_that_loses_its_lease_stops_and_exits_non_zero() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("leader-loses").await;
    let ts = TestSim::start().await;
    let mut leader = Operator::start(cp, &ns, &ts, &[SHORT_LEASE]).await;
    // The gauge, not the Lease: the process must know it leads before the lease is taken from it.
    eventually(CONVERGE, "the replica leads", || async {
        (leader.security_leader_gauge().await == Some(1)).then_some(())
    })
    .await;

    // Another holder, as after a pause long enough for a standby to take over.
    let leases: Api<Lease> = ns.admin_api();
    let patch = json!({"spec": {"holderIdentity": "intruder", "renewTime": MicroTime(jiff::Timestamp::now())}});
    leases
        .patch("mua-operator-security", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();

    let status = leader.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(1), "{status}");
    let logged = leader
        .log_fields()
        .iter()
        .any(|fields| fields["message"].as_str().is_some_and(|m| m.contains("lost its lease")));
    assert!(logged, "a clear log line says the lease was lost");
}
