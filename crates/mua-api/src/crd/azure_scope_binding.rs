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

    /// The object IDs of the backup identity the namespace's VaultProtections use, when the namespace
    /// names one of its own (a Secret `mua-backup-identity`): the principal elevated for its requests.
    /// `OBJECT_ID` for guards in that identity's home tenant, `TENANT_ID=OBJECT_ID` for a guard in another
    /// tenant (a multi-tenant application has an object ID per tenant). Unset: the operator's backup
    /// identity. Written here, by cluster admins, so that no team can point an elevation at another
    /// principal.
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 16), inner(length(max = 80)))]
    #[x_kube(validation = principals_rule())]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_principal_ids: Vec<String>,

    /// The applications (client IDs) the namespace's `mua-security-identity` Secret may name. Written
    /// here, by cluster admins: with workload identity every application is federated with the
    /// operator's ServiceAccount, so a client ID alone would let a namespace act as any team's identity.
    /// Empty: the namespace may not name a security identity of its own.
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 8), inner(length(max = 36)))]
    #[x_kube(validation = client_ids_rule("securityClientIds"))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_client_ids: Vec<String>,

    /// The applications (client IDs) the namespace's `mua-backup-identity` Secret may name (see
    /// `securityClientIds`). Empty: the namespace may not name a backup identity of its own.
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 8), inner(length(max = 36)))]
    #[x_kube(validation = client_ids_rule("backupClientIds"))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_client_ids: Vec<String>,
}

fn client_ids_rule(field: &str) -> Rule {
    Rule::new(format!("self.all(c, c.matches('^{GUID_RE}$'))"))
        .message(format!("each of {field} must be an application (client) ID: a GUID").as_str())
}

fn principals_rule() -> Rule {
    Rule::new(format!("self.all(p, p.matches('^({GUID_RE}=)?{GUID_RE}$'))"))
        .message("each of backupPrincipalIds must be OBJECT_ID or TENANT_ID=OBJECT_ID (GUIDs)")
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

    /// The backup principal the binding names for a guard in `tenant` (none: the identity's home tenant):
    /// the entry for that tenant, else the untagged one. `None` when the binding names none.
    pub fn backup_principal(&self, tenant: Option<&str>) -> Option<String> {
        let tagged = |p: &&String| {
            p.split_once('=')
                .is_some_and(|(t, _)| tenant.is_some_and(|tenant| t.eq_ignore_ascii_case(tenant)))
        };
        self.backup_principal_ids
            .iter()
            .find(tagged)
            .and_then(|p| p.split_once('=').map(|(_, id)| id.to_string()))
            .or_else(|| self.backup_principal_ids.iter().find(|p| !p.contains('=')).cloned())
            .map(|id| id.to_ascii_lowercase())
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
            backup_principal_ids: vec![],
            security_client_ids: vec![],
            backup_client_ids: vec![],
        };
        let guard = format!("{SUB}/resourceGroups/security-a/providers/Microsoft.DataProtection/resourceGuards/g");
        let vault = format!("{SUB}/resourceGroups/team-a/providers/Microsoft.RecoveryServices/vaults/v");
        assert!(spec.may_name(&vault) && spec.may_name(&guard));
        assert!(spec.owns_guard(&guard) && !spec.owns_guard(&vault));
        assert!(!spec.may_name(&format!("{SUB}/resourceGroups/team-b")));
        assert!(
            !AzureScopeBindingSpec {
                scopes: vec![],
                guard_scopes: vec![],
                backup_principal_ids: vec![],
                security_client_ids: vec![],
                backup_client_ids: vec![]
            }
            .may_name(&vault)
        );
    }

    #[test]
    fn a_backup_principal_is_the_guard_tenants_entry_else_the_untagged_one() {
        let spec = AzureScopeBindingSpec {
            scopes: vec![],
            guard_scopes: vec![],
            backup_principal_ids: vec![
                "AAAAAAAA-0000-0000-0000-000000000001".into(),
                "33e01921-4d64-4f8c-a055-5bdaffd5e33d=aaaaaaaa-0000-0000-0000-000000000002".into(),
            ],
            security_client_ids: vec![],
            backup_client_ids: vec![],
        };
        assert_eq!(
            spec.backup_principal(None).as_deref(),
            Some("aaaaaaaa-0000-0000-0000-000000000001")
        );
        assert_eq!(
            spec.backup_principal(Some("33E01921-4d64-4f8c-a055-5bdaffd5e33d"))
                .as_deref(),
            Some("aaaaaaaa-0000-0000-0000-000000000002")
        );
        let none = AzureScopeBindingSpec {
            backup_principal_ids: vec![],
            ..spec
        };
        assert_eq!(none.backup_principal(None), None);
    }
}
