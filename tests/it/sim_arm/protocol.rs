//! ARM's conventions: ETags (If-Match), long-running operations, api-versions, path errors and paging.

use super::*;

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
