//! The ARM client's client-side throttling against the simulator's ARM throttling: a burst beyond ARM's
//! bucket waits here instead of being refused there, ARM's remaining-budget header corrects a bucket that
//! someone else has spent, and the client's metrics count what it sent. The simulator's buckets are made
//! small (20 reads) so the bursts stay short; its clock runs at real time, like the client's.

use crate::simulator;

use mua_operator::azure::throttle::ThrottleKey;
use mua_operator::azure::{ArmClient, ArmMetrics, AzureError, Bucket, Call, Reply, RetryPolicy, ThrottlePolicy};
use mua_operator::sim::Limits;
use reqwest::Method;
use simulator::*;

const READS: Bucket = Bucket {
    capacity: 20,
    per_second: 10,
};

async fn small_buckets() -> TestSim {
    TestSim::start_with(|options| {
        options.limits = Limits {
            read_capacity: READS.capacity,
            read_per_second: READS.per_second,
            ..Limits::default()
        };
    })
    .await
}

/// The security side's client with `throttle`; one attempt per call, so any 429 surfaces as an error.
fn client(ts: &TestSim, throttle: ThrottlePolicy) -> ArmClient {
    let once = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    ArmClient::new(&ts.cloud, ts.http.clone(), CONTOSO, ts.security_side())
        .with_retry(once)
        .with_throttle(throttle)
}

/// The simulator's limits as the client's policy.
fn matching() -> ThrottlePolicy {
    ThrottlePolicy {
        reads: READS,
        ..ThrottlePolicy::default()
    }
}

fn get(path: &str) -> Call {
    Call::new(Method::GET, path, default_api_version(path))
}

/// How many answers were ARM's 429 (anything but that or 200 fails the test).
fn throttled(answers: Vec<Result<Reply, AzureError>>) -> usize {
    let mut throttled = 0;
    for answer in answers {
        match answer {
            Ok(reply) => assert_eq!(reply.status, 200),
            Err(err @ AzureError::Arm { status: 429, .. }) => {
                assert_eq!(err.code(), Some("SubscriptionRequestsThrottled"));
                throttled += 1;
            }
            Err(err) => panic!("{err}"),
        }
    }
    throttled
}

/// Sends `n` GETs one after the other; returns how many ARM refused.
async fn burst(client: &ArmClient, path: &str, n: usize) -> usize {
    let mut answers = Vec::new();
    for _ in 0..n {
        answers.push(client.send(&get(path)).await);
    }
    throttled(answers)
}

async fn reads_admitted(ts: &TestSim) -> u64 {
    let calls = ts.admin(Method::GET, "/_sim/calls", None).await;
    calls["byRoute"]["GET microsoft.dataprotection/resourceguards"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_burst_beyond_arms_read_bucket_waits_here_instead_of_getting_429s() {
    let ts = small_buckets().await;
    let path = ts.create_guard("burst").await;
    let client = client(&ts, matching());

    let n = READS.capacity as usize + 10;
    assert_eq!(burst(&client, &path, n).await, 0, "no GET was refused");
    assert_eq!(reads_admitted(&ts).await, n as u64, "ARM admitted every GET");
}

#[tokio::test]
async fn without_client_side_buckets_the_same_burst_gets_429s() {
    let ts = small_buckets().await;
    let path = ts.create_guard("unthrottled").await;
    let client = client(&ts, ThrottlePolicy::disabled());

    // All at once, so that however slow the machine, few tokens refill while they are sent.
    let call = get(&path);
    let answers = futures::future::join_all((0..READS.capacity + 10).map(|_| client.send(&call))).await;
    assert!(throttled(answers) >= 5, "the burst overran ARM's bucket");
}

#[tokio::test]
async fn arms_remaining_budget_drains_a_bucket_someone_else_spent() {
    let ts = small_buckets().await;
    let path = ts.create_guard("shared-budget").await;
    // Another replica with the same identity (ARM counts per principal; the simulator reports that bucket
    // in `x-ms-ratelimit-remaining-subscription-reads`; the subscription-wide one is 15× larger, so no
    // single other identity can bring it this low) spends all but a few reads.
    let other = client(&ts, ThrottlePolicy::disabled());
    assert_eq!(burst(&other, &path, READS.capacity as usize - 4).await, 0);

    let client = client(&ts, matching());
    let key = ThrottleKey::for_call(&Method::GET, &path, CONTOSO);
    let first = client.send(&get(&path)).await.expect("ARM still had tokens");
    let at_arm: u32 = first
        .header("x-ms-ratelimit-remaining-subscription-reads")
        .and_then(|v| v.parse().ok())
        .expect("ARM reports the reads left");
    let here = client.throttle().tokens_left(&key).unwrap();
    assert!(
        here <= at_arm,
        "the bucket holds {here} tokens after ARM said {at_arm} were left"
    );
    // Left as it was, the bucket would let all of these through at once.
    assert_eq!(burst(&client, &path, 8).await, 0, "no GET was refused");
}

#[tokio::test]
async fn requests_are_counted_by_route_and_status_without_resource_names() {
    let ts = TestSim::start().await;
    let path = ts.create_guard("counted-guard").await;
    let metrics = ArmMetrics::new();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let client = client(&ts, ThrottlePolicy::default()).with_metrics(metrics.clone());

    for _ in 0..3 {
        client.send(&get(&path)).await.unwrap();
    }
    let missing = client.send(&get(&guard("no-such-guard"))).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let count = |status: &str| {
        let series = format!(
            r#"mua_arm_requests_total{{method="GET",route="microsoft.dataprotection/resourceguards",status="{status}"}} "#
        );
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .to_string()
    };
    assert_eq!((count("200"), count("404")), ("3".to_string(), "1".to_string()));
    assert!(
        text.contains(
            r#"mua_arm_request_duration_seconds_count{method="GET",route="microsoft.dataprotection/resourceguards"} 4"#
        ),
        "{text}"
    );
    assert!(
        !text.contains("counted-guard") && !text.contains(SECURITY_SUB),
        "a resource name or ID in a label:\n{text}"
    );
}
