//! The API server's own view of a benchmark's requests: `apiserver_request_duration_seconds`, the time
//! from a request's arrival to its response inside kube-apiserver. Beside the client's spans it tells
//! how much of a slow write was the API server's (queued behind other work) and how much the client's.

use super::{Sample, parse_prometheus};

/// The API server's `/metrics` now (as a user allowed to read them).
pub async fn scrape(admin: &kube::Client) -> Vec<Sample> {
    let text = admin
        .request_text(http::Request::get("/metrics").body(Vec::new()).expect("a request"))
        .await
        .expect("the API server's metrics");
    parse_prometheus(&text)
}

/// Cumulative bucket counts of one histogram (all verbs of one resource and subresource), by upper bound
/// in seconds, ascending; the last bound is +Inf.
#[derive(Clone, Debug, Default)]
pub struct Latency(Vec<(f64, f64)>);

impl Latency {
    /// The histogram of requests to `resource` (plural) and `subresource` (`""` for the object itself)
    /// answered so far.
    pub async fn now(admin: &kube::Client, resource: &str, subresource: &str) -> Latency {
        Latency::of(&scrape(admin).await, resource, subresource)
    }

    fn of(samples: &[Sample], resource: &str, subresource: &str) -> Latency {
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        let series = samples.iter().filter(|s| {
            s.name == "apiserver_request_duration_seconds_bucket"
                && s.labels.get("resource").map(String::as_str) == Some(resource)
                && s.labels.get("subresource").map_or("", String::as_str) == subresource
        });
        for sample in series {
            let Some(bound) = sample.labels.get("le").and_then(|le| le.parse::<f64>().ok()) else {
                continue;
            };
            match buckets.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, count)) => *count += sample.value,
                None => buckets.push((bound, sample.value)),
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Latency(buckets)
    }

    /// The requests answered between `earlier` and this one.
    pub fn since(&self, earlier: &Latency) -> Latency {
        let before = |bound: f64| earlier.0.iter().find(|(b, _)| *b == bound).map_or(0.0, |(_, c)| *c);
        Latency(
            self.0
                .iter()
                .map(|&(bound, count)| (bound, count - before(bound)))
                .collect(),
        )
    }

    pub fn count(&self) -> f64 {
        self.0.last().map_or(0.0, |(_, c)| *c)
    }

    /// The bucket bound the `p`-quantile lies under (a histogram knows no more): `None` when empty.
    pub fn quantile_bound(&self, p: f64) -> Option<f64> {
        let rank = (self.count() * p).ceil().max(1.0);
        self.0.iter().find(|(_, c)| *c >= rank).map(|(b, _)| *b)
    }

    /// `n, p50 ≤ …, p99 ≤ …` in milliseconds.
    pub fn summary(&self) -> String {
        let bound = |p| match self.quantile_bound(p) {
            Some(b) if b.is_finite() => format!("<= {:.0} ms", b * 1000.0),
            Some(_) => "above the largest bucket".to_string(),
            None => "n/a".to_string(),
        };
        format!("{:.0} answered, p50 {}, p99 {}", self.count(), bound(0.5), bound(0.99))
    }
}
