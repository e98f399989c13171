//! Types and admission rules shared by the three CRDs.
//!
//! Every shape check is a CEL rule with a message a person can act on, rather than a bare `pattern`
//! whose rejection only quotes the regular expression. Strings carry a `maxLength` so the API server can
//! bound the cost of the rules.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::core::{Reason, Rule};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GUID_RE: &str = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
/// Azure resource group names: 1-90 letters, digits, `-`, `_`, `.`, `(`, `)`; not ending in `.`.
pub const RESOURCE_GROUP_RE: &str = "[-a-zA-Z0-9_.()]{0,89}[-a-zA-Z0-9_()]";
/// Vault and Resource Guard names: 2-50 characters, a letter first, then letters, digits and hyphens.
pub const AZURE_NAME_RE: &str = "[a-zA-Z][a-zA-Z0-9-]{1,49}";
/// A Kubernetes object name (RFC 1123 subdomain).
pub const OBJECT_NAME_RE: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

fn whole(re: &str) -> String {
    format!("^{re}$")
}

/// The ARM ID pattern of one resource type, e.g. `Microsoft.DataProtection/resourceGuards`.
pub fn arm_id_re(provider: &str, resource_type: &str) -> String {
    let provider = provider.replace('.', "[.]");
    format!(
        "/subscriptions/{GUID_RE}/resourceGroups/{RESOURCE_GROUP_RE}/providers/{provider}/{resource_type}/{AZURE_NAME_RE}"
    )
}

/// `field` must match `re` in full.
fn matches(re: &str, message: String) -> Rule {
    Rule::new(format!("self.matches('{}')", whole(re))).message(message.as_str())
}

pub fn guid_rule(field: &str) -> Rule {
    matches(
        GUID_RE,
        format!("{field} must be a GUID such as 00000000-0000-0000-0000-000000000000"),
    )
}

pub fn resource_group_rule() -> Rule {
    matches(
        RESOURCE_GROUP_RE,
        "resourceGroup must be 1-90 characters of letters, digits, '-', '_', '.', '(' or ')' and must not end with '.'"
            .to_string(),
    )
}

pub fn azure_name_rule(what: &str) -> Rule {
    matches(
        AZURE_NAME_RE,
        format!("{what} must be 2-50 characters, start with a letter and contain only letters, digits and hyphens"),
    )
}

pub fn region_rule() -> Rule {
    matches(
        "[a-z][a-z0-9]{1,39}",
        "region must be an Azure region's programmatic name such as westeurope or eastus2 (lowercase, no spaces)"
            .to_string(),
    )
}

pub fn object_name_rule(field: &str) -> Rule {
    matches(
        OBJECT_NAME_RE,
        format!("{field} must be the name of an object in this namespace (lowercase RFC 1123)"),
    )
}

pub fn not_blank_rule(field: &str) -> Rule {
    Rule::new("self.matches('[^ \\t\\r\\n]')")
        .message(format!("{field} must not be empty or only whitespace").as_str())
        .reason(Reason::FieldValueRequired)
}

pub fn immutable_rule(message: &str) -> Rule {
    Rule::new("self == oldSelf").message(message)
}

/// The Go-style durations the API accepts: hours, minutes and seconds, e.g. `30m`, `2h`, `1h30m`.
pub const DURATION_RE: &str = "([0-9]{1,3}h)?([0-9]{1,4}m)?([0-9]{1,5}s)?";
pub const MIN_DURATION: &str = "5m";
pub const MAX_DURATION: &str = "24h";

pub fn duration_format_rule(field: &str) -> Rule {
    Rule::new(format!("self != '' && self.matches('{}')", whole(DURATION_RE)))
        .message(format!("{field} must be a duration such as 30m, 2h or 1h30m (units h, m, s)").as_str())
}

pub fn duration_bounds_rule(field: &str) -> Rule {
    // Guarded by the format so a malformed value reports only the format rule's message.
    Rule::new(format!(
        "self == '' || !self.matches('{}') || (duration(self) >= duration('{MIN_DURATION}') && duration(self) <= duration('{MAX_DURATION}'))",
        whole(DURATION_RE)
    ))
    .message(format!("{field} must be between {MIN_DURATION} and {MAX_DURATION}").as_str())
}

/// What the operator may do in Azure for an object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ManagementPolicy {
    /// Converge Azure to the spec: create, update and (per the deletion policy) delete.
    #[default]
    Manage,
    /// Read Azure and report drift in status and conditions; never write to Azure.
    Observe,
}

/// An Azure principal (user, service principal or managed identity) by its Entra object ID.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzurePrincipal {
    /// The principal's object ID in Entra ID.
    #[x_kube(validation = guid_rule("objectId"))]
    #[schemars(length(max = 36))]
    pub object_id: String,
    /// The principal's tenant, when it differs from the tenant of the vault.
    #[x_kube(validation = guid_rule("tenantId"))]
    #[schemars(length(max = 36))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

/// Who approves an elevation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApprovalBackend {
    /// Approvers approve in the cluster with `kubectl mua approve`; the security side then grants
    /// Contributor on the guard with an Azure-side expiry.
    #[default]
    Kubernetes,
    /// The principal self-activates an eligible Contributor assignment in Entra PIM; approvers approve in
    /// Azure and the operator follows the PIM request.
    #[serde(rename = "PIM")]
    Pim,
}

/// Conditions, keyed by type, as kstatus and Argo CD read them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
pub struct Conditions(pub Vec<Condition>);

impl Conditions {
    pub fn get(&self, type_: &str) -> Option<&Condition> {
        self.0.iter().find(|c| c.type_ == type_)
    }

    /// Whether the condition `type_` is `True`.
    pub fn is_true(&self, type_: &str) -> bool {
        self.get(type_).is_some_and(|c| c.status == "True")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regex(re: &str) -> regex_lite::Regex {
        regex_lite::Regex::new(&whole(re)).unwrap()
    }

    #[test]
    fn guid_pattern_accepts_guids_only() {
        let re = regex(GUID_RE);
        assert!(re.is_match("0b352192-dcac-4cc7-992e-a96190ccc68c"));
        assert!(!re.is_match("0b352192dcac4cc7992ea96190ccc68c"));
        assert!(!re.is_match("not-a-guid"));
    }

    #[test]
    fn resource_group_pattern_follows_azure_rules() {
        let re = regex(RESOURCE_GROUP_RE);
        assert!(re.is_match("Default-RecoveryServices-ResourceGroup"));
        assert!(re.is_match("rg_(prod).1"));
        assert!(!re.is_match("ends-with-dot."));
        assert!(!re.is_match(""));
        assert!(!re.is_match(&"a".repeat(91)));
    }

    #[test]
    fn arm_id_pattern_names_the_resource_type() {
        let re = regex(&arm_id_re("Microsoft.RecoveryServices", "vaults"));
        let id = "/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/sampleVault";
        assert!(re.is_match(id));
        assert!(!re.is_match(&id.replace(
            "Microsoft.RecoveryServices/vaults",
            "Microsoft.DataProtection/backupVaults"
        )));
        assert!(!re.is_match(&id.replace("Microsoft.RecoveryServices", "MicrosoftXRecoveryServices")));
    }

    #[test]
    fn duration_pattern_accepts_go_style_units() {
        let re = regex(DURATION_RE);
        for ok in ["5m", "1h30m", "24h", "90s", "2h0m0s"] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in ["PT1H", "1d", "1.5h", "-5m", "h"] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }
}
