//! Namespaces bound to Azure scopes: the objects of a namespace may name only the vaults and guards its
//! AzureScopeBinding (cluster-scoped, written by cluster admins) covers, and its security admins own
//! only the guards in its `guardScopes`. Checked by every reconciler before it calls Azure, so a team
//! can never reach another team's vaults or guards through the operator's identity. Unbound: nothing.

use kube::Api;

use crate::crd::AzureScopeBinding;
use crate::crd::azure_scope_binding::AzureScopeBindingSpec;

/// What one namespace may name in Azure.
#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceScope {
    pub namespace: String,
    pub binding: Option<AzureScopeBindingSpec>,
}

/// Reads the AzureScopeBinding of `namespace` (named after it).
pub async fn of(client: &kube::Client, namespace: &str) -> Result<NamespaceScope, kube::Error> {
    let bindings: Api<AzureScopeBinding> = Api::all(client.clone());
    Ok(NamespaceScope {
        namespace: namespace.to_string(),
        binding: bindings.get_opt(namespace).await?.map(|b| b.spec),
    })
}

impl NamespaceScope {
    /// `Ok` when the namespace's objects may name `id` (`what`: "the vault", "the guard"); otherwise why not,
    /// for a person.
    pub fn may_name(&self, what: &str, id: &str) -> Result<(), String> {
        match &self.binding {
            Some(binding) if binding.may_name(id) => Ok(()),
            Some(_) => Err(format!(
                "namespace {ns} may not name {what} {id}: the AzureScopeBinding {ns} does not cover it (a cluster admin may add its scope to spec.scopes)",
                ns = self.namespace
            )),
            None => Err(self.unbound()),
        }
    }

    /// `Ok` when the namespace's security admins own the guard `id` (manage it, adopt it, or set its
    /// elevation rules); otherwise why not.
    pub fn owns_guard(&self, id: &str) -> Result<(), String> {
        match &self.binding {
            Some(binding) if binding.owns_guard(id) => Ok(()),
            Some(_) => Err(format!(
                "namespace {ns} does not own the guard {id}: the AzureScopeBinding {ns} does not cover it in spec.guardScopes (a cluster admin may add it)",
                ns = self.namespace
            )),
            None => Err(self.unbound()),
        }
    }

    fn unbound(&self) -> String {
        format!(
            "namespace {ns} has no AzureScopeBinding, so its objects may name nothing in Azure: a cluster admin must create the AzureScopeBinding {ns} with the scopes it may use",
            ns = self.namespace
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUARD: &str = "/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c/resourceGroups/sec-a/providers/Microsoft.DataProtection/resourceGuards/g";

    #[test]
    fn an_unbound_namespace_may_name_nothing_and_says_who_can_fix_it() {
        let scope = NamespaceScope {
            namespace: "team-b".into(),
            binding: None,
        };
        let why = scope.may_name("the guard", GUARD).unwrap_err();
        assert!(why.contains("namespace team-b has no AzureScopeBinding"), "{why}");
        assert!(scope.owns_guard(GUARD).is_err());
    }

    #[test]
    fn a_bound_namespace_names_what_it_covers_and_owns_only_its_guard_scopes() {
        let scope = NamespaceScope {
            namespace: "team-a".into(),
            binding: Some(AzureScopeBindingSpec {
                scopes: vec!["/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c".into()],
                guard_scopes: Vec::new(),
                backup_principal_ids: Vec::new(),
                security_client_ids: Vec::new(),
                backup_client_ids: Vec::new(),
            }),
        };
        assert_eq!(scope.may_name("the guard", GUARD), Ok(()));
        let why = scope.owns_guard(GUARD).unwrap_err();
        assert!(why.contains("does not cover it in spec.guardScopes"), "{why}");
    }
}
