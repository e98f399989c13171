//! Per-reconcile timing from the spans the operator's libraries already open: kube-runtime wraps every
//! reconcile in a `reconciling object` span, and kube-client opens an `HTTP` span (a child of the current
//! span) for every Kubernetes API request. The operator overhead of one reconcile is the time its own code
//! ran (the reconcile span was entered, i.e. its future was being polled), less the time spent inside
//! its Kubernetes requests' polls, plus the whole wall time of those requests: everything except waiting
//! on ARM (the HTTP round trip, the client-side throttle, retry sleeps), which leaves the span idle.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::span::{Attributes, Id};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

const RECONCILE: &str = "reconciling object";
const KUBE_HTTP: &str = "HTTP";

/// What one reconcile cost.
#[derive(Clone, Debug)]
pub struct Reconcile {
    pub object: String,
    /// Why kube-runtime ran it (`object.reason`): `object updated`, `reconciler requested retry` (a
    /// requeue timer), ….
    pub reason: String,
    pub started: Instant,
    /// From the span's creation to its close.
    pub wall: Duration,
    /// Time the reconcile's code ran, Kubernetes requests included, plus the Kubernetes requests' wall
    /// time: everything but ARM.
    pub overhead: Duration,
    /// Kubernetes API requests made by the reconcile, and their wall time.
    pub kube_requests: u32,
    pub kube_wall: Duration,
    /// Of which the status write(s) and the Event write(s).
    pub status_wall: Duration,
    pub event_wall: Duration,
}

/// What a Kubernetes request was for, from its URL.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Request {
    #[default]
    Other,
    Status,
    Event,
}

#[derive(Default)]
struct Timing {
    reconcile: bool,
    object: String,
    reason: String,
    created: Option<Instant>,
    depth: u32,
    entered_at: Option<Instant>,
    busy: Duration,
    /// Busy time of child Kubernetes requests (counted in `busy` too), their wall time and number.
    child_busy: Duration,
    child_wall: Duration,
    children: u32,
    request: Request,
    status_wall: Duration,
    event_wall: Duration,
}

/// A `tracing` layer that records [`Reconcile`]s.
#[derive(Clone, Default)]
pub struct ReconcileTimer {
    records: Arc<Mutex<Vec<Reconcile>>>,
}

impl ReconcileTimer {
    /// The reconciles recorded since the last call.
    pub fn take(&self) -> Vec<Reconcile> {
        std::mem::take(&mut *self.records.lock().unwrap())
    }

    /// Only the spans this layer times.
    pub fn wants(meta: &Metadata<'_>) -> bool {
        meta.is_span()
            && ((meta.name() == RECONCILE && meta.target().starts_with("kube_runtime"))
                || (meta.name() == KUBE_HTTP && meta.target().starts_with("kube_client")))
    }
}

/// Reads a span's `object.ref` and `object.reason` (reconciles) or `http.url` (Kubernetes requests).
struct Fields<'a>(&'a mut Timing);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "object.ref" => self.0.object = format!("{value:?}"),
            "object.reason" => self.0.reason = format!("{value:?}"),
            "http.url" => {
                let url = format!("{value:?}");
                let path = url.split('?').next().unwrap_or_default();
                self.0.request = if path.ends_with("/status") {
                    Request::Status
                } else if path.contains("/events") {
                    Request::Event
                } else {
                    Request::Other
                };
            }
            _ => {}
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ReconcileTimer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut timing = Timing {
            reconcile: attrs.metadata().name() == RECONCILE,
            created: Some(Instant::now()),
            ..Default::default()
        };
        attrs.record(&mut Fields(&mut timing));
        span.extensions_mut().insert(timing);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(t) = span.extensions_mut().get_mut::<Timing>() {
            t.depth += 1;
            if t.depth == 1 {
                t.entered_at = Some(Instant::now());
            }
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(t) = span.extensions_mut().get_mut::<Timing>() {
            t.depth = t.depth.saturating_sub(1);
            if t.depth == 0
                && let Some(at) = t.entered_at.take()
            {
                t.busy += at.elapsed();
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(timing) = span.extensions_mut().remove::<Timing>() else {
            return;
        };
        let wall = timing.created.map_or(Duration::ZERO, |c| c.elapsed());
        if timing.reconcile {
            let own = timing.busy.saturating_sub(timing.child_busy);
            self.records.lock().unwrap().push(Reconcile {
                object: timing.object,
                reason: timing.reason,
                started: timing.created.unwrap_or_else(Instant::now),
                wall,
                overhead: (own + timing.child_wall).min(wall),
                kube_requests: timing.children,
                kube_wall: timing.child_wall,
                status_wall: timing.status_wall,
                event_wall: timing.event_wall,
            });
            return;
        }
        // A Kubernetes request: charge it to the reconcile it was made from, if any.
        for ancestor in span.scope().skip(1) {
            let mut ext = ancestor.extensions_mut();
            if let Some(parent) = ext.get_mut::<Timing>()
                && parent.reconcile
            {
                parent.child_busy += timing.busy;
                parent.child_wall += wall;
                parent.children += 1;
                match timing.request {
                    Request::Status => parent.status_wall += wall,
                    Request::Event => parent.event_wall += wall,
                    Request::Other => {}
                }
                return;
            }
        }
    }
}
