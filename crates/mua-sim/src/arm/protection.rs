//! Effective protection: what a vault, a backup policy or a protected item guarantees, read from the
//! resource as it is (or would be) stored, whatever JSON shape carried it; and the critical operations a
//! change from one to another amounts to. Any weakening needs the guard; nothing else does.
//!
//! Pure functions over JSON that is already canonical (see `casing`): the handlers read the world, build
//! the resource they would store, and ask these what the change weakens.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ArmError;
use crate::operations::{CriticalOperation, VaultKind};

/// Soft delete from off to on for good. Recovery Services' enhanced security has the same three states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SoftDelete {
    Off,
    On,
    AlwaysOn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Immutability {
    Disabled,
    Unlocked,
    Locked,
}

/// The soft-delete retention Azure gives a vault whose creator does not choose one, and the range it allows.
pub const DEFAULT_SOFT_DELETE_RETENTION_DAYS: u32 = 14;
const SOFT_DELETE_RETENTION_DAYS: std::ops::RangeInclusive<u32> = 14..=180;

/// What a vault's settings guarantee. Settings a vault does not state take Azure's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct VaultProtection {
    pub soft_delete: SoftDelete,
    /// Recovery Services `enhancedSecurityState`; Backup vaults have none, so it never changes there.
    pub enhanced_security: SoftDelete,
    pub soft_delete_retention_days: u32,
    pub immutability: Immutability,
    /// Customer-managed key settings; `None` when the platform's keys encrypt the vault.
    pub encryption: Option<Value>,
}

/// Where each vault kind keeps its soft-delete settings, and its names for the three states.
struct SoftDeleteFields {
    state: &'static str,
    enhanced_security: Option<&'static str>,
    retention: &'static str,
    states: [(&'static str, SoftDelete); 3],
}

const RS_SOFT_DELETE: SoftDeleteFields = SoftDeleteFields {
    state: "softDeleteState",
    enhanced_security: Some("enhancedSecurityState"),
    retention: "softDeleteRetentionPeriodInDays",
    states: [
        ("Disabled", SoftDelete::Off),
        ("Enabled", SoftDelete::On),
        ("AlwaysON", SoftDelete::AlwaysOn),
    ],
};

const BACKUP_VAULT_SOFT_DELETE: SoftDeleteFields = SoftDeleteFields {
    state: "state",
    enhanced_security: None,
    retention: "retentionDurationInDays",
    states: [
        ("Off", SoftDelete::Off),
        ("On", SoftDelete::On),
        ("AlwaysOn", SoftDelete::AlwaysOn),
    ],
};

fn soft_delete_fields(kind: VaultKind) -> &'static SoftDeleteFields {
    match kind {
        VaultKind::RecoveryServicesVault => &RS_SOFT_DELETE,
        VaultKind::BackupVault => &BACKUP_VAULT_SOFT_DELETE,
    }
}

fn invalid(message: String) -> ArmError {
    ArmError::bad_request("InvalidRequestContent", message)
}

/// `parent[key]`: an object, or null when absent; anything else is refused.
fn section<'a>(parent: &'a Value, key: &str, what: &str) -> Result<&'a Value, ArmError> {
    let value = &parent[key];
    if value.is_null() || value.is_object() {
        Ok(value)
    } else {
        Err(invalid(format!("{what} must be an object.")))
    }
}

/// One of `names` (case-insensitive), or `default` when absent.
fn named_state<T: Copy>(value: &Value, names: &[(&str, T)], default: T, what: &str) -> Result<T, ArmError> {
    let found = match value {
        Value::Null => return Ok(default),
        Value::String(text) => names.iter().find(|(name, _)| name.eq_ignore_ascii_case(text)),
        _ => None,
    };
    found.map(|(_, state)| *state).ok_or_else(|| {
        let allowed: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
        invalid(format!("{what} must be one of {}; got {value}.", allowed.join(", ")))
    })
}

