//! Finalizers: kept exactly while deleting an object must do something in Azure first.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Adds `finalizer` unless present; the test op makes the patch fail rather than clobber a concurrent
/// change of the list.
pub async fn add<K>(api: &Api<K>, object: &K, finalizer: &str) -> Result<(), kube::Error>
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
pub async fn remove<K>(api: &Api<K>, object: &K, finalizer: &str) -> Result<(), kube::Error>
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
