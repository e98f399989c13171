//! Defence in depth for the two-person rule: the API server's admission policies enforce it, and the
//! operator checks, before it elevates anyone or weakens a vault, that those policies are in force
//! exactly as this build ships them (by content: a binding set to `Audit`, a narrowed match, a changed
//! expression all count), and re-checks every approval itself with a SubjectAccessReview rather than
//! trusting what it reads in status.

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

/// The admission policies and bindings the chart ships (the file the chart and the tests install).
pub const POLICIES_YAML: &str = include_str!("../../charts/mua-operator/files/admission-policies.yaml");

/// One object the chart ships: its kind, name and spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Shipped {
    pub kind: String,
    pub name: String,
    pub spec: Value,
}

/// The admission objects in the chart's file, in order.
pub fn shipped() -> Vec<Shipped> {
    POLICIES_YAML
        .split("\n---")
        .filter_map(|doc| yaml_serde::from_str::<Value>(doc).ok())
        .filter_map(|doc| {
            let kind = doc["kind"].as_str()?.to_string();
            let name = doc["metadata"]["name"].as_str()?.to_string();
            let spec = doc.get("spec")?.clone();
            kind.contains("AdmissionPolicy").then_some(Shipped { kind, name, spec })
        })
        .collect()
}

/// What the API server fills in when a field is left out (admissionregistration.k8s.io/v1 defaults):
/// an installed object may hold these where the shipped one says nothing, and still be the same.
fn api_server_default(key: &str) -> Option<Value> {
    Some(match key {
        "matchPolicy" => json!("Equivalent"),
        "namespaceSelector" | "objectSelector" => json!({}),
        "scope" => json!("*"),
        "failurePolicy" => json!("Fail"),
        "reinvocationPolicy" => json!("Never"),
        _ => return None,
    })
}

/// Whether a field the shipped object leaves out holds only what the API server fills in: its default, or
/// an object made of such fields (a `matchResources` of defaults alone).
fn defaulted(key: &str, value: &Value) -> bool {
    api_server_default(key).as_ref() == Some(value)
        || value
            .as_object()
            .is_some_and(|fields| !fields.is_empty() && fields.iter().all(|(k, v)| defaulted(k, v)))
}

/// Where `installed` differs from `shipped` (API-server defaults aside), as JSON paths under `path`.
pub fn differences(shipped: &Value, installed: &Value, path: &str) -> Vec<String> {
    let mut found = Vec::new();
    compare(shipped, installed, path, &mut found);
    found
}

fn compare(shipped: &Value, installed: &Value, path: &str, found: &mut Vec<String>) {
    match (shipped, installed) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                let here = format!("{path}.{key}");
                match have.get(key) {
                    Some(got) => compare(value, got, &here, found),
                    None => found.push(format!("{here} is missing")),
                }
            }
            for (key, got) in have {
                if !want.contains_key(key) && !defaulted(key, got) {
                    found.push(format!("{path}.{key} was added"));
                }
            }
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => {
            for (i, (value, got)) in want.iter().zip(have).enumerate() {
                compare(value, got, &format!("{path}[{i}]"), found);
            }
        }
        (Value::Array(want), Value::Array(have)) => {
            found.push(format!("{path} has {} entries instead of {}", have.len(), want.len()))
        }
        (want, have) if want == have => {}
        (want, have) => found.push(format!("{path} is {have} instead of {want}")),
    }
}

/// Why the two-person rule's admission objects cannot be trusted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdmissionProblems {
    /// Objects not in the cluster.
    pub missing: Vec<String>,
    /// Objects that could not be read now (the API server's answer): nothing is known of them.
    pub unreadable: Vec<String>,
    /// Objects that differ from what this build ships, each with where.
    pub altered: Vec<String>,
}

impl AdmissionProblems {
    fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.altered.is_empty() && self.unreadable.is_empty()
    }

    /// Whether the policies are known not to be in force (not merely unreadable now).
    pub fn known(&self) -> bool {
        !self.missing.is_empty() || !self.altered.is_empty()
    }
}

impl std::fmt::Display for AdmissionProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing: {}", self.missing.join(", ")));
        }
        if !self.altered.is_empty() {
            parts.push(format!("altered: {}", self.altered.join("; ")));
        }
        if !self.unreadable.is_empty() {
            parts.push(format!("unreadable: {}", self.unreadable.join("; ")));
        }
        f.write_str(&parts.join("; "))
    }
}