/// Whole days in Azure's range; a Backup vault reports them as a number with a fraction (`14.0`).
fn soft_delete_retention(value: &Value, what: &str) -> Result<u32, ArmError> {
    if value.is_null() {
        return Ok(DEFAULT_SOFT_DELETE_RETENTION_DAYS);
    }
    let (low, high) = (*SOFT_DELETE_RETENTION_DAYS.start(), *SOFT_DELETE_RETENTION_DAYS.end());
    value
        .as_f64()
        .filter(|days| days.fract() == 0.0 && (f64::from(low)..=f64::from(high)).contains(days))
        .map(|days| days as u32)
        .ok_or_else(|| {
            invalid(format!(
                "{what} must be a whole number of days from {low} to {high}; got {value}."
            ))
        })
}

fn encryption(kind: VaultKind, properties: &Value, security: &Value) -> Result<Option<Value>, ArmError> {
    let settings = match kind {
        VaultKind::RecoveryServicesVault => section(properties, "encryption", "properties.encryption")?,
        VaultKind::BackupVault => section(security, "encryptionSettings", "securitySettings.encryptionSettings")?,
    };
    // A Backup vault states platform-managed keys as `state: Disabled`.
    let disabled = settings["state"]
        .as_str()
        .is_some_and(|state| state.eq_ignore_ascii_case("Disabled"));
    Ok((!settings.is_null() && !disabled).then(|| settings.clone()))
}

impl VaultProtection {
    /// The protection of a vault body (canonical names). Refuses shapes and values Azure would not accept.
    pub fn of(kind: VaultKind, vault: &Value) -> Result<VaultProtection, ArmError> {
        let properties = section(vault, "properties", "properties")?;
        let security = section(properties, "securitySettings", "properties.securitySettings")?;
        let soft_delete = section(security, "softDeleteSettings", "securitySettings.softDeleteSettings")?;
        let immutability = section(
            security,
            "immutabilitySettings",
            "securitySettings.immutabilitySettings",
        )?;
        let fields = soft_delete_fields(kind);
        let state = |field: &str| {
            let what = format!("softDeleteSettings.{field}");
            named_state(&soft_delete[field], &fields.states, SoftDelete::On, &what)
        };
        Ok(VaultProtection {
            soft_delete: state(fields.state)?,
            enhanced_security: fields.enhanced_security.map_or(Ok(SoftDelete::On), state)?,
            soft_delete_retention_days: soft_delete_retention(
                &soft_delete[fields.retention],
                &format!("softDeleteSettings.{}", fields.retention),
            )?,
            immutability: named_state(
                &immutability["state"],
                &[
                    ("Disabled", Immutability::Disabled),
                    ("Unlocked", Immutability::Unlocked),
                    ("Locked", Immutability::Locked),
                ],
                Immutability::Disabled,
                "immutabilitySettings.state",
            )?,
            encryption: encryption(kind, properties, security)?,
        })
    }
}

/// The critical operations that turning `before` into `after` amounts to: one per weakened facet.
pub fn vault_weakenings(before: &VaultProtection, after: &VaultProtection) -> Vec<CriticalOperation> {
    let mut ops = Vec::new();
    if after.soft_delete < before.soft_delete
        || after.enhanced_security < before.enhanced_security
        || after.soft_delete_retention_days < before.soft_delete_retention_days
    {
        ops.push(CriticalOperation::DisableSoftDelete);
    }
    if after.immutability < before.immutability {
        ops.push(CriticalOperation::DisableImmutability);
    }
    // Moving to customer-managed keys is the first choice of a key, not a change of one.
    if before.encryption.is_some() && after.encryption != before.encryption {
        ops.push(CriticalOperation::ModifyEncryptionSettings);
    }
    ops
}

/// A duration unit of Azure Backup retention: the longest count Azure allows in it (support matrix: 9999
/// days, 5163 weeks, 1188 months, 99 years) and its length in days.
struct RetentionUnit {
    name: &'static str,
    iso: char,
    max: u32,
    days: u32,
}

