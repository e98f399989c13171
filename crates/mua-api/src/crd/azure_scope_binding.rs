//! AzureScopeBinding: which Azure scopes the objects of one namespace may name. Cluster-scoped and written
//! by cluster (or central security) admins only, so a team can never widen its own reach: the
//! namespace's owners are not trusted with other teams' vaults and guards. A namespace without a binding
//! may name nothing.

use kube::core::Rule;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::shared::GUID_RE;

/// One namespace's Azure scopes: what its VaultProtections may name (vaults, and guards to link them to),
/// and which guards its security admins own (manage with ResourceGuards, adopt, or set the elevation rules
/// of with ElevationPolicies).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mua.dev",
    version = "v1alpha1",
    kind = "AzureScopeBinding",
    shortname = "asb",
    // Not in the `mua` category: `kubectl get mua` lists a namespace's objects for people who may not
    // read cluster-scoped ones.
    derive = "PartialEq",
    doc = "AzureScopeBinding binds the namespace of the same name to the Azure scopes (subscriptions, resource groups or resource IDs) its objects may name. Cluster-scoped: only cluster or central security admins write it. A namespace without one may name nothing in Azure.",
    printcolumn(name = "Scopes", type_ = "string", json_path = ".spec.scopes", priority = 1),
    printcolumn(
        name = "Guard Scopes",
        type_ = "string",
        json_path = ".spec.guardScopes",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AzureScopeBindingSpec {
    /// Where the namespace's VaultProtections may name vaults and guards: ARM scopes such as
    /// `/subscriptions/<id>`, `/subscriptions/<id>/resourceGroups/<group>` or a resource's full ID. An ID
    /// is inside a scope when it is the scope or lies under it.
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 64), inner(length(max = 512)))]
    #[x_kube(validation = scopes_rule("scopes"))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,

    /// The guards the namespace's security admins own: its ResourceGuards may manage (or adopt) only guards
    /// inside these scopes, and the elevation rules for a guard come only from the namespace that owns
    /// it. A guard should be owned by one namespace: where two own it, nobody is elevated on it.
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 64), inner(length(max = 512)))]
    #[x_kube(validation = scopes_rule("guardScopes"))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guard_scopes: Vec<String>,
}

fn scopes_rule(field: &str) -> Rule {
    Rule::new(format!(
        "self.all(s, s.matches('^/subscriptions/{GUID_RE}(/resourceGroups/[^/]+(/providers/[^/]+/[^/]+/[^/]+)?)?$'))"
    ))
    .message(
        format!(
            "each of {field} must be an ARM scope: /subscriptions/<id>, /subscriptions/<id>/resourceGroups/<group>, or a resource's ID under it"
        )
        .as_str(),
    )
}

/// Whether `id` is `scope` or lies under it. ARM IDs compare without regard to case.
pub fn within(id: &str, scope: &str) -> bool {
    let (id, scope) = (
        id.to_ascii_lowercase(),
        scope.trim_end_matches('/').to_ascii_lowercase(),
    );
    id == scope || id.starts_with(&format!("{scope}/"))
}

impl AzureScopeBindingSpec {
    /// Whether a VaultProtection of the namespace may name `id` (a vault, or a guard to link to).
    pub fn may_name(&self, id: &str) -> bool {
        self.scopes.iter().chain(&self.guard_scopes).any(|s| within(id, s))
    }

    /// Whether the namespace's security admins own the guard `id`.
    pub fn owns_guard(&self, id: &str) -> bool {
        self.guard_scopes.iter().any(|s| within(id, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c";

    #[test]
    fn an_id_is_within_its_scope_and_not_within_a_sibling() {
        let rg = format!("{SUB}/resourceGroups/team-a");
        let vault = format!("{SUB}/resourceGroups/TEAM-A/providers/Microsoft.RecoveryServices/vaults/v");
        assert!(within(&vault, &rg), "ARM IDs compare without regard to case");
        assert!(within(&rg, &rg));
        assert!(within(&vault, SUB));
        assert!(
            !within(&format!("{SUB}/resourceGroups/team-ab"), &rg),
            "a prefix is not a parent"
        );
        assert!(!within(SUB, &rg));
    }

    #[test]
    fn naming_needs_a_scope_and_owning_a_guard_scope() {
        let spec = AzureScopeBindingSpec {
            scopes: vec![format!("{SUB}/resourceGroups/team-a")],
            guard_scopes: vec![format!("{SUB}/resourceGroups/security-a")],
        };
        let guard = format!("{SUB}/resourceGroups/security-a/providers/Microsoft.DataProtection/resourceGuards/g");
        let vault = format!("{SUB}/resourceGroups/team-a/providers/Microsoft.RecoveryServices/vaults/v");
        assert!(spec.may_name(&vault) && spec.may_name(&guard));
        assert!(spec.owns_guard(&guard) && !spec.owns_guard(&vault));
        assert!(!spec.may_name(&format!("{SUB}/resourceGroups/team-b")));
        assert!(
            !AzureScopeBindingSpec {
                scopes: vec![],
                guard_scopes: vec![]
            }
            .may_name(&vault)
        );
    }
}