/// Checks the admission objects before every grant: never cached, so a policy altered a moment ago is
/// seen (a handful of GETs per decision).
#[derive(Default)]
pub struct AdmissionCheck;

impl AdmissionCheck {
    /// `Ok` when every shipped policy and binding is in the cluster exactly as shipped, with their
    /// [`Fingerprint`]; otherwise the missing and the altered ones.
    pub async fn verify(&self, client: &kube::Client) -> Result<Fingerprint, AdmissionProblems> {
        let mut problems = AdmissionProblems::default();
        let mut seen = Vec::new();
        for object in shipped() {
            let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", &object.kind);
            let plural = format!("{}s", object.kind.to_ascii_lowercase()).replace("policys", "policies");
            let api: Api<DynamicObject> =
                Api::all_with(client.clone(), &ApiResource::from_gvk_with_plural(&gvk, &plural));
            let what = format!("{} {}", object.kind, object.name);
            match api.get_opt(&object.name).await {
                Ok(Some(installed)) => {
                    seen.push(format!(
                        "{what}#{}@{}",
                        installed.metadata.uid.as_deref().unwrap_or_default(),
                        installed.metadata.generation.unwrap_or_default()
                    ));
                    let spec = installed.data.get("spec").cloned().unwrap_or(Value::Null);
                    let diffs = differences(&object.spec, &spec, "spec");
                    if !diffs.is_empty() {
                        problems.altered.push(format!("{what} ({})", diffs.join(", ")));
                    }
                }
                Ok(None) => problems.missing.push(what),
                Err(err) => problems.unreadable.push(format!("{what} (cannot read it: {err})")),
            }
        }
        let (mutators, unreadable) = other_mutators(client).await;
        problems.altered.extend(mutators);
        problems.unreadable.extend(unreadable);
        if problems.is_empty() {
            Ok(Fingerprint(seen.join(",")))
        } else {
            Err(problems)
        }
    }
}

/// Which admission objects were in force: each shipped one's kind, name, uid and generation. The API
/// server gives an object a new uid when it is created again and a new generation whenever its spec
/// changes, so a policy weakened and put back since a request was recorded no longer has the same
/// fingerprint, even though its content is as shipped again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint(pub String);

/// The annotation on a request holding the [`Fingerprint`] seen when its target was recorded: written by
/// the operator on the object itself (which requesters and approvers may not change; status writers
/// cannot touch it either).
pub const FINGERPRINT_ANNOTATION: &str = "mua.dev/admission-seen";

impl Fingerprint {
    /// `Err` (as a problem to report) when `recorded` is another fingerprint.
    pub fn unchanged_since(&self, recorded: Option<&str>) -> Result<(), AdmissionProblems> {
        match recorded {
            Some(recorded) if recorded != self.0 => Err(AdmissionProblems {
                altered: vec![
                    "the admission objects were changed (or created again) since this request was recorded".into(),
                ],
                ..Default::default()
            }),
            _ => Ok(()),
        }
    }
}

/// The API group whose objects carry the two-person rule.
const GROUP: &str = "mua.dev";

/// Mutating admission this build does not ship that could change `mua.dev` objects on their way in
/// (approval entries slipped into the operator's own status writes, rules rewritten in flight): each one
/// found, or that cannot be listed, is a problem.
async fn other_mutators(client: &kube::Client) -> (Vec<String>, Vec<String>) {
    let shipped: Vec<String> = shipped().into_iter().map(|s| s.name).collect();
    let (mut found, mut unreadable) = (Vec::new(), Vec::new());
    for (kind, plural, rules) in [
        (
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            "/webhooks/*/rules",
        ),
        (
            "MutatingAdmissionPolicy",
            "mutatingadmissionpolicies",
            "/spec/matchConstraints/resourceRules",
        ),
    ] {
        let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk_with_plural(&gvk, plural));
        match api.list(&Default::default()).await {
            Ok(list) => {
                for object in list.items {
                    let name = object.metadata.name.clone().unwrap_or_default();
                    if !shipped.contains(&name) && matches_group(&object.data, rules) {
                        found.push(format!("{kind} {name} can change {GROUP} objects"));
                    }
                }
            }
            Err(err) => unreadable.push(format!("{kind}s (cannot list them: {err})")),
        }
    }
    (found, unreadable)
}