/// Largest unit first: the order ISO 8601 writes them in.
const RETENTION_UNITS: [RetentionUnit; 4] = [
    RetentionUnit {
        name: "Years",
        iso: 'Y',
        max: 99,
        days: 365,
    },
    RetentionUnit {
        name: "Months",
        iso: 'M',
        max: 1188,
        days: 30,
    },
    RetentionUnit {
        name: "Weeks",
        iso: 'W',
        max: 5163,
        days: 7,
    },
    RetentionUnit {
        name: "Days",
        iso: 'D',
        max: 9999,
        days: 1,
    },
];

impl RetentionUnit {
    /// `count` units in days, when `count` is in Azure's range (so the product cannot overflow).
    fn days_in(&self, count: u64) -> Option<u32> {
        let count = u32::try_from(count).ok().filter(|c| (1..=self.max).contains(c))?;
        count.checked_mul(self.days)
    }
}

/// Where one retention applies: the sub-policy (`full`, `log`, ...; empty for a policy without
/// sub-policies) or Backup-vault rule, and the schedule (`daily` ... `yearly`, or `simple` for every
/// point) or data store. Lowercase, as Azure compares these names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetentionSlot {
    pub scope: String,
    pub schedule: String,
}

/// How long a policy keeps each kind of recovery point, in days.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyRetention(BTreeMap<RetentionSlot, u32>);

/// Azure Backup's refusal of a policy body, with each service's code.
fn invalid_policy(kind: VaultKind, message: String) -> ArmError {
    let code = match kind {
        VaultKind::RecoveryServicesVault => "BMSUserErrorInvalidPolicyInput",
        VaultKind::BackupVault => "BMSUserErrorInvalidInput",
    };
    ArmError::bad_request(code, message)
}

impl PolicyRetention {
    /// The retention of a policy body (canonical names) of a vault kind, in every shape that kind has.
    pub fn of(kind: VaultKind, policy: &Value) -> Result<PolicyRetention, ArmError> {
        let properties = section(policy, "properties", "properties")?;
        let mut retention = PolicyRetention::default();
        match kind {
            VaultKind::RecoveryServicesVault => retention.read_rs_policy(properties)?,
            VaultKind::BackupVault => retention.read_backup_vault_policy(properties)?,
        }
        Ok(retention)
    }

    /// Whether `self` keeps anything `before` kept for less time, or no longer keeps it.
    pub fn keeps_less_than(&self, before: &PolicyRetention) -> bool {
        before
            .0
            .iter()
            .any(|(slot, days)| self.0.get(slot).is_none_or(|kept| kept < days))
    }

    fn insert(&mut self, kind: VaultKind, scope: &str, schedule: &str, days: u32, at: &str) -> Result<(), ArmError> {
        let slot = RetentionSlot {
            scope: scope.to_ascii_lowercase(),
            schedule: schedule.to_ascii_lowercase(),
        };
        if self.0.insert(slot, days).is_some() {
            return Err(invalid_policy(
                kind,
                format!("{at} sets a retention that an earlier part of the policy already sets."),
            ));
        }
        Ok(())
    }

    /// A Recovery Services policy: `retentionPolicy` (long-term schedules or one simple duration), and
    /// workload policies' `subProtectionPolicy[]`, each with its own `retentionPolicy`.
    fn read_rs_policy(&mut self, properties: &Value) -> Result<(), ArmError> {
        self.read_retention_policy("", &properties["retentionPolicy"], "retentionPolicy")?;
        let subs = match &properties["subProtectionPolicy"] {
            Value::Null => return Ok(()),
            Value::Array(subs) => subs,
            _ => return Err(invalid("properties.subProtectionPolicy must be an array.".into())),
        };
        for (i, sub) in subs.iter().enumerate() {
            let at = format!("subProtectionPolicy[{i}]");
            let Some(policy_type) = sub["policyType"].as_str().filter(|t| !t.is_empty()) else {
                return Err(invalid_policy(
                    VaultKind::RecoveryServicesVault,
                    format!("{at}.policyType is required (Full, Differential, Log, ...)."),
                ));
            };
            self.read_retention_policy(policy_type, &sub["retentionPolicy"], &format!("{at}.retentionPolicy"))?;
        }
        Ok(())
    }

