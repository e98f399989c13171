//! Defence in depth for the two-person rule: the API server's admission policies enforce it, and the
//! operator checks, before it elevates anyone, that those policies are in force and re-checks every
//! approval itself with a SubjectAccessReview rather than trusting what it reads in status.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};

/// The admission policies and bindings the chart ships (the file the chart and the tests install).
pub const POLICIES_YAML: &str = include_str!("../../charts/mua-operator/files/admission-policies.yaml");
/// How long a positive check is trusted. A missing policy is looked for again on every request.
const TRUST_FOR: Duration = Duration::from_secs(30);

/// One object the chart ships: its kind and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipped {
    pub kind: String,
    pub name: String,
}

/// The admission objects in the chart's file, in order.
pub fn shipped() -> Vec<Shipped> {
    POLICIES_YAML
        .split("\n---")
        .filter_map(|doc| yaml_serde::from_str::<serde_json::Value>(doc).ok())
        .filter_map(|doc| {
            let kind = doc["kind"].as_str()?.to_string();
            let name = doc["metadata"]["name"].as_str()?.to_string();
            kind.contains("AdmissionPolicy").then_some(Shipped { kind, name })
        })
        .collect()
}

/// Remembers the last successful check so a burst of requests costs one look.
#[derive(Default)]
pub struct AdmissionCheck {
    last_ok: Mutex<Option<Instant>>,
}

impl AdmissionCheck {
    /// `Ok` when every shipped policy and binding is in the cluster; otherwise the missing ones.
    pub async fn verify(&self, client: &kube::Client) -> Result<(), String> {
        if self
            .last_ok
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < TRUST_FOR)
        {
            return Ok(());
        }
        let mut missing = Vec::new();
        for object in shipped() {
            let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", &object.kind);
            let plural = format!("{}s", object.kind.to_ascii_lowercase()).replace("policys", "policies");
            let api: Api<DynamicObject> =
                Api::all_with(client.clone(), &ApiResource::from_gvk_with_plural(&gvk, &plural));
            match api.get_opt(&object.name).await {
                Ok(Some(_)) => {}
                Ok(None) => missing.push(format!("{} {}", object.kind, object.name)),
                Err(err) => missing.push(format!("{} {} (cannot read it: {err})", object.kind, object.name)),
            }
        }
        if missing.is_empty() {
            *self.last_ok.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            Ok(())
        } else {
            *self.last_ok.lock().unwrap_or_else(PoisonError::into_inner) = None;
            Err(missing.join(", "))
        }
    }
}

/// Whether `user` (with `groups`) may approve the request `name` in `namespace`, as the API server's RBAC
/// says now.
pub async fn may_approve(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    user: &str,
    groups: &[String],
) -> Result<bool, kube::Error> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(groups.to_vec()),
            resource_attributes: Some(ResourceAttributes {
                group: Some("mua.dev".into()),
                resource: Some("criticaloperationrequests".into()),
                verb: Some("approve".into()),
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_ships_a_mutating_and_validating_policies_each_with_a_binding() {
        let shipped = shipped();
        let count = |kind: &str| shipped.iter().filter(|s| s.kind == kind).count();
        assert!(count("MutatingAdmissionPolicy") >= 1, "{shipped:?}");
        assert_eq!(
            count("MutatingAdmissionPolicy"),
            count("MutatingAdmissionPolicyBinding")
        );
        assert!(count("ValidatingAdmissionPolicy") >= 2, "{shipped:?}");
        assert!(count("ValidatingAdmissionPolicyBinding") >= count("ValidatingAdmissionPolicy"));
    }
}
