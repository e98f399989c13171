//! How every controller watches its objects: a lean cache (no managed fields, no last-applied copy) and
//! a trigger that fires on spec changes and explicit reconcile requests only, so the operator's own
//! status writes cost no reconcile and no Azure read; plus finalizers added and removed by JSON patch.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Config, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::Context;
use super::outcome::{Reported, key, memo_key, status_hash};

/// Set this annotation (to any new value, e.g. a timestamp) to ask for a reconcile now.
pub const RECONCILE_REQUEST: &str = "mua.dev/reconcile-requested-at";
const LIST_PAGE: u32 = 100;
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no reconciler reads, so 10,000 cached objects stay small.
pub fn slim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// What makes an object worth a reconcile: its spec (generation, which deletion also bumps) or a
/// reconcile request. Status, label and other metadata updates are not.
fn trigger_hash<K: Resource>(object: &K) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    object.meta().generation.hash(&mut hasher);
    object.annotations().get(RECONCILE_REQUEST).hash(&mut hasher);
    Some(hasher.finish())
}

/// The objects of `api`, cached after `prepare` (which slims them), as a trigger stream and the store
/// behind it; `deleted` hears of every object that goes away (no reconcile follows a deletion without a
/// finalizer).
pub fn objects<K>(
    api: Api<K>,
    prepare: impl FnMut(&mut K) + Send + 'static,
    deleted: impl Fn(&K) + Send + 'static,
    trigger: fn(&K) -> Option<u64>,
) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    // Small pages: the initial list of thousands of objects never sits in memory at once.
    let stream = watcher(api, watcher::Config::default().page_size(LIST_PAGE))
        .default_backoff()
        .modify(prepare)
        .reflect(writer)
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(object) = event {
                deleted(object);
            }
        })
        .applied_objects()
        .predicate_filter(trigger, Default::default());
    (reader, stream)
}

/// A controller over `api` with the shared tunables (bounded concurrency). It remembers each object's
/// status by hash before the cache drops what the reconciler does not read, and forgets what it kept
/// about an object (metrics, memos) once the object is gone.
pub fn controller<K: Reported>(api: Api<K>, ctx: &Arc<Context>) -> Controller<K> {
    let (reader, stream) = objects_with_trigger(api, ctx, trigger_hash::<K>);
    Controller::for_stream(stream, reader).with_config(Config::default().concurrency(ctx.config.concurrency))
}

/// The cache and trigger stream of a controller over `api` whose objects wake it on `trigger`.
pub fn objects_with_trigger<K: Reported>(
    api: Api<K>,
    ctx: &Arc<Context>,
    trigger: fn(&K) -> Option<u64>,
) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static) {
    let (seen, forget) = (Arc::clone(ctx), Arc::clone(ctx));
    let prepare = move |object: &mut K| {
        if let Some(status) = object.status() {
            let key = memo_key(K::CONTROLLER, &key(object));
            seen.statuses
                .lock()
                .expect("statuses lock")
                .insert(key, status_hash(&K::written(status)));
        }
        slim(object);
        object.slim_cached();
    };
    let deleted = move |object: &K| forget.forget(K::CONTROLLER, &key(object));
    objects(api, prepare, deleted, trigger)
}

/// Adds `finalizer` unless present; the test op makes the patch fail rather than clobber a concurrent
/// change of the list.
pub async fn add_finalizer<K>(api: &Api<K>, object: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + std::fmt::Debug + DeserializeOwned,
{
    if object.finalizers().iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let patch = match &object.meta().finalizers {
        None => json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                       {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}]),
        Some(list) => json!([{"op": "test", "path": "/metadata/finalizers", "value": list},
                             {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}]),
    };
    patch_finalizers(api, object, patch).await
}

/// Removes `finalizer` if present.
pub async fn remove_finalizer<K>(api: &Api<K>, object: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + std::fmt::Debug + DeserializeOwned,
{
    let list = object.finalizers();
    let Some(index) = list.iter().position(|f| f == finalizer) else {
        return Ok(());
    };
    let patch = json!([{"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": finalizer},
                       {"op": "remove", "path": format!("/metadata/finalizers/{index}")}]);
    patch_finalizers(api, object, patch).await
}

async fn patch_finalizers<K>(api: &Api<K>, object: &K, patch: serde_json::Value) -> Result<(), kube::Error>
where
    K: Resource + Clone + std::fmt::Debug + DeserializeOwned,
{
    let patch: json_patch::Patch = serde_json::from_value(patch).expect("a well-formed JSON patch");
    api.patch(&object.name_any(), &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map(|_| ())
}