    /// Reads both shapes wherever they appear: a `retentionDuration` of its own (SimpleRetentionPolicy)
    /// and `*Schedule.retentionDuration` (LongTermRetentionPolicy).
    fn read_retention_policy(&mut self, scope: &str, policy: &Value, at: &str) -> Result<(), ArmError> {
        const KIND: VaultKind = VaultKind::RecoveryServicesVault;
        if policy.is_null() {
            return Ok(());
        }
        if !policy.is_object() {
            return Err(invalid(format!("{at} must be an object.")));
        }
        let simple = format!("{at}.retentionDuration");
        if let Some(days) = retention_duration(&policy["retentionDuration"], &simple)? {
            self.insert(KIND, scope, "simple", days, &simple)?;
        }
        for (field, schedule) in [
            ("dailySchedule", "daily"),
            ("weeklySchedule", "weekly"),
            ("monthlySchedule", "monthly"),
            ("yearlySchedule", "yearly"),
        ] {
            let duration_at = format!("{at}.{field}.retentionDuration");
            let schedule_body = section(policy, field, &format!("{at}.{field}"))?;
            if let Some(days) = retention_duration(&schedule_body["retentionDuration"], &duration_at)? {
                self.insert(KIND, scope, schedule, days, &duration_at)?;
            }
        }
        Ok(())
    }

    /// A Backup-vault policy: each retention rule's lifecycles delete a data store's points after
    /// `deleteAfter.duration` (ISO 8601). Backup rules (schedules) have no lifecycles.
    fn read_backup_vault_policy(&mut self, properties: &Value) -> Result<(), ArmError> {
        const KIND: VaultKind = VaultKind::BackupVault;
        let rules = match &properties["policyRules"] {
            Value::Null => return Ok(()),
            Value::Array(rules) => rules,
            _ => return Err(invalid("properties.policyRules must be an array.".into())),
        };
        for (i, rule) in rules.iter().enumerate() {
            let lifecycles = match &rule["lifecycles"] {
                Value::Null => continue,
                Value::Array(lifecycles) => lifecycles,
                _ => return Err(invalid(format!("policyRules[{i}].lifecycles must be an array."))),
            };
            let rule_name = rule["name"].as_str().unwrap_or_default();
            for (j, lifecycle) in lifecycles.iter().enumerate() {
                let at = format!("policyRules[{i}].lifecycles[{j}]");
                let store = lifecycle["sourceDataStore"]["dataStoreType"]
                    .as_str()
                    .unwrap_or_default();
                let days = delete_after_days(&lifecycle["deleteAfter"]["duration"], &at)?;
                self.insert(KIND, rule_name, store, days, &at)?;
            }
        }
        Ok(())
    }
}

/// `{count, durationType}` in days; `None` where no count is set (that schedule keeps nothing). A count
/// outside Azure's range is refused.
fn retention_duration(duration: &Value, at: &str) -> Result<Option<u32>, ArmError> {
    const KIND: VaultKind = VaultKind::RecoveryServicesVault;
    if duration["count"].is_null() {
        return Ok(None);
    }
    let unit_name = match &duration["durationType"] {
        Value::Null => "Days",
        Value::String(name) => name.as_str(),
        other => {
            return Err(invalid_policy(
                KIND,
                format!("{at}.durationType must be a string; got {other}."),
            ));
        }
    };
    let Some(unit) = RETENTION_UNITS.iter().find(|u| u.name.eq_ignore_ascii_case(unit_name)) else {
        return Err(invalid_policy(
            KIND,
            format!("{at}.durationType '{unit_name}' is not one of Days, Weeks, Months, Years."),
        ));
    };
    duration["count"]
        .as_u64()
        .and_then(|count| unit.days_in(count))
        .map(Some)
        .ok_or_else(|| {
            invalid_policy(
                KIND,
                format!(
                    "{at}.count must be a whole number from 1 to {} {unit_name}; got {}.",
                    unit.max, duration["count"]
                ),
            )
        })
}

