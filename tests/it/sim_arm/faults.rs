//! Faults injected at run time, call counts, and admin requests the simulator refuses (a 400) while it
//! goes on serving.

use super::*;

#[tokio::test]
async fn faults_are_injected_at_run_time_and_calls_are_counted() {
    let ts = TestSim::start().await;
    let token = ts.token(&ts.backup_side()).await;
    let v = vault("prod-vault");
    ts.admin(Method::DELETE, "/_sim/calls", None).await;

    ts.admin(
        Method::PUT,
        "/_sim/faults",
        Some(json!([{"pathContains": "vaults/prod-vault", "errorRate": 1.0, "errorStatus": 503}])),
    )
    .await;
    let reply = ts.call_with(&token, &[], Method::GET, &v, None).await;
    assert_eq!(reply.status, 503);

    ts.admin(
        Method::PUT,
        "/_sim/faults",
        Some(json!([{"pathContains": "vaults/prod-vault", "dropRate": 1.0}])),
    )
    .await;
    let url = format!("{}{v}?api-version=2026-11-01", ts.sim.arm_url);
    let dropped = ts.http.get(&url).bearer_auth(&token).send().await;
    assert!(dropped.is_err(), "the connection was dropped: {dropped:?}");

    ts.admin(
        Method::PUT,
        "/_sim/faults",
        Some(json!([{"pathContains": "vaults/prod-vault", "latencyMs": 300}])),
    )
    .await;
    let started = Instant::now();
    ts.call_with(&token, &[], Method::GET, &v, None)
        .await
        .expect(200, "slow but fine");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "latency was added: {:?}",
        started.elapsed()
    );

    let until = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60)).to_string();
    ts.admin(Method::PUT, "/_sim/faults", Some(json!([{"throttleUntil": until}])))
        .await;
    let reply = ts.call_with(&token, &[], Method::GET, &v, None).await;
    assert_eq!(reply.status, 429);
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((55..=60).contains(&retry), "Retry-After {retry}");
    ts.sim.advance(Duration::from_secs(61));
    ts.call_with(&token, &[], Method::GET, &v, None)
        .await
        .expect(200, "the storm is over");

    ts.admin(Method::PUT, "/_sim/faults", Some(json!([]))).await;
    let calls = ts.admin(Method::GET, "/_sim/calls", None).await;
    let by_backup = &calls["byPrincipal"][BACKUP_OID];
    // Two answered GETs reached ARM (the latency one and the last); faults answer before ARM does.
    assert_eq!(by_backup["GET microsoft.recoveryservices/vaults"], 2, "{calls}");
}

/// The simulator still serves ARM normally: a vault read by the backup side.
async fn still_serves(ts: &TestSim) {
    ts.call(&ts.backup_side(), Method::GET, &vault("prod-vault"), None)
        .await
        .expect(200, "the request after the bad one");
}

fn daily_policy(count: Value, unit: &str) -> Value {
    json!({"properties": {"backupManagementType": "AzureIaasVM", "retentionPolicy": {
        "retentionPolicyType": "LongTermRetentionPolicy",
        "dailySchedule": {"retentionDuration": {"count": count, "durationType": unit}}}}})
}

#[tokio::test]
async fn a_policy_retention_count_beyond_azures_range_is_a_400_and_the_next_request_is_served() {
    let ts = TestSim::start().await;
    let backup = ts.backup_side();
    let policy = policy_path(7);
    ts.call(&backup, Method::PUT, &policy, Some(daily_policy(json!(30), "Days")))
        .await
        .expect(200, "a valid policy");
    // i64::MAX years used to overflow the retention arithmetic while the world lock was held.
    for (count, unit) in [
        (json!(i64::MAX), "Years"),
        (json!(i64::MAX), "Days"),
        (json!(0), "Days"),
        (json!(-5), "Weeks"),
    ] {
        let reply = ts
            .call(&backup, Method::PUT, &policy, Some(daily_policy(count.clone(), unit)))
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "BMSUserErrorInvalidPolicyInput"),
            "{count} {unit}: {}",
            reply.body
        );
        assert!(
            reply.message().contains("retentionDuration.count"),
            "{}",
            reply.message()
        );
    }
    still_serves(&ts).await;
    let kept = ts
        .call(&backup, Method::GET, &policy, None)
        .await
        .expect(200, "the policy");
    assert_eq!(
        kept.body["properties"]["retentionPolicy"]["dailySchedule"]["retentionDuration"]["count"], 30,
        "the refused writes changed nothing"
    );
}

