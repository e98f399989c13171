//! `kubectl mua` as people run it, against the running operator.

use super::*;

/// `kubectl mua` as people run it, against the running operator: the requester's `request` waits for the
/// decision, an approver's `approve` lets the operator act, and `wait --for final` sees it complete.
#[tokio::test]
async fn kubectl_mua_request_approve_and_wait_with_the_operator() {
    let op = start("elev-cli").await;
    protected(&op, 1, json!({})).await;
    op.declare_soft_delete_off("prod").await;
    let cp = ControlPlane::shared();
    let plugin = |user: User, args: &[&str]| {
        let mut command =
            tokio::process::Command::new(mua_operator::demo::kubectl_mua_path().expect("building kubectl-mua"));
        command
            .arg("--kubeconfig")
            .arg(cp.kubeconfig_path(user))
            .args(["-n", &op.ns.name])
            .args(args)
            .kill_on_drop(true);
        command
    };
    let requested = plugin(
        User::BackupAdmin,
        &[
            "request",
            "prod",
            "--operation",
            "DisableSoftDelete",
            "--duration",
            "30m",
            "--justification",
            "decommission",
            "--name",
            "sd",
            "--timeout",
            "2m",
        ],
    )
    .output();
    let approve = async {
        // An approver approves what `describe` shows: once the operator has recorded it.
        recorded_target(&op, "sd").await;
        let out = plugin(User::ApproverA, &["approve", "sd", "--reason", "ticket checked"])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let (requested, ()) = tokio::join!(requested, approve);
    let requested = requested.unwrap();
    assert!(
        requested.status.success(),
        "request exits 0 once Active: {}",
        String::from_utf8_lossy(&requested.stderr)
    );
    let waited = plugin(User::BackupAdmin, &["wait", "sd", "--for", "final", "--timeout", "1m"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        waited.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Disabled));
}