fn delete_after_days(duration: &Value, at: &str) -> Result<u32, ArmError> {
    duration.as_str().and_then(iso_duration_days).ok_or_else(|| {
        invalid_policy(
            VaultKind::BackupVault,
            format!(
                "{at}.deleteAfter.duration must be an ISO 8601 duration in whole years, months, weeks or days \
                 within Azure's range, such as P30D, P12W, P6M or P1Y; got {duration}."
            ),
        )
    })
}

/// An ISO 8601 date duration (`P1Y6M`, `P12W`, `P30D`) in days, with Azure Backup's month (30 days) and
/// year (365 days). `None` for anything else: time parts, zero, repeated or misordered units, counts
/// beyond Azure's range.
fn iso_duration_days(text: &str) -> Option<u32> {
    let mut rest = text.strip_prefix(['P', 'p'])?;
    let mut units = RETENTION_UNITS.iter();
    let mut total: u32 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let count: u64 = rest[..digits].parse().ok()?;
        let designator = rest[digits..].chars().next()?;
        // Each unit at most once, largest first: skip to the one named.
        let unit = units.find(|u| u.iso.eq_ignore_ascii_case(&designator))?;
        total = total.checked_add(unit.days_in(count)?)?;
        rest = &rest[digits + designator.len_utf8()..];
    }
    (total > 0).then_some(total)
}

/// The critical operation a policy change amounts to: reducing any retention is `ModifyBackupPolicy`.
pub fn policy_weakening(before: &PolicyRetention, after: &PolicyRetention) -> Option<CriticalOperation> {
    after
        .keeps_less_than(before)
        .then_some(CriticalOperation::ModifyBackupPolicy)
}

/// The policy an item names: Recovery Services `properties.policyId`, Backup vault
/// `properties.policyInfo.policyId`. An empty ID (Azure's for stopped protection) names none.
pub fn policy_id_of(kind: VaultKind, item: &Value) -> Result<Option<&str>, ArmError> {
    let (value, what) = match kind {
        VaultKind::RecoveryServicesVault => (&item["properties"]["policyId"], "properties.policyId"),
        VaultKind::BackupVault => (
            &item["properties"]["policyInfo"]["policyId"],
            "properties.policyInfo.policyId",
        ),
    };
    match value {
        Value::Null => Ok(None),
        Value::String(id) => Ok(Some(id.as_str()).filter(|id| !id.is_empty())),
        other => Err(invalid(format!("{what} must be a string; got {other}."))),
    }
}

/// Whether `policy_id` names a backup policy of the vault `vault_id`.
pub fn policy_in_vault(policy_id: &str, vault_id: &str) -> bool {
    let prefix = format!("{}/backuppolicies/", vault_id.to_ascii_lowercase());
    policy_id
        .to_ascii_lowercase()
        .strip_prefix(&prefix)
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// What protects an item: the policy it names and what that policy keeps (`None`: unknown, because the
/// item names no policy or the policy cannot be found).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemProtection {
    policy_id: Option<String>,
    retention: Option<PolicyRetention>,
}

impl ItemProtection {
    pub fn new(policy_id: Option<&str>, retention: Option<PolicyRetention>) -> ItemProtection {
        ItemProtection {
            policy_id: policy_id.map(str::to_ascii_lowercase),
            retention,
        }
    }
}

/// The critical operation moving an item amounts to: to a policy that keeps less, or whose retention is
/// unknown, it is `ModifyProtection`.
pub fn item_weakening(before: &ItemProtection, after: &ItemProtection) -> Option<CriticalOperation> {
    if before.policy_id == after.policy_id {
        return None;
    }
    let weaker = match (&before.retention, &after.retention) {
        (_, None) => true,
        // Nothing known was kept before, so nothing known is lost.
        (None, Some(_)) => false,
        (Some(was), Some(now)) => now.keeps_less_than(was),
    };
    weaker.then_some(CriticalOperation::ModifyProtection)
}

#[cfg(test)]
mod tests;