/// Whether any rule under `path` (JSON pointer segments, `*` for every array item) names the `mua.dev`
/// API group or every group.
fn matches_group(data: &Value, path: &str) -> bool {
    let mut nodes = vec![data];
    for segment in path.trim_start_matches('/').split('/') {
        nodes = nodes
            .into_iter()
            .flat_map(|node| match segment {
                "*" => node.as_array().map(|a| a.iter().collect()).unwrap_or_default(),
                key => node.get(key).into_iter().collect::<Vec<_>>(),
            })
            .collect();
    }
    nodes
        .into_iter()
        .flat_map(|rules| rules.as_array().cloned().unwrap_or_default())
        .flat_map(|rule| rule["apiGroups"].as_array().cloned().unwrap_or_default())
        .any(|group| group == GROUP || group == "*")
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

    fn binding() -> Value {
        shipped()
            .into_iter()
            .find(|s| s.name == "mua.dev-request-status" && s.kind == "ValidatingAdmissionPolicyBinding")
            .unwrap()
            .spec
    }

    #[test]
    fn an_object_as_shipped_with_the_api_servers_defaults_is_the_same() {
        let mut installed = binding();
        installed["matchResources"] =
            json!({"namespaceSelector": {}, "objectSelector": {}, "matchPolicy": "Equivalent"});
        assert!(differences(&binding(), &installed, "spec").is_empty());
        installed["matchResources"]["namespaceSelector"] = json!({"matchLabels": {"team": "a"}});
        assert_eq!(
            differences(&binding(), &installed, "spec"),
            ["spec.matchResources was added"]
        );
        let policy = shipped()
            .into_iter()
            .find(|s| s.name == "mua.dev-request-status")
            .unwrap()
            .spec;
        let mut installed = policy.clone();
        installed["matchConstraints"]["matchPolicy"] = json!("Equivalent");
        installed["matchConstraints"]["namespaceSelector"] = json!({});
        installed["matchConstraints"]["resourceRules"][0]["scope"] = json!("*");
        assert!(differences(&policy, &installed, "spec").is_empty());
    }

    #[test]
    fn a_mutator_of_the_mua_group_or_every_group_is_found() {
        let webhook = json!({"webhooks": [{"name": "a"}, {"name": "b", "rules": [{"apiGroups": ["mua.dev"]}]}]});
        assert!(matches_group(&webhook, "/webhooks/*/rules"));
        let everything = json!({"spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["*"]}]}}});
        assert!(matches_group(&everything, "/spec/matchConstraints/resourceRules"));
        let apps = json!({"webhooks": [{"rules": [{"apiGroups": ["apps", ""]}]}]});
        assert!(!matches_group(&apps, "/webhooks/*/rules"));
    }

    #[test]
    fn a_request_keeps_the_fingerprint_it_was_recorded_under() {
        let now = Fingerprint("ValidatingAdmissionPolicyBinding b#uid-1@2".into());
        assert!(now.unchanged_since(None).is_ok(), "nothing recorded yet");
        assert!(
            now.unchanged_since(Some("ValidatingAdmissionPolicyBinding b#uid-1@2"))
                .is_ok()
        );
        let changed = now.unchanged_since(Some("ValidatingAdmissionPolicyBinding b#uid-1@1"));
        assert!(
            changed.unwrap_err().known(),
            "a changed generation is known to be altered"
        );
    }

    #[test]
    fn a_binding_set_to_audit_is_altered() {
        let mut installed = binding();
        installed["validationActions"] = json!(["Audit"]);
        assert_eq!(
            differences(&binding(), &installed, "spec"),
            [r#"spec.validationActions[0] is "Audit" instead of "Deny""#]
        );
    }

    #[test]
    fn a_narrowed_match_or_a_changed_expression_is_altered() {
        let policy = shipped()
            .into_iter()
            .find(|s| s.name == "mua.dev-request-status")
            .unwrap()
            .spec;
        let mut narrowed = policy.clone();
        narrowed["matchConstraints"]["namespaceSelector"] = json!({"matchLabels": {"team": "a"}});
        assert_eq!(
            differences(&policy, &narrowed, "spec"),
            ["spec.matchConstraints.namespaceSelector was added"]
        );
        let mut changed = policy.clone();
        changed["validations"][0]["expression"] = json!("true");
        assert_eq!(differences(&policy, &changed, "spec").len(), 1);
        let mut fewer = policy.clone();
        fewer["validations"].as_array_mut().unwrap().pop();
        assert!(differences(&policy, &fewer, "spec")[0].contains("entries instead of"));
    }
}
