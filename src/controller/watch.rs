//! How every controller watches its objects: a lean cache (no managed fields, no last-applied copy) and
//! a trigger that fires on spec changes and explicit reconcile requests only, so the operator's own
//! status writes cost no reconcile and no Azure read; plus finalizers added and removed by JSON patch.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use futures::{Stream, TryStreamExt, future};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Config, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::Context;
use super::outcome::{MemoKey, Reported, key, status_hashes};

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

/// Which objects are worth a reconcile: those whose trigger hash changed, and new ones. kube's
/// `predicate_filter` does the same with a map keyed by each object's name, namespace and uid (three
/// `String`s per object) and forgets entries after an hour; this keeps 16 bytes per object (a hash of
/// the same three, and the trigger hash) and forgets an object when it is deleted, or when a relist no
/// longer shows it. A collision of two objects' keys (odds about n²/2⁶⁵: 3·10⁻¹² for 10,000 objects)
/// could hold back one of them only if it also had the other's trigger hash.
#[derive(Default)]
struct Triggers {
    last: HashMap<u64, u64>,
    /// The objects a relist showed so far, while it runs.
    relisted: Option<HashSet<u64>>,
}

impl Triggers {
    fn identity<K: Resource>(object: &K) -> u64 {
        let meta = object.meta();
        let mut hasher = DefaultHasher::new();
        (&meta.namespace, &meta.name, &meta.uid).hash(&mut hasher);
        hasher.finish()
    }

    /// The object of `event` if it is worth a reconcile; `deleted` hears of deletions.
    fn pass<K: Resource>(
        &mut self,
        event: watcher::Event<K>,
        trigger: fn(&K) -> Option<u64>,
        deleted: &impl Fn(&K),
    ) -> Option<K> {
        match event {
            watcher::Event::Init => {
                self.relisted = Some(HashSet::new());
                None
            }
            watcher::Event::InitApply(object) | watcher::Event::Apply(object) => {
                let identity = Self::identity(&object);
                if let Some(relisted) = self.relisted.as_mut() {
                    relisted.insert(identity);
                }
                // Without a trigger hash an object always passes (as with kube's filter).
                let changed = trigger(&object).is_none_or(|hash| self.last.insert(identity, hash) != Some(hash));
                changed.then(|| for_controller(object))
            }
            watcher::Event::InitDone => {
                if let Some(relisted) = self.relisted.take() {
                    self.last.retain(|identity, _| relisted.contains(identity));
                }
                None
            }
            watcher::Event::Delete(object) => {
                self.last.remove(&Self::identity(&object));
                deleted(&object);
                None
            }
        }
    }
}

/// What the controller takes of a passing object: its name and namespace, to key a reconcile request
/// (the reconcile reads the object from the store). Without its resourceVersion and uid, the requests
/// kube-runtime's scheduler keeps for every object (twice: by key and in its queue) are two `String`s
/// lighter each.
fn for_controller<K: Resource>(mut object: K) -> K {
    let meta = object.meta_mut();
    meta.resource_version = None;
    meta.uid = None;
    object
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
    let mut triggers = Triggers::default();
    // Small pages: the initial list of thousands of objects never sits in memory at once.
    let stream = watcher(api, watcher::Config::default().page_size(LIST_PAGE))
        .default_backoff()
        .modify(prepare)
        .reflect(writer)
        .try_filter_map(move |event| future::ready(Ok(triggers.pass(event, trigger, &deleted))));
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
            let memo = MemoKey::new(K::CONTROLLER, &key(object));
            seen.statuses.seen(memo, status_hashes::<K>(&mut K::written(status)));
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
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    api.patch(&object.name_any(), &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use std::cell::RefCell;

    fn object(name: &str, uid: &str, generation: i64) -> ConfigMap {
        let mut object = ConfigMap::default();
        object.metadata.namespace = Some("ns".into());
        object.metadata.name = Some(name.into());
        object.metadata.uid = Some(uid.into());
        object.metadata.generation = Some(generation);
        object
    }

    #[test]
    fn an_object_passes_when_new_or_its_trigger_changed() {
        let mut triggers = Triggers::default();
        let deleted = RefCell::new(Vec::new());
        let forget = |o: &ConfigMap| deleted.borrow_mut().push(o.name_any());
        let mut pass = |event| triggers.pass(event, trigger_hash::<ConfigMap>, &forget).is_some();
        assert!(pass(watcher::Event::Apply(object("a", "1", 1))));
        assert!(
            !pass(watcher::Event::Apply(object("a", "1", 1))),
            "nothing the trigger hashes changed"
        );
        assert!(pass(watcher::Event::Apply(object("a", "1", 2))));
        assert!(pass(watcher::Event::Apply(object("a", "2", 2))), "recreated: a new uid");
        assert!(!pass(watcher::Event::Delete(object("a", "2", 2))));
        assert_eq!(*deleted.borrow(), ["a"]);
        assert!(
            pass(watcher::Event::Apply(object("a", "2", 2))),
            "forgotten once deleted"
        );
        let mut request = object("a", "2", 2);
        request.annotations_mut().insert(RECONCILE_REQUEST.into(), "now".into());
        assert!(pass(watcher::Event::Apply(request)));
    }

    #[test]
    fn a_relist_forgets_the_objects_it_no_longer_shows() {
        let mut triggers = Triggers::default();
        let mut pass = |event| {
            triggers
                .pass(event, trigger_hash::<ConfigMap>, &|_: &ConfigMap| {})
                .is_some()
        };
        assert!(pass(watcher::Event::Apply(object("a", "1", 1))));
        assert!(pass(watcher::Event::Apply(object("b", "2", 1))));
        assert!(!pass(watcher::Event::Init));
        assert!(!pass(watcher::Event::InitApply(object("a", "1", 1))), "unchanged");
        assert!(!pass(watcher::Event::InitDone));
        assert_eq!(triggers.last.len(), 1);
        assert!(
            triggers
                .pass(
                    watcher::Event::Apply(object("b", "2", 1)),
                    trigger_hash::<ConfigMap>,
                    &|_: &ConfigMap| {}
                )
                .is_some()
        );
    }

    #[test]
    fn the_controller_gets_no_resource_version_or_uid() {
        let mut cached = object("a", "1", 1);
        cached.metadata.resource_version = Some("7".into());
        let passed = Triggers::default().pass(
            watcher::Event::Apply(cached),
            trigger_hash::<ConfigMap>,
            &|_: &ConfigMap| {},
        );
        let meta = passed.expect("a new object").metadata;
        assert_eq!(
            (meta.name.as_deref(), meta.namespace.as_deref()),
            (Some("a"), Some("ns"))
        );
        assert_eq!((meta.resource_version, meta.uid), (None, None));
    }

    #[test]
    fn without_a_trigger_hash_an_object_always_passes() {
        let mut triggers = Triggers::default();
        for _ in 0..2 {
            let event = watcher::Event::Apply(object("a", "1", 1));
            assert!(
                triggers
                    .pass(event, |_: &ConfigMap| None, &|_: &ConfigMap| {})
                    .is_some()
            );
        }
    }
}
