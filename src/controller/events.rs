//! Kubernetes Events about the operator's objects, published off the reconcile path by one background
//! worker (so Events never hold more than one API-server connection, however many reconciles publish
//! at once; when the API server falls far behind, Events are dropped, never reconciles). kube-runtime's
//! Recorder keeps every Event it published for minutes to group repeats into series, which costs memory
//! in proportion to the objects; here only a hash of each object's last Event is kept (by
//! [`MemoKey`], salted: a collision of two objects' keys never holds an Event back), and an Event
//! identical to the object's last one within [`REPEAT_AFTER`] is not published again (the conditions say
//! the same thing meanwhile).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::mpsc;

use super::memo_key::MemoKey;
use super::outcome::Notice;

/// How long an identical Event is held back.
pub const REPEAT_AFTER: Duration = Duration::from_secs(600);
const REPORTING_CONTROLLER: &str = "mua.dev/mua-operator";

/// Events waiting for the worker; beyond this, new ones are dropped.
const QUEUE: usize = 1024;

pub struct Events {
    client: kube::Client,
    instance: String,
    last: Mutex<HashMap<u64, (u64, Instant)>>,
    queue: OnceLock<mpsc::Sender<(String, Event)>>,
}

impl Events {
    pub fn new(client: kube::Client) -> Self {
        let instance = std::env::var("POD_NAME").unwrap_or_else(|_| "mua-operator".into());
        Self {
            client,
            instance,
            last: Mutex::default(),
            queue: OnceLock::new(),
        }
    }

    /// The worker's queue, started on first use (from within the runtime).
    fn queue(&self) -> &mpsc::Sender<(String, Event)> {
        self.queue.get_or_init(|| {
            let (sender, mut receiver) = mpsc::channel::<(String, Event)>(QUEUE);
            let client = self.client.clone();
            tokio::spawn(async move {
                while let Some((key, event)) = receiver.recv().await {
                    let namespace = event.metadata.namespace.clone().unwrap_or_default();
                    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
                    if let Err(err) = api.create(&PostParams::default(), &event).await {
                        tracing::warn!(object = %key, %err, "publishing an Event failed");
                    }
                }
            });
            sender
        })
    }

    /// Publishes `notice` about the object `regarding` (`memo`; for logs, its controller and
    /// `namespace/name`) in the background; failures are logged, never fail a reconcile.
    pub fn publish(&self, memo: MemoKey, (controller, key): (&str, &str), regarding: ObjectReference, notice: &Notice) {
        let mut hasher = DefaultHasher::new();
        (notice.warning, notice.reason, &notice.message).hash(&mut hasher);
        let hash = memo.salted(hasher.finish());
        {
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            if last
                .get(&memo.key())
                .is_some_and(|(h, at)| *h == hash && at.elapsed() < REPEAT_AFTER)
            {
                return;
            }
            last.insert(memo.key(), (hash, Instant::now()));
            // Entries only matter for REPEAT_AFTER: drop old ones now and then, so the map does not keep
            // an entry for every object that ever had an Event.
            if last.len().is_power_of_two() && last.len() >= 1024 {
                last.retain(|_, (_, at)| at.elapsed() < REPEAT_AFTER);
            }
        }
        let now = jiff::Timestamp::now();
        let namespace = regarding.namespace.clone().unwrap_or_default();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or("object"),
                    now.as_nanosecond()
                )),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if notice.warning { "Warning" } else { "Normal" }.into()),
            reason: Some(notice.reason.to_string()),
            note: Some(notice.message.chars().take(1000).collect()),
            action: Some("Reconcile".into()),
            regarding: Some(regarding),
            reporting_controller: Some(REPORTING_CONTROLLER.into()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        if let Err(full) = self.queue().try_send((format!("{controller}:{key}"), event)) {
            let (key, _) = full.into_inner();
            tracing::debug!(object = %key, "the Event queue is full: an Event was dropped");
        }
    }

    /// The object is gone.
    pub fn forget(&self, memo: MemoKey) {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&memo.key());
    }
}
