//! ARM behaviour of the simulator: throttling, ETags, long-running operations, api-version and path
//! errors, injected faults, call counts, persistence, workload identity, device code sign-in and the `sim`
//! command.

use crate::simulator;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use simulator::*;

fn policy_path(n: usize) -> String {
    format!("{}/backupPolicies/p{n}", vault("prod-vault"))
}

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

#[tokio::test]
async fn a_token_for_another_resource_is_refused_and_guards_list_by_scope() {
    let ts = TestSim::start().await;
    let vault_token = ts
        .backup_side()
        .get_token(&["https://vault.azure.net/.default"], None)
        .await
        .unwrap();
    let reply = ts
        .call_with(vault_token.token.secret(), &[], Method::GET, &vault("prod-vault"), None)
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "InvalidAuthenticationTokenAudience")
    );
    assert!(reply.message().contains("wrong audience"), "{}", reply.message());

    let security = ts.security_side();
    for name in ["g1", "g2"] {
        ts.create_guard(name).await;
    }
    let in_group = ts
        .call(
            &security,
            Method::GET,
            &format!("{}/providers/Microsoft.DataProtection/resourceGuards", security_rg()),
            None,
        )
        .await;
    assert_eq!(
        in_group.expect(200, "list by resource group").body["value"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    // A subscription-wide list needs a role on the subscription: the security side's Owner role is on the
    // resource group only; Bob reads the whole subscription.
    let in_subscription = format!("/subscriptions/{SECURITY_SUB}/providers/Microsoft.DataProtection/resourceGuards");
    let reply = ts.call(&security, Method::GET, &in_subscription, None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "AuthorizationFailed"),
        "{}",
        reply.body
    );
    let bob = ts.user_token(CONTOSO, "bob@contoso.example", "bob-password").await;
    let reply = ts
        .call_with(&bob, &[], Method::GET, &in_subscription, None)
        .await
        .expect(200, "Bob lists the subscription");
    assert_eq!(reply.body["value"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn if_match_guards_against_lost_updates() {
    let ts = TestSim::start().await;
    let security = ts.security_side();
    let created = ts
        .call(&security, Method::GET, &ts.create_guard("g1").await, None)
        .await;
    let etag = created.body["eTag"].as_str().unwrap().to_string();
    let token = ts.token(&security).await;
    let url = format!("{}{}?api-version=2026-06-01", ts.sim.arm_url, guard("g1"));
    let patch = |if_match: &str| {
        ts.http
            .patch(&url)
            .bearer_auth(&token)
            .header("if-match", if_match)
            .json(&json!({"tags": {"a": "b"}}))
            .send()
    };
    let stale = patch("\"stale\"").await.unwrap();
    assert_eq!(stale.status(), 412);
    let body: Value = stale.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PreconditionFailed");
    let fresh = patch(&etag).await.unwrap();
    assert_eq!(fresh.status(), 200);
    let body: Value = fresh.json().await.unwrap();
    assert_eq!(body["tags"]["a"], "b");
    assert_ne!(body["eTag"].as_str(), Some(etag.as_str()), "a write changes the ETag");
}

#[tokio::test]
async fn vault_updates_are_long_running_operations_clients_can_poll() {
    let ts = TestSim::start().await;
    let backup = ts.backup_side();
    let reply = ts
        .call(
            &backup,
            Method::PATCH,
            &vault("prod-vault"),
            Some(json!({"tags": {"env": "prod"}})),
        )
        .await
        .expect(202, "patch");
    let token = ts.token(&backup).await;
    let status_url = reply
        .header("azure-asyncoperation")
        .expect("Azure-AsyncOperation")
        .to_string();
    assert!(reply.header("retry-after").is_some());
    let status: Value = ts
        .http
        .get(&status_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "Succeeded", "{status}");
    let location = reply.header("location").expect("Location").to_string();
    let result = ts.http.get(&location).bearer_auth(&token).send().await.unwrap();
    assert_eq!(result.status(), 200);
    let body: Value = result.json().await.unwrap();
    assert_eq!(body["tags"]["env"], "prod");
}

#[tokio::test]
async fn unknown_api_versions_and_paths_get_arms_own_errors() {
    let ts = TestSim::start().await;
    let token = ts.token(&ts.backup_side()).await;
    let v = vault("prod-vault");
    let reply = ts
        .call_with(&token, &[], Method::GET, &format!("{v}?api-version=2099-01-01"), None)
        .await;
    assert_eq!((reply.status, reply.code()), (400, "NoRegisteredProviderFound"));
    assert!(
        reply.message().contains("2026-11-01"),
        "lists the supported versions: {}",
        reply.message()
    );
    // The api-versions current SDKs send are accepted, and so are the examples' own.
    for version in ["2026-11-01", "2025-02-01"] {
        ts.call_with(&token, &[], Method::GET, &format!("{v}?api-version={version}"), None)
            .await
            .expect(200, version);
    }
    let reply = ts
        .call_with(&token, &[], Method::GET, &format!("{v}/backupWidgets/w1"), None)
        .await;
    assert_eq!((reply.status, reply.code()), (404, "InvalidResourceType"));
    let url = format!("{}{v}", ts.sim.arm_url);
    let reply = ts.http.get(url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(reply.status(), 400);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["error"]["code"], "MissingApiVersionParameter");
    let reply = ts
        .call_with(&token, &[], Method::GET, &vault("no-such-vault"), None)
        .await;
    assert_eq!((reply.status, reply.code()), (404, "ResourceNotFound"));
}

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

#[tokio::test]
async fn state_survives_a_restart_with_a_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    {
        let ts = TestSim::start_in(dir.path(), |o| o.state_file = Some(state.clone())).await;
        ts.create_guard("kept").await;
    }
    assert!(state.exists());
    let ts = TestSim::start_in(dir.path(), |o| {
        o.state_file = Some(state.clone());
        o.seed = None;
    })
    .await;
    let reply = ts
        .call(&ts.security_side(), Method::GET, &guard("kept"), None)
        .await
        .expect(200, "the guard is still there");
    assert_eq!(reply.body["location"], "westeurope");
}

#[tokio::test]
async fn workload_identity_exchanges_a_service_account_token() {
    use jsonwebtoken::{
        Algorithm, EncodingKey, Header,
        jwk::{Jwk, JwkSet},
    };
    let key = rcgen::KeyPair::generate().unwrap();
    let encoding = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("sa-key".into());
    let issuer = "https://kubernetes.default.svc.cluster.local";
    let subject = "system:serviceaccount:mua-system:mua-operator";

    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    let seed_doc = json!({
        "tenants": [{"id": CONTOSO}],
        "subscriptions": [{"id": BACKUP_SUB, "tenant": CONTOSO, "resourceGroups": [{"name": "backup-rg", "location": "westeurope"}]}],
        "principals": [{"objectId": BACKUP_OID, "tenant": CONTOSO, "type": "ManagedIdentity", "clientId": BACKUP_APP,
                        "federatedCredentials": [{"issuer": issuer, "subject": subject, "jwks": JwkSet {keys: vec![jwk]}}]}],
        "vaults": [{"subscription": BACKUP_SUB, "resourceGroup": "backup-rg", "name": "prod-vault", "location": "westeurope"}],
        "roleAssignments": [{"principal": BACKUP_OID, "role": "Reader", "scope": format!("/subscriptions/{BACKUP_SUB}")}],
    });
    std::fs::write(&seed, seed_doc.to_string()).unwrap();
    let ts = TestSim::start_with(|o| o.seed = Some(seed.clone())).await;

    let sign = |sub: &str| {
        let now = jiff::Timestamp::now().as_second();
        let claims = json!({"iss": issuer, "sub": sub, "aud": ["api://AzureADTokenExchange"], "iat": now, "nbf": now, "exp": now + 600});
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("sa-key".into());
        jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
    };
    let token_file = dir.path().join("sa-token");
    std::fs::write(&token_file, sign(subject)).unwrap();
    let credential = ts
        .cloud
        .workload_identity(&ts.http, CONTOSO, BACKUP_APP, &token_file)
        .unwrap();
    ts.call(&credential, Method::GET, &vault("prod-vault"), None)
        .await
        .expect(200, "reading with a workload identity token");

    let other_file = dir.path().join("other-token");
    std::fs::write(&other_file, sign("system:serviceaccount:other:intruder")).unwrap();
    let intruder = ts
        .cloud
        .workload_identity(&ts.http, CONTOSO, BACKUP_APP, &other_file)
        .unwrap();
    let err = intruder
        .get_token(&[mua_operator::azure::credentials::ARM_SCOPE], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AADSTS70021"), "{err}");
}

#[tokio::test]
async fn the_sim_command_serves_the_example_seed_until_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.yaml");
    std::fs::write(
        &faults,
        "- pathContains: backupWidgets\n  errorRate: 1.0\n  errorStatus: 503\n",
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mua-operator"))
        .args(["sim", "--listen", "127.0.0.1:0", "--seed"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sim-seed.yaml"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--faults")
        .arg(&faults)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a banner line")
        .unwrap()
        .unwrap();
    let banner: Value = serde_json::from_str(&banner).unwrap();
    let ca = std::fs::read_to_string(banner["caFile"].as_str().unwrap()).unwrap();
    let cloud = mua_operator::azure::credentials::AzureCloud {
        arm_url: banner["armUrl"].as_str().unwrap().into(),
        authority_host: banner["authorityHost"].as_str().unwrap().into(),
        ca_pem: Some(ca),
    };
    let http = cloud.http_client().unwrap();
    let credential = cloud.client_secret(&http, CONTOSO, BACKUP_APP, BACKUP_SECRET).unwrap();
    let token = credential
        .get_token(&[mua_operator::azure::credentials::ARM_SCOPE], None)
        .await
        .unwrap();
    let reply = http
        .get(format!(
            "{}{}?api-version=2026-11-01",
            cloud.arm_url,
            vault("prod-vault")
        ))
        .bearer_auth(token.token.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let rules: Value = http
        .get(format!("{}/_sim/faults", cloud.arm_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rules[0]["pathContains"], "backupWidgets",
        "fault rules from --faults: {rules}"
    );

    let pid = child.id().unwrap() as i32;
    // SAFETY: signals our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// A raw call to the simulator's admin API: status and body, whatever they are.
async fn admin_raw(ts: &TestSim, method: Method, path: &str, body: Value) -> (u16, Value) {
    let response = ts
        .http
        .request(method, format!("{}{path}", ts.sim.arm_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
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

#[tokio::test]
async fn every_published_api_version_is_accepted_and_an_unpublished_one_refused() {
    let ts = TestSim::start().await;
    let token = ts.token(&ts.backup_side()).await;
    let proxies = format!("{}/backupResourceGuardProxies", vault("prod-vault"));
    // What azure-cli 2.91 sends: RecoveryServices vaults 2026-07-01, backup resources 2026-08-01; and
    // older published versions.
    for path in [
        format!("{}?api-version=2026-07-01", vault("prod-vault")),
        format!("{}?api-version=2016-06-01", vault("prod-vault")),
        format!("{proxies}?api-version=2026-08-01"),
        format!("{proxies}?api-version=2021-02-01-preview"),
    ] {
        ts.call_with(&token, &[], Method::GET, &path, None)
            .await
            .expect(200, &path);
    }
    // The dataprotection extension's 2023-11-01.
    ts.create_guard("versioned").await;
    let guard_at = format!("{}?api-version=2023-11-01", guard("versioned"));
    ts.call(&ts.security_side(), Method::GET, &guard_at, None)
        .await
        .expect(200, "a guard at 2023-11-01");
    for path in [
        format!("{}?api-version=2026-07-02", vault("prod-vault")),
        format!("{proxies}?api-version=2026-07-01"),
    ] {
        let reply = ts.call_with(&token, &[], Method::GET, &path, None).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "NoRegisteredProviderFound"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn lists_page_with_a_next_link_and_a_skip_token() {
    let ts = TestSim::start().await;
    let security = ts.security_side();
    for n in 0..130 {
        ts.create_guard(&format!("paged-{n:03}")).await;
    }
    let list = format!("{}/providers/Microsoft.DataProtection/resourceGuards", security_rg());
    let first = ts.call(&security, Method::GET, &list, None).await.expect(200, "page 1");
    assert_eq!(first.body["value"].as_array().map(Vec::len), Some(100));
    let next = first.body["nextLink"].as_str().expect("a nextLink").to_string();
    assert!(
        next.starts_with(&ts.sim.arm_url) && next.contains("%24skiptoken=") || next.contains("$skiptoken="),
        "{next}"
    );
    let token = ts.token(&security).await;
    let second = ts
        .call_with(&token, &[], Method::GET, next.trim_start_matches(&ts.sim.arm_url), None)
        .await
        .expect(200, "page 2");
    assert_eq!(second.body["value"].as_array().map(Vec::len), Some(30));
    assert!(second.body.get("nextLink").is_none(), "the last page has no nextLink");
    let mut names: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|page| page.body["value"].as_array().unwrap().iter())
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 130, "every guard once");
    let bad = ts
        .call_with(&token, &[], Method::GET, &format!("{list}?$skiptoken=9999"), None)
        .await;
    assert_eq!((bad.status, bad.code()), (400, "InvalidSkipToken"));
}

#[tokio::test]
async fn the_metadata_endpoint_is_anonymous_and_everything_else_needs_a_token() {
    let ts = TestSim::start().await;
    let metadata = ts
        .call_with("", &[], Method::GET, "/metadata/endpoints?api-version=2022-09-01", None)
        .await
        .expect(200, "metadata without a token");
    assert_eq!(metadata.body["resourceManager"], format!("{}/", ts.sim.arm_url));
    assert_eq!(
        metadata.body["authentication"]["loginEndpoint"],
        format!("{}/", ts.sim.authority_host)
    );
    let unversioned = ts
        .http
        .get(format!("{}/metadata/endpoints", ts.sim.arm_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status(), 400);
    let body: Value = unversioned.json().await.unwrap();
    assert_eq!(body["error"]["code"], "MissingApiVersionParameter");
    let subscriptions = ts
        .call_with("", &[], Method::GET, "/subscriptions?api-version=2022-12-01", None)
        .await;
    assert_eq!(subscriptions.status, 401);
}

#[tokio::test]
async fn a_subscription_is_visible_to_whoever_has_a_role_in_it_and_not_found_for_others() {
    let ts = TestSim::start().await;
    let security_sub = format!("/subscriptions/{SECURITY_SUB}?api-version=2022-12-01");
    // Reader on one resource group of the security subscription is enough to see it.
    let backup = ts.token(&ts.backup_side()).await;
    let seen = ts
        .call_with(&backup, &[], Method::GET, &security_sub, None)
        .await
        .expect(200, "the backup side sees the security subscription");
    assert_eq!(seen.body["subscriptionId"], SECURITY_SUB);
    assert_eq!(seen.body["displayName"], "security");
    // Alice has no role anywhere: the subscription is not found, and her list is empty.
    let alice = ts.user_token(CONTOSO, "alice@contoso.example", "alice-password").await;
    let hidden = ts.call_with(&alice, &[], Method::GET, &security_sub, None).await;
    assert_eq!((hidden.status, hidden.code()), (404, "SubscriptionNotFound"));
    let list = ts
        .call_with(&alice, &[], Method::GET, "/subscriptions?api-version=2022-12-01", None)
        .await
        .expect(200, "Alice's subscriptions");
    assert_eq!(list.body["value"], json!([]));
    assert_eq!(list.body["count"]["value"], 0);
    // The caller's tenant, as `GET /tenants` lists it.
    let tenants = ts
        .call_with(&backup, &[], Method::GET, "/tenants?api-version=2022-12-01", None)
        .await
        .expect(200, "tenants");
    assert_eq!(tenants.body["value"][0]["tenantId"], CONTOSO);
    assert_eq!(tenants.body["value"][0]["displayName"], "contoso");
    // Resource groups: listed only where the caller may read them.
    let groups = ts
        .call_with(
            &backup,
            &[],
            Method::GET,
            &format!("/subscriptions/{SECURITY_SUB}/resourcegroups?api-version=2024-11-01"),
            None,
        )
        .await
        .expect(200, "the security subscription's groups");
    let names: Vec<&str> = groups.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(names, ["security-rg"]);
}

#[tokio::test]
async fn role_definitions_filter_by_name_as_az_role_assignment_create_asks() {
    let ts = TestSim::start().await;
    let token = ts.token(&ts.security_side()).await;
    let at_guard = format!(
        "{}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName eq 'Reader'&api-version=2022-05-01-preview",
        security_rg()
    );
    let reply = ts
        .call_with(&token, &[], Method::GET, &at_guard, None)
        .await
        .expect(200, "Reader by name");
    let found = reply.body["value"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{}", reply.body);
    assert_eq!(found[0]["name"], "acdd72a7-3385-48ef-bd42-f606fba81ae7");
    assert_eq!(
        found[0]["id"],
        format!(
            "/subscriptions/{SECURITY_SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
        )
    );
    assert_eq!(found[0]["properties"]["type"], "BuiltInRole");
    assert_eq!(found[0]["properties"]["permissions"][0]["actions"], json!(["*/read"]));
    let unsupported = ts
        .call_with(
            &token,
            &[],
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Authorization/roleDefinitions?$filter=startswith(roleName,'R')&api-version=2022-05-01-preview",
                security_rg()
            ),
            None,
        )
        .await;
    assert_eq!(unsupported.status, 400);
}

/// Connects to the simulator; `tls`: completes the handshake (trusting its CA) before going idle.
async fn idle_connection_is_closed(tls: bool) {
    use tokio::io::AsyncReadExt;
    let ts = TestSim::start_with(|o| o.idle_timeout = Duration::from_secs(1)).await;
    let addr = ts.sim.arm_url.trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = if tls {
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ts.sim.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut stream = connector.connect(name, tcp).await.expect("the handshake succeeds");
        tokio::time::timeout(Duration::from_secs(15), stream.read(&mut buf)).await
    } else {
        let mut tcp = tcp;
        tokio::time::timeout(Duration::from_secs(15), tcp.read(&mut buf)).await
    };
    // Closed by the server: end of stream (or a reset), long before the 15 s this waits.
    match closed {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("the server sent {n} bytes to an idle connection"),
        Err(_) => panic!("an idle connection was still open after 15 s (idle timeout 1 s)"),
    }
}

#[tokio::test]
async fn a_connection_that_never_starts_tls_is_closed_after_the_idle_timeout() {
    idle_connection_is_closed(false).await;
}

#[tokio::test]
async fn a_connection_idle_after_the_handshake_is_closed_after_the_idle_timeout() {
    idle_connection_is_closed(true).await;
}

/// A Microsoft Graph call with a token of the given scope: (status, body).
async fn graph_get(
    ts: &TestSim,
    credential: &std::sync::Arc<dyn azure_core::credentials::TokenCredential>,
    scope: &str,
    path: &str,
) -> (u16, Value) {
    let token = credential
        .get_token(&[scope], None)
        .await
        .expect("a token")
        .token
        .secret()
        .to_string();
    let response = ts
        .http
        .get(format!("{}{path}", ts.sim.arm_url))
        .bearer_auth(token)
        .send()
        .await
        .expect("the simulator answers");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// Graph's scope as the Azure CLI asks for it: the simulator's `microsoftGraphResourceId` + `/.default`.
fn graph_scope(ts: &TestSim) -> String {
    format!("{}//.default", ts.sim.arm_url)
}

const BACKUP_APP_FILTER: &str =
    "/v1.0/servicePrincipals?$filter=servicePrincipalNames/any(c:c%20eq%20'0d9a6a8e-1c2b-4f35-8e7d-5a1b2c3d4e01')";

#[tokio::test]
async fn graph_finds_a_service_principal_by_its_app_id() {
    let ts = TestSim::start().await;
    let (status, body) = graph_get(&ts, &ts.security_side(), &graph_scope(&ts), BACKUP_APP_FILTER).await;
    assert_eq!(status, 200, "{body}");
    let found: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    // Only the principal in the caller's tenant, though the app has one in the isolated tenant too.
    assert_eq!(found, [BACKUP_OID]);
}

#[tokio::test]
async fn graph_refuses_a_token_for_arm() {
    let ts = TestSim::start().await;
    let (status, body) = graph_get(
        &ts,
        &ts.security_side(),
        mua_operator::azure::credentials::ARM_SCOPE,
        BACKUP_APP_FILTER,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("InvalidAuthenticationToken")),
        "{body}"
    );
}

#[tokio::test]
async fn graph_refuses_an_application_without_a_graph_permission() {
    let ts = TestSim::start().await;
    // The backup side has no Graph permission in the seed.
    let (status, body) = graph_get(&ts, &ts.backup_side(), &graph_scope(&ts), BACKUP_APP_FILTER).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("Authorization_RequestDenied")),
        "{body}"
    );
}

#[tokio::test]
async fn arm_refuses_a_token_for_graph() {
    let ts = TestSim::start().await;
    let token = ts
        .security_side()
        .get_token(&[&graph_scope(&ts)], None)
        .await
        .unwrap()
        .token
        .secret()
        .to_string();
    let reply = ts.call_with(&token, &[], Method::GET, &security_rg(), None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "InvalidAuthenticationTokenAudience")
    );
}

fn vault_config(name: &str) -> String {
    format!("{}/backupconfig/vaultconfig", vault(name))
}

#[tokio::test]
async fn the_vault_config_and_the_vault_show_one_soft_delete_state() {
    let ts = TestSim::start().await;
    let backup = ts.backup_side();
    let patch = json!({"properties": {"softDeleteRetentionPeriodInDays": 30}});
    let written = ts
        .call(&backup, Method::PATCH, &vault_config("prod-vault"), Some(patch))
        .await
        .expect(200, "a longer retention through the vault config");
    assert_eq!(written.body["properties"]["softDeleteFeatureState"], "Enabled");
    let vault = ts.call(&backup, Method::GET, &vault("prod-vault"), None).await;
    let soft_delete = &vault.body["properties"]["securitySettings"]["softDeleteSettings"];
    assert_eq!(soft_delete["softDeleteRetentionPeriodInDays"], 30, "{}", vault.body);
    let config = ts.call(&backup, Method::GET, &vault_config("prod-vault"), None).await;
    assert_eq!(config.body["properties"]["softDeleteRetentionPeriodInDays"], 30);
    assert_eq!(config.body["name"], "vaultconfig");
    assert_eq!(config.body["type"], "Microsoft.RecoveryServices/vaults/backupconfig");
}

#[tokio::test]
async fn a_vault_config_retention_outside_azures_range_is_a_400_and_changes_nothing() {
    let ts = TestSim::start().await;
    let backup = ts.backup_side();
    let patch = json!({"properties": {"softDeleteRetentionPeriodInDays": 181}});
    let refused = ts
        .call(&backup, Method::PATCH, &vault_config("prod-vault"), Some(patch))
        .await;
    assert_eq!((refused.status, refused.code()), (400, "InvalidRequestContent"));
    let config = ts.call(&backup, Method::GET, &vault_config("prod-vault"), None).await;
    assert_eq!(config.body["properties"]["softDeleteRetentionPeriodInDays"], 14);
}

// Device code sign-in, as MSAL drives it for `az login --use-device-code`.

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A form post to one of Contoso's OAuth endpoints (`devicecode`, `token`): status and JSON body.
async fn oauth_post(ts: &TestSim, endpoint: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = ts
        .http
        .post(format!("{}/{CONTOSO}/oauth2/v2.0/{endpoint}", ts.sim.authority_host))
        .form(form)
        .send()
        .await
        .expect("the simulator answers");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// A device code for the Azure CLI, asked for as MSAL asks (ARM's scope and the OpenID ones): the
/// device code and the user code.
async fn device_code(ts: &TestSim) -> (String, String) {
    let scope = "https://management.core.windows.net//.default offline_access openid profile";
    let (status, body) = oauth_post(ts, "devicecode", &[("client_id", AZURE_CLI_APP), ("scope", scope)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verification_uri"], format!("{}/_sim/devicelogin", ts.sim.arm_url));
    assert_eq!((&body["expires_in"], &body["interval"]), (&json!(900), &json!(5)));
    let user_code = body["user_code"].as_str().unwrap().to_string();
    assert!(body["message"].as_str().unwrap().contains(&user_code), "{body}");
    (body["device_code"].as_str().unwrap().to_string(), user_code)
}

/// One poll of the token endpoint, as MSAL sends it (the device code also as `code`).
async fn redeem_device_code(ts: &TestSim, device_code: &str) -> (u16, Value) {
    let form = [
        ("grant_type", DEVICE_CODE_GRANT),
        ("client_id", AZURE_CLI_APP),
        ("device_code", device_code),
        ("code", device_code),
        ("client_info", "1"),
    ];
    oauth_post(ts, "token", &form).await
}

async fn approve_as_alice(ts: &TestSim, user_code: &str) {
    let login = json!({"userCode": user_code, "username": "alice@contoso.example", "password": "alice-password"});
    ts.admin(Method::POST, "/_sim/devicelogin", Some(login)).await;
}

fn claims_of(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token).unwrap().claims
}

#[tokio::test]
async fn a_device_code_is_pending_until_the_person_approves_it_then_redeems_for_their_tokens() {
    let ts = TestSim::start().await;
    let (device_code, user_code) = device_code(&ts).await;
    let (status, pending) = redeem_device_code(&ts, &device_code).await;
    assert_eq!(
        (status, &pending["error"]),
        (400, &json!("authorization_pending")),
        "{pending}"
    );
    assert_eq!(pending["error_codes"], json!([70016]));

    approve_as_alice(&ts, &user_code).await;
    let (status, tokens) = redeem_device_code(&ts, &device_code).await;
    assert_eq!(status, 200, "{tokens}");
    let access = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        (&access["oid"], &access["upn"]),
        (&json!(ALICE_OID), &json!("alice@contoso.example"))
    );
    assert_eq!(access["aud"], "https://management.core.windows.net");
    // What MSAL keeps the account by: the ID token's claims and client_info.
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        (&id["aud"], &id["preferred_username"], &id["tid"]),
        (&json!(AZURE_CLI_APP), &json!("alice@contoso.example"), &json!(CONTOSO))
    );
    assert!(
        tokens["client_info"].is_string() && tokens["refresh_token"].is_string(),
        "{tokens}"
    );
    assert!(
        tokens["scope"]
            .as_str()
            .unwrap()
            .contains("https://management.core.windows.net//.default")
    );
}

#[tokio::test]
async fn a_device_code_redeems_only_once() {
    let ts = TestSim::start().await;
    let (device_code, user_code) = device_code(&ts).await;
    approve_as_alice(&ts, &user_code).await;
    assert_eq!(redeem_device_code(&ts, &device_code).await.0, 200);
    let (status, again) = redeem_device_code(&ts, &device_code).await;
    assert_eq!(
        (status, &again["error"]),
        (400, &json!("bad_verification_code")),
        "{again}"
    );
}

#[tokio::test]
async fn the_device_login_refuses_a_wrong_password_and_an_unknown_code() {
    let ts = TestSim::start().await;
    let (_, user_code) = device_code(&ts).await;
    let wrong = json!({"userCode": user_code, "username": "alice@contoso.example", "password": "guess"});
    let (status, body) = admin_raw(&ts, Method::POST, "/_sim/devicelogin", wrong).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().starts_with("AADSTS50126"),
        "{body}"
    );
    let unknown = json!({"userCode": "NOSUCHCD", "username": "alice@contoso.example", "password": "alice-password"});
    let (status, body) = admin_raw(&ts, Method::POST, "/_sim/devicelogin", unknown).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("InvalidUserCode")),
        "{body}"
    );
}

#[tokio::test]
async fn a_refresh_token_gets_alice_a_graph_token_and_a_forged_one_is_refused() {
    let ts = TestSim::start().await;
    let (device_code, user_code) = device_code(&ts).await;
    approve_as_alice(&ts, &user_code).await;
    let (_, tokens) = redeem_device_code(&ts, &device_code).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let graph_scope = format!("{} offline_access openid profile", graph_scope(&ts));
    let refresh_form = |token| {
        [
            ("grant_type", "refresh_token"),
            ("client_id", AZURE_CLI_APP),
            ("refresh_token", token),
            ("scope", graph_scope.as_str()),
        ]
    };
    let (status, graph) = oauth_post(&ts, "token", &refresh_form(refresh)).await;
    assert_eq!(status, 200, "{graph}");
    let access = claims_of(graph["access_token"].as_str().unwrap());
    assert_eq!(
        (&access["oid"], &access["aud"]),
        (&json!(ALICE_OID), &json!(ts.sim.arm_url))
    );

    let (status, forged) = oauth_post(&ts, "token", &refresh_form("not-a-refresh-token")).await;
    assert_eq!((status, &forged["error"]), (400, &json!("invalid_grant")), "{forged}");
    assert_eq!(forged["error_codes"], json!([9002313]));
}

#[tokio::test]
async fn a_device_code_for_an_unknown_tenant_is_refused_as_entra_refuses_it() {
    let ts = TestSim::start().await;
    let response = ts
        .http
        .post(format!(
            "{}/no-such-tenant/oauth2/v2.0/devicecode",
            ts.sim.authority_host
        ))
        .form(&[
            ("client_id", AZURE_CLI_APP),
            ("scope", "https://management.core.windows.net//.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (&body["error"], &body["error_codes"]),
        (&json!("invalid_request"), &json!([90002])),
        "{body}"
    );
}