#[tokio::test]
async fn a_pim_schedule_that_ends_before_it_starts_is_a_400_and_the_next_request_is_served() {
    let ts = TestSim::start().await;
    let request = format!(
        "{}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}",
        security_rg(),
        uuid::Uuid::new_v4()
    );
    // An AdminAssign is provisioned at once: its far-future start and its end in year -5000 used to
    // overflow the provisioning arithmetic (now + (end - start)) while the world lock was held.
    let body = json!({"properties": {
        "principalId": BACKUP_OID,
        "roleDefinitionId": format!("/subscriptions/{SECURITY_SUB}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"),
        "requestType": "AdminAssign",
        "justification": "far future",
        "scheduleInfo": {"startDateTime": "9999-01-01T00:00:00Z",
                         "expiration": {"type": "AfterDateTime", "endDateTime": "-005000-01-01T00:00:00Z"}},
    }});
    let reply = ts.call(&ts.security_side(), Method::PUT, &request, Some(body)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "InvalidScheduleInfo"),
        "{}",
        reply.body
    );
    assert!(
        reply.message().contains("must end after it starts"),
        "{}",
        reply.message()
    );
    still_serves(&ts).await;
    // Nothing was granted.
    let assignments = ts
        .call(
            &ts.security_side(),
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId eq '{BACKUP_OID}'",
                security_rg()
            ),
            None,
        )
        .await
        .expect(200, "the backup side's assignments");
    let roles: Vec<&str> = assignments.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["properties"]["roleDefinitionId"].as_str())
        .collect();
    assert!(
        roles
            .iter()
            .all(|r| !r.ends_with("b24988ac-6180-42a0-ab88-20f7382dd24c")),
        "{roles:?}"
    );
}

#[tokio::test]
async fn a_fault_rule_with_an_unbounded_latency_is_a_400_and_the_next_request_is_served() {
    let ts = TestSim::start().await;
    let rules = json!([{"pathContains": "vaults", "latencyMs": u64::MAX}, {"latencyMs": u64::MAX}]);
    let (status, body) = admin_raw(&ts, Method::PUT, "/_sim/faults", rules).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "InvalidFaultRule");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("latencyMs"),
        "{body}"
    );
    for bad in [
        json!([{"errorRate": 1.5}]),
        json!([{"errorRate": 1.0, "errorStatus": 200}]),
    ] {
        let (status, body) = admin_raw(&ts, Method::PUT, "/_sim/faults", bad).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("InvalidFaultRule")),
            "{body}"
        );
    }
    assert_eq!(
        ts.admin(Method::GET, "/_sim/faults", None).await,
        json!([]),
        "no rule was kept"
    );
    still_serves(&ts).await;
}

#[tokio::test]
async fn a_clock_advance_beyond_a_century_is_a_400_and_the_next_request_is_served() {
    let ts = TestSim::start().await;
    for seconds in [json!(1e20), json!(-1.0)] {
        let (status, body) = admin_raw(&ts, Method::POST, "/_sim/clock/advance", json!({"seconds": seconds})).await;
        assert_eq!(status, 400, "{seconds}: {body}");
        assert_eq!(body["error"]["code"], "InvalidClockAdvance");
    }
    let clock = ts.admin(Method::GET, "/_sim/clock", None).await;
    assert_eq!(clock["offsetSeconds"], 0.0, "the clock did not move: {clock}");
    still_serves(&ts).await;
    let (status, body) = admin_raw(&ts, Method::POST, "/_sim/clock/advance", json!({"seconds": 3600})).await;
    assert_eq!(status, 200, "{body}");
}
