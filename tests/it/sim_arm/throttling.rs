//! ARM's throttling: throttled answers counted by principal and route, and a write burst beyond the
//! bucket.

use super::*;

#[tokio::test]
async fn throttled_answers_are_counted_by_principal_and_route() {
    let ts = TestSim::start().await;
    let token = ts.token(&ts.backup_side()).await;
    let body = json!({"properties": {"backupManagementType": "AzureIaasVM"}});
    let mut throttled = 0;
    for n in 0..2000 {
        let reply = ts
            .call_with(&token, &[], Method::PUT, &policy_path(n), Some(body.clone()))
            .await;
        if reply.status == 429 {
            throttled += 1;
            if throttled == 3 {
                break;
            }
        }
    }
    assert_eq!(throttled, 3, "the burst was throttled");
    let calls = ts.admin(Method::GET, "/_sim/calls", None).await;
    assert_eq!(calls["throttled"], 3, "{calls}");
    let by_route = calls["throttledByPrincipal"][BACKUP_OID]
        .as_object()
        .expect("the backup side's 429s");
    assert_eq!(by_route.values().filter_map(Value::as_u64).sum::<u64>(), 3, "{calls}");
}

#[tokio::test]
async fn a_write_burst_beyond_the_bucket_gets_429_and_refills_at_arms_rate() {
    let ts = TestSim::start().await;
    let token = ts.token(&ts.backup_side()).await;
    let body = json!({"properties": {"backupManagementType": "AzureIaasVM"}});

    let started = Instant::now();
    let mut accepted = 0;
    let mut throttled = None;
    // Until ARM throttles (at least 230 writes): on a loaded machine the bucket refills while the burst
    // runs, so how many writes that takes depends on the burst's pace, which the ceiling below accounts for.
    for n in 0..2000 {
        if throttled.is_some() && n >= 230 {
            break;
        }
        let reply = ts
            .call_with(&token, &[], Method::PUT, &policy_path(n), Some(body.clone()))
            .await;
        match reply.status {
            200 => accepted += 1,
            429 => throttled = throttled.or(Some(reply)),
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    let burst = started.elapsed().as_secs_f64();
    // 200 tokens, plus what 10/s refilled while the burst ran.
    let ceiling = 200 + (burst * 10.0).ceil() as usize + 1;
    assert!(
        (200..=ceiling).contains(&accepted),
        "accepted {accepted} writes in {burst:.2}s"
    );
    let throttled = throttled.expect("the burst was throttled");
    assert_eq!(throttled.code(), "SubscriptionRequestsThrottled");
    assert_eq!(throttled.header("retry-after"), Some("1"));
    assert_eq!(
        throttled.header("x-ms-ratelimit-remaining-subscription-writes"),
        Some("0")
    );

    // Ten simulated seconds refill 100 writes (10/s), within 10%.
    ts.sim.advance(Duration::from_secs(10));
    let started = Instant::now();
    let mut refilled = 0;
    for n in 0..150 {
        if ts
            .call_with(&token, &[], Method::PUT, &policy_path(n), Some(body.clone()))
            .await
            .status
            == 200
        {
            refilled += 1;
        }
    }
    let extra = (started.elapsed().as_secs_f64() * 10.0).ceil() as usize;
    assert!(
        (90..=110 + extra).contains(&refilled),
        "10 s refilled {refilled} writes (expected ~100)"
    );

    // Reads have their own bucket, and report what is left.
    let read = ts
        .call_with(&token, &[], Method::GET, &vault("prod-vault"), None)
        .await
        .expect(200, "a read");
    assert_eq!(read.header("x-ms-ratelimit-remaining-subscription-reads"), Some("249"));
}
