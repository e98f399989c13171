//! Azure RBAC as ARM enforces it: built-in role definitions, role assignments inherited down the scope
//! tree (subscription → resource group → resource), and the linked authorization check a vault runs on
//! its Resource Guard before a critical operation.

use jiff::Timestamp;

pub use crate::world::RoleDefinition;
use crate::world::World;

pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
pub const BACKUP_CONTRIBUTOR: &str = "5e467623-bb1f-42f4-a55d-6e525e11384b";
pub const BACKUP_MUA_ADMIN: &str = "c2a970b4-16a7-4a51-8c84-8a8ea6ee0bb8";
pub const BACKUP_MUA_OPERATOR: &str = "f54b6d04-23c6-443e-b462-9c16ab7b4a52";

fn builtin(id: &str, name: &str, actions: &[&str], not_actions: &[&str]) -> RoleDefinition {
    RoleDefinition {
        id: id.to_string(),
        name: name.to_string(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
        not_actions: not_actions.iter().map(|a| a.to_string()).collect(),
    }
}

/// Azure's built-in roles that matter for MUA.
pub static BUILTIN_ROLES: std::sync::LazyLock<Vec<RoleDefinition>> = std::sync::LazyLock::new(|| {
    vec![
        builtin(OWNER, "Owner", &["*"], &[]),
        builtin(
            CONTRIBUTOR,
            "Contributor",
            &["*"],
            &[
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
            ],
        ),
        builtin(READER, "Reader", &["*/read"], &[]),
        builtin(
            BACKUP_CONTRIBUTOR,
            "Backup Contributor",
            &[
                "Microsoft.RecoveryServices/Vaults/*",
                "Microsoft.DataProtection/backupVaults/*",
                "*/read",
            ],
            &[
                "Microsoft.RecoveryServices/Vaults/delete",
                "Microsoft.DataProtection/backupVaults/delete",
            ],
        ),
        builtin(
            BACKUP_MUA_ADMIN,
            "Backup MUA Admin",
            &["Microsoft.DataProtection/resourceGuards/*", "*/read"],
            &[],
        ),
        builtin(
            BACKUP_MUA_OPERATOR,
            "Backup MUA Operator",
            &[
                "Microsoft.DataProtection/resourceGuards/*/action",
                "Microsoft.DataProtection/resourceGuards/read",
            ],
            &[],
        ),
    ]
});

/// A role by role definition ID (GUID or full ID) or name: built-in, or custom from the world.
pub fn role<'a>(world: &'a World, id_or_name: &str) -> Option<&'a RoleDefinition> {
    let key = id_or_name.rsplit('/').next().unwrap_or(id_or_name);
    BUILTIN_ROLES
        .iter()
        .chain(world.role_definitions.values())
        .find(|r| r.id.eq_ignore_ascii_case(key) || r.name.eq_ignore_ascii_case(id_or_name))
}

/// ARM's action pattern match: case-insensitive, `*` matches any run of characters.
fn action_matches(pattern: &str, action: &str) -> bool {
    let (pattern, action) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == action;
    }
    let mut rest = action.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(after) = rest.strip_prefix(part) else {
                return false;
            };
            rest = after;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else { return false };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

impl RoleDefinition {
    pub fn allows(&self, action: &str) -> bool {
        self.actions.iter().any(|p| action_matches(p, action))
            && !self.not_actions.iter().any(|p| action_matches(p, action))
    }
}

/// Whether `scope` covers `resource_id`: equal, or an ancestor on a segment boundary.
pub fn scope_covers(scope: &str, resource_id: &str) -> bool {
    let scope = scope.trim_end_matches('/').to_ascii_lowercase();
    let id = resource_id.to_ascii_lowercase();
    scope.is_empty() || scope == "/" || id == scope || id.starts_with(&format!("{scope}/"))
}

/// Whether `principal` may perform `action` on `resource_id` at `now`, through any active assignment.
pub fn is_allowed(world: &World, principal: &str, action: &str, resource_id: &str, now: Timestamp) -> bool {
    world.role_assignments.values().any(|a| {
        a.principal_id.eq_ignore_ascii_case(principal)
            && a.end_time.is_none_or(|end| end > now)
            && scope_covers(&a.scope, resource_id)
            && role(world, &a.role_definition).is_some_and(|r| r.allows(action))
    })
}

/// The action a critical call must be allowed on the guard for the guard request type it cites.
pub fn linked_check_action(request_type: &str) -> String {
    format!("Microsoft.DataProtection/resourceGuards/{request_type}/action")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(id: &str) -> Option<&'static RoleDefinition> {
        BUILTIN_ROLES.iter().find(|r| r.id == id)
    }

    #[test]
    fn reader_reads_but_cannot_pass_the_linked_check() {
        let reader = role(READER).unwrap();
        assert!(reader.allows("Microsoft.DataProtection/resourceGuards/read"));
        assert!(!reader.allows(&linked_check_action("disableSoftDeleteRequests")));
        assert!(!reader.allows("Microsoft.DataProtection/resourceGuards/write"));
    }

    #[test]
    fn contributor_passes_the_linked_check_but_cannot_assign_roles() {
        let contributor = role(CONTRIBUTOR).unwrap();
        assert!(contributor.allows(&linked_check_action("deleteResourceGuardProxyRequests")));
        assert!(!contributor.allows("Microsoft.Authorization/roleAssignments/write"));
        assert!(
            role(OWNER)
                .unwrap()
                .allows("Microsoft.Authorization/roleAssignments/write")
        );
    }

    #[test]
    fn mua_operator_passes_the_linked_check_without_writing_the_guard() {
        let operator = role(BACKUP_MUA_OPERATOR).unwrap();
        assert!(operator.allows(&linked_check_action("disableSoftDeleteRequests")));
        assert!(!operator.allows("Microsoft.DataProtection/resourceGuards/write"));
    }

    #[test]
    fn scopes_inherit_on_segment_boundaries() {
        let rg = "/subscriptions/s1/resourceGroups/rg";
        assert!(scope_covers(rg, "/subscriptions/S1/resourcegroups/RG/providers/X/y/z"));
        assert!(!scope_covers(
            rg,
            "/subscriptions/s1/resourceGroups/rg2/providers/X/y/z"
        ));
        assert!(scope_covers("/subscriptions/s1", rg));
    }
}
