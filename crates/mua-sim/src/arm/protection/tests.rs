use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;
use crate::arm::casing::canonicalize;
use crate::arm::vaults::rs_vault_defaults;

const RS: VaultKind = VaultKind::RecoveryServicesVault;
const BV: VaultKind = VaultKind::BackupVault;

fn vault(kind: VaultKind, body: Value) -> VaultProtection {
    VaultProtection::of(kind, &body).unwrap()
}

#[test]
fn a_vault_without_settings_has_azures_defaults() {
    for kind in [RS, BV] {
        let empty = vault(kind, json!({}));
        assert_eq!(empty.soft_delete, SoftDelete::On);
        assert_eq!(empty.soft_delete_retention_days, DEFAULT_SOFT_DELETE_RETENTION_DAYS);
        assert_eq!(empty.immutability, Immutability::Disabled);
        assert_eq!(empty.encryption, None);
    }
    assert_eq!(vault(RS, rs_vault_defaults()), vault(RS, json!({})));
}

#[test]
fn a_shorter_soft_delete_retention_is_disabling_soft_delete() {
    let long = vault(
        RS,
        json!({"properties": {"securitySettings": {"softDeleteSettings": {"softDeleteRetentionPeriodInDays": 180}}}}),
    );
    let short = vault(RS, json!({}));
    assert_eq!(vault_weakenings(&long, &short), [CriticalOperation::DisableSoftDelete]);
    assert_eq!(vault_weakenings(&short, &long), []);
}

#[test]
fn a_backup_vault_retention_may_carry_a_fraction_but_not_a_partial_day() {
    let settings = |days: Value| json!({"properties": {"securitySettings": {"softDeleteSettings": {"retentionDurationInDays": days}}}});
    assert_eq!(vault(BV, settings(json!(30.0))).soft_delete_retention_days, 30);
    for bad in [json!(30.5), json!(13), json!(181), json!(-1), json!("30"), json!(1e300)] {
        let err = VaultProtection::of(BV, &settings(bad.clone())).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (400, "InvalidRequestContent"), "{bad}");
    }
}

#[test]
fn backup_vault_encryption_disabled_is_the_platforms_keys() {
    let with = |settings: Value| {
        vault(
            BV,
            json!({"properties": {"securitySettings": {"encryptionSettings": settings}}}),
        )
    };
    let key = with(json!({"state": "Enabled", "keyVaultProperties": {"keyUri": "https://kv/keys/a"}}));
    assert_eq!(with(json!({"state": "Disabled"})).encryption, None);
    assert_eq!(
        vault_weakenings(&key, &with(json!({"state": "Disabled"}))),
        [CriticalOperation::ModifyEncryptionSettings]
    );
    assert_eq!(vault_weakenings(&with(json!({"state": "Disabled"})), &key), []);
}

#[test]
fn simple_and_sub_policy_retentions_are_read() {
    let policy = json!({"properties": {
        "retentionPolicy": {"retentionPolicyType": "SimpleRetentionPolicy", "retentionDuration": {"count": 2, "durationType": "Weeks"}},
        "subProtectionPolicy": [
            {"policyType": "Full", "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy",
                "weeklySchedule": {"retentionDuration": {"count": 5, "durationType": "Weeks"}},
                "yearlySchedule": {"retentionDuration": {"count": 1, "durationType": "Years"}}}},
            {"policyType": "Log", "retentionPolicy": {"retentionPolicyType": "SimpleRetentionPolicy",
                "retentionDuration": {"count": 30, "durationType": "Days"}}},
        ],
    }});
    let retention = PolicyRetention::of(RS, &policy).unwrap();
    let slot = |scope: &str, schedule: &str| RetentionSlot {
        scope: scope.into(),
        schedule: schedule.into(),
    };
    let expected: BTreeMap<_, _> = [
        (slot("", "simple"), 14),
        (slot("full", "weekly"), 35),
        (slot("full", "yearly"), 365),
        (slot("log", "simple"), 30),
    ]
    .into();
    assert_eq!(retention.0, expected);
}

#[test]
fn a_sub_policy_type_named_twice_is_refused() {
    let sub =
        json!({"policyType": "Log", "retentionPolicy": {"retentionDuration": {"count": 30, "durationType": "Days"}}});
    let policy = json!({"properties": {"subProtectionPolicy": [sub.clone(), sub]}});
    let err = PolicyRetention::of(RS, &policy).unwrap_err();
    assert_eq!((err.status.as_u16(), err.code), (400, "BMSUserErrorInvalidPolicyInput"));
}

#[test]
fn iso_durations_in_days() {
    for (text, days) in [
        ("P30D", Some(30)),
        ("P12W", Some(84)),
        ("P6M", Some(180)),
        ("P1Y", Some(365)),
        ("P1Y6M", Some(545)),
        ("p2w3d", Some(17)),
        ("P0D", None),
        ("P", None),
        ("PT4H", None),
        ("P6M1Y", None),
        ("P1D1D", None),
        ("P100Y", None),
        ("P99999999999999999999D", None),
        ("30D", None),
        ("P-1D", None),
        ("P1X", None),
    ] {
        assert_eq!(iso_duration_days(text), days, "{text}");
    }
}

#[test]
fn a_backup_vault_policy_keeps_each_rule_and_store_apart() {
    let policy = json!({"properties": {"datasourceTypes": ["Microsoft.Compute/disks"], "policyRules": [
        {"name": "BackupHourly", "objectType": "AzureBackupRule"},
        {"name": "Default", "objectType": "AzureRetentionRule", "isDefault": true, "lifecycles": [
            {"deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": "P7D"},
             "sourceDataStore": {"dataStoreType": "OperationalStore", "objectType": "DataStoreInfoBase"}},
            {"deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": "P6M"},
             "sourceDataStore": {"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"}}]},
    ]}});
    let retention = PolicyRetention::of(BV, &policy).unwrap();
    assert_eq!(retention.0.values().copied().collect::<Vec<_>>(), [7, 180]);
    let bad = json!({"properties": {"policyRules": [{"name": "Default", "lifecycles": [{"deleteAfter": {"duration": "PT1H"}}]}]}});
    let err = PolicyRetention::of(BV, &bad).unwrap_err();
    assert_eq!((err.status.as_u16(), err.code), (400, "BMSUserErrorInvalidInput"));
}

#[test]
fn an_item_moved_to_an_unknown_policy_is_weaker_and_a_renamed_id_is_not_a_move() {
    let kept = PolicyRetention::of(
        RS,
        &json!({"properties": {"retentionPolicy": {"retentionDuration": {"count": 30}}}}),
    )
    .unwrap();
    let before = ItemProtection::new(Some("/v/backupPolicies/a"), Some(kept.clone()));
    let unknown = ItemProtection::new(Some("/v/backupPolicies/gone"), None);
    assert_eq!(
        item_weakening(&before, &unknown),
        Some(CriticalOperation::ModifyProtection)
    );
    let same = ItemProtection::new(Some("/V/BACKUPPOLICIES/A"), Some(kept));
    assert_eq!(item_weakening(&before, &same), None);
}

#[test]
fn a_policy_belongs_to_one_vault() {
    let v = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v1";
    assert!(policy_in_vault(&format!("{v}/backupPolicies/daily"), v));
    assert!(policy_in_vault(
        &format!("{}/BACKUPPOLICIES/daily", v.to_uppercase()),
        v
    ));
    assert!(!policy_in_vault(&format!("{v}2/backupPolicies/daily"), v));
    assert!(!policy_in_vault(&format!("{v}/backupPolicies/"), v));
    assert!(!policy_in_vault(&format!("{v}/backupPolicies/a/b"), v));
}

// ---- Property tests: random settings, policies and moves; a weaker result needs the guard, nothing else does.

/// Every key in a new random casing.
fn recase(value: &Value, seed: &mut u64) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, value)| (recase_key(key, seed), recase(value, seed)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|item| recase(item, seed)).collect()),
        other => other.clone(),
    }
}

fn recase_key(key: &str, seed: &mut u64) -> String {
    key.chars()
        .map(|c| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if *seed >> 63 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// A vault's settings as a client might send them; `None` leaves a setting out (Azure's default applies).
#[derive(Clone, Debug)]
struct Settings {
    soft_delete: Option<SoftDelete>,
    enhanced_security: Option<SoftDelete>,
    retention_days: Option<u32>,
    immutability: Option<Immutability>,
    /// Which customer-managed key, if any.
    key: Option<u8>,
}

fn soft_delete() -> impl Strategy<Value = SoftDelete> {
    prop_oneof![Just(SoftDelete::Off), Just(SoftDelete::On), Just(SoftDelete::AlwaysOn)]
}

fn settings() -> impl Strategy<Value = Settings> {
    let immutability = prop_oneof![
        Just(Immutability::Disabled),
        Just(Immutability::Unlocked),
        Just(Immutability::Locked)
    ];
    (
        proptest::option::of(soft_delete()),
        proptest::option::of(soft_delete()),
        proptest::option::of(14u32..=180),
        proptest::option::of(immutability),
        proptest::option::of(0u8..3),
    )
        .prop_map(
            |(soft_delete, enhanced_security, retention_days, immutability, key)| Settings {
                soft_delete,
                enhanced_security,
                retention_days,
                immutability,
                key,
            },
        )
}

/// `before` with each setting either kept or drawn anew, so equal and partly changed vaults are common.
fn changed(before: &Settings, fresh: Settings, keep: [bool; 5]) -> Settings {
    fn pick<T>(keep: bool, old: T, new: T) -> T {
        if keep { old } else { new }
    }
    Settings {
        soft_delete: pick(keep[0], before.soft_delete, fresh.soft_delete),
        enhanced_security: pick(keep[1], before.enhanced_security, fresh.enhanced_security),
        retention_days: pick(keep[2], before.retention_days, fresh.retention_days),
        immutability: pick(keep[3], before.immutability, fresh.immutability),
        key: pick(keep[4], before.key, fresh.key),
    }
}

fn wire_name(kind: VaultKind, state: SoftDelete) -> &'static str {
    let fields = soft_delete_fields(kind);
    fields
        .states
        .iter()
        .find(|(_, s)| *s == state)
        .map(|(n, _)| *n)
        .unwrap()
}

/// The body a client sends for `settings`, with an unrelated tag.
fn vault_body(kind: VaultKind, settings: &Settings, tag: u8) -> Value {
    let fields = soft_delete_fields(kind);
    let mut soft_delete = Map::new();
    if let Some(state) = settings.soft_delete {
        soft_delete.insert(fields.state.into(), json!(wire_name(kind, state)));
    }
    if let (Some(state), Some(field)) = (settings.enhanced_security, fields.enhanced_security) {
        soft_delete.insert(field.into(), json!(wire_name(kind, state)));
    }
    if let Some(days) = settings.retention_days {
        let days = if kind == BV {
            json!(f64::from(days))
        } else {
            json!(days)
        };
        soft_delete.insert(fields.retention.into(), days);
    }
    let mut security = json!({});
    if !soft_delete.is_empty() {
        security["softDeleteSettings"] = Value::Object(soft_delete);
    }
    if let Some(state) = settings.immutability {
        security["immutabilitySettings"] = json!({"state": format!("{state:?}")});
    }
    let mut body = json!({"location": "westeurope", "tags": {"team": tag}, "properties": {}});
    let key_uri = settings.key.map(|k| format!("https://kv.vault.azure.net/keys/k{k}"));
    match (kind, key_uri) {
        (VaultKind::RecoveryServicesVault, Some(uri)) => {
            body["properties"]["encryption"] = json!({"keyVaultProperties": {"keyUri": uri}});
        }
        (VaultKind::BackupVault, Some(uri)) => {
            security["encryptionSettings"] = json!({"state": "Enabled", "keyVaultProperties": {"keyUri": uri}});
        }
        // Platform-managed keys, said two ways.
        (VaultKind::BackupVault, None) if tag.is_multiple_of(2) => {
            security["encryptionSettings"] = json!({"state": "Disabled"});
        }
        _ => {}
    }
    body["properties"]["securitySettings"] = security;
    body
}

/// What the vault guarantees, with Azure's defaults for what `settings` leave out.
fn effective(kind: VaultKind, s: &Settings) -> (SoftDelete, SoftDelete, u32, Immutability, Option<u8>) {
    let enhanced = match kind {
        VaultKind::RecoveryServicesVault => s.enhanced_security.unwrap_or(SoftDelete::On),
        VaultKind::BackupVault => SoftDelete::On,
    };
    (
        s.soft_delete.unwrap_or(SoftDelete::On),
        enhanced,
        s.retention_days.unwrap_or(14),
        s.immutability.unwrap_or(Immutability::Disabled),
        s.key,
    )
}

/// The operations a change needs, decided facet by facet on the settings themselves.
fn expected_vault_ops(kind: VaultKind, before: &Settings, after: &Settings) -> Vec<CriticalOperation> {
    let (b, a) = (effective(kind, before), effective(kind, after));
    let mut ops = Vec::new();
    if a.0 < b.0 || a.1 < b.1 || a.2 < b.2 {
        ops.push(CriticalOperation::DisableSoftDelete);
    }
    if a.3 < b.3 {
        ops.push(CriticalOperation::DisableImmutability);
    }
    if b.4.is_some() && a.4 != b.4 {
        ops.push(CriticalOperation::ModifyEncryptionSettings);
    }
    ops
}

fn vault_kind() -> impl Strategy<Value = VaultKind> {
    prop_oneof![Just(RS), Just(BV)]
}

/// A policy as its retention slots: (sub-policy or rule, schedule or store) → days.
type Slots = BTreeMap<(String, String), u32>;

/// One slot's change: kept (perhaps written in another unit), longer, shorter, or removed.
#[derive(Clone, Copy, Debug)]
enum Edit {
    Keep,
    Longer(u32),
    Shorter(u32),
    Remove,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => Just(Edit::Keep),
        2 => (1u32..400).prop_map(Edit::Longer),
        1 => (1u32..400).prop_map(Edit::Shorter),
        1 => Just(Edit::Remove),
    ]
}

/// Days with many divisors, so most can be written in more than one unit.
fn days() -> impl Strategy<Value = u32> {
    prop_oneof![
        1u32..=400,
        (1u32..=50).prop_map(|w| w * 7),
        (1u32..=24).prop_map(|m| m * 30),
        (1u32..=10).prop_map(|y| y * 365),
    ]
}

fn slots(kind: VaultKind) -> BoxedStrategy<Slots> {
    let (scopes, schedules): (Vec<&str>, Vec<&str>) = match kind {
        VaultKind::RecoveryServicesVault => (
            vec!["", "Full", "Differential", "Log", "Incremental"],
            vec!["daily", "weekly", "monthly", "yearly", "simple"],
        ),
        VaultKind::BackupVault => (
            vec!["Default", "Weekly", "Monthly"],
            vec!["VaultStore", "OperationalStore", "ArchiveStore"],
        ),
    };
    let slot = (
        proptest::sample::select(scopes).prop_map(String::from),
        proptest::sample::select(schedules).prop_map(String::from),
    );
    proptest::collection::btree_map(slot, days(), 0..7).boxed()
}

/// `before` after `edits` (one per slot, in order) and `added` (new slots only). Returns the result and
/// whether anything is kept for less time or no longer kept.
fn apply_edits(before: &Slots, edits: &[Edit], added: &Slots) -> (Slots, bool) {
    let mut after = Slots::new();
    let mut weaker = false;
    for ((slot, days), edit) in before.iter().zip(edits.iter().cycle()) {
        let new = match edit {
            Edit::Keep => Some(*days),
            Edit::Longer(more) => Some(days.saturating_add(*more).min(9999)),
            Edit::Shorter(less) => Some(days.saturating_sub(*less).max(1)),
            Edit::Remove => None,
        };
        weaker |= new.is_none_or(|new| new < *days);
        if let Some(new) = new {
            after.insert(slot.clone(), new);
        }
    }
    for (slot, days) in added.iter().filter(|(slot, _)| !before.contains_key(*slot)) {
        after.insert(slot.clone(), *days);
    }
    (after, weaker)
}

/// The units `days` can be written in, with the count in each.
fn exact_units(days: u32) -> impl Iterator<Item = (&'static RetentionUnit, u32)> {
    RETENTION_UNITS
        .iter()
        .filter(move |u| days.is_multiple_of(u.days) && days / u.days <= u.max)
        .map(move |u| (u, days / u.days))
}

/// Every way Azure lets one write `days`; `choice` picks one.
fn rs_duration(days: u32, choice: u8) -> Value {
    let options: Vec<Value> = exact_units(days)
        .map(|(u, count)| json!({"count": count, "durationType": u.name}))
        .collect();
    options[usize::from(choice) % options.len()].clone()
}

fn iso_duration(days: u32, choice: u8) -> String {
    let mut options: Vec<String> = exact_units(days)
        .map(|(u, count)| format!("P{count}{}", u.iso))
        .collect();
    if days > 365 && !days.is_multiple_of(365) {
        options.push(format!("P{}Y{}D", days / 365, days % 365));
    }
    options[usize::from(choice) % options.len()].clone()
}

/// A Recovery Services policy body with these slots: the top-level retention policy for scope "", a
/// sub-policy per other scope; a `simple` slot is a SimpleRetentionPolicy's own duration.
fn rs_policy_body(slots: &Slots, choice: u8, reverse: bool) -> Value {
    let mut policies: BTreeMap<&str, Value> = BTreeMap::new();
    for ((scope, schedule), days) in slots {
        let policy = policies.entry(scope).or_insert_with(|| json!({}));
        let duration = rs_duration(*days, choice);
        if schedule == "simple" {
            policy["retentionPolicyType"] = json!("SimpleRetentionPolicy");
            policy["retentionDuration"] = duration;
        } else {
            policy["retentionPolicyType"] = json!("LongTermRetentionPolicy");
            policy[format!("{schedule}Schedule")] = json!({"retentionDuration": duration, "retentionTimes": []});
        }
    }
    let mut body = json!({"properties": {"backupManagementType": "AzureWorkload"}});
    let mut subs = Vec::new();
    for (scope, policy) in policies {
        if scope.is_empty() {
            body["properties"]["retentionPolicy"] = policy;
        } else {
            subs.push(json!({"policyType": scope, "retentionPolicy": policy}));
        }
    }
    if reverse {
        subs.reverse();
    }
    if !subs.is_empty() {
        body["properties"]["subProtectionPolicy"] = Value::Array(subs);
    }
    body
}

fn backup_vault_policy_body(slots: &Slots, choice: u8, reverse: bool) -> Value {
    let mut rules: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for ((rule, store), days) in slots {
        rules.entry(rule).or_default().push(json!({
            "deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": iso_duration(*days, choice)},
            "sourceDataStore": {"dataStoreType": store, "objectType": "DataStoreInfoBase"},
        }));
    }
    let mut policy_rules = vec![json!({"name": "BackupDaily", "objectType": "AzureBackupRule"})];
    policy_rules.extend(
        rules.into_iter().map(
            |(name, lifecycles)| json!({"name": name, "objectType": "AzureRetentionRule", "lifecycles": lifecycles}),
        ),
    );
    if reverse {
        policy_rules.reverse();
    }
    json!({"properties": {"objectType": "BackupPolicy", "datasourceTypes": ["Microsoft.Compute/disks"], "policyRules": policy_rules}})
}

fn policy_body(kind: VaultKind, slots: &Slots, choice: u8, reverse: bool) -> Value {
    match kind {
        VaultKind::RecoveryServicesVault => rs_policy_body(slots, choice, reverse),
        VaultKind::BackupVault => backup_vault_policy_body(slots, choice, reverse),
    }
}

/// A policy before and after a random change, as bodies written in random units and order, and whether
/// the change keeps anything for less time.
#[derive(Clone, Debug)]
struct PolicyChange {
    kind: VaultKind,
    before: Value,
    after: Value,
    weaker: bool,
}

fn policy_change() -> impl Strategy<Value = PolicyChange> {
    vault_kind().prop_flat_map(|kind| {
        (
            slots(kind),
            proptest::collection::vec(edit(), 1..8),
            slots(kind),
            any::<(u8, u8, bool)>(),
        )
            .prop_map(move |(before, edits, added, (first, second, reverse))| {
                let (after, weaker) = apply_edits(&before, &edits, &added);
                PolicyChange {
                    kind,
                    before: policy_body(kind, &before, first, false),
                    after: policy_body(kind, &after, second, reverse),
                    weaker,
                }
            })
    })
}

/// The canonical reading of a body a client sent in any casing.
fn read<T>(body: &Value, seed: u64, parse: impl Fn(&Value) -> Result<T, ArmError>) -> T {
    let mut seed = seed;
    parse(&canonicalize(&recase(body, &mut seed)).unwrap()).unwrap()
}

/// Which policy an item names after a move: the same, another known one, a missing one, or none.
#[derive(Clone, Copy, Debug)]
enum Target {
    Same,
    Other,
    Missing,
    Nothing,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_vault_change_needs_the_guard_exactly_when_it_weakens(
        kind in vault_kind(),
        before in settings(),
        fresh in settings(),
        keep: [bool; 5],
        tags: (u8, u8),
        seed: u64,
    ) {
        let after = changed(&before, fresh, keep);
        let before_body = vault_body(kind, &before, tags.0);
        let after_body = vault_body(kind, &after, tags.1);
        let was = read(&before_body, seed, |b| VaultProtection::of(kind, b));
        let canonical = vault_weakenings(&was, &VaultProtection::of(kind, &after_body).unwrap());
        let recased = vault_weakenings(&was, &read(&after_body, seed.rotate_left(17), |b| VaultProtection::of(kind, b)));
        prop_assert_eq!(&canonical, &expected_vault_ops(kind, &before, &after));
        prop_assert_eq!(canonical, recased, "the casing of keys changes nothing");
    }

    #[test]
    fn a_policy_change_needs_the_guard_exactly_when_it_keeps_less(change in policy_change(), seed: u64) {
        let parse = |b: &Value| PolicyRetention::of(change.kind, b);
        let was = read(&change.before, seed, parse);
        let canonical = policy_weakening(&was, &parse(&change.after).unwrap());
        let recased = policy_weakening(&was, &read(&change.after, seed.rotate_left(17), parse));
        let expected = change.weaker.then_some(CriticalOperation::ModifyBackupPolicy);
        prop_assert_eq!(canonical, expected);
        prop_assert_eq!(canonical, recased, "the casing of keys changes nothing");
    }

    #[test]
    fn an_item_move_needs_the_guard_exactly_when_its_new_policy_keeps_less_or_is_unknown(
        change in policy_change(),
        before_known: bool,
        target in prop_oneof![Just(Target::Same), Just(Target::Other), Just(Target::Missing), Just(Target::Nothing)],
        seed: u64,
    ) {
        let parse = |b: &Value| PolicyRetention::of(change.kind, b);
        let was = before_known.then(|| read(&change.before, seed, parse));
        let before = ItemProtection::new(Some("/v/backupPolicies/a"), was.clone());
        let after = match target {
            Target::Same => ItemProtection::new(Some("/V/backupPolicies/A"), was),
            Target::Other => ItemProtection::new(Some("/v/backupPolicies/b"), Some(read(&change.after, seed, parse))),
            Target::Missing => ItemProtection::new(Some("/v/backupPolicies/gone"), None),
            Target::Nothing => ItemProtection::new(None, None),
        };
        let weaker = match target {
            Target::Same => false,
            Target::Other => before_known && change.weaker,
            Target::Missing | Target::Nothing => true,
        };
        prop_assert_eq!(item_weakening(&before, &after), weaker.then_some(CriticalOperation::ModifyProtection));
    }

    #[test]
    fn any_retention_number_is_read_or_refused_without_panicking(count: i64, unit in "[A-Za-z]{0,8}", iso in "[PpTt0-9YMWDHS]{0,12}", days: f64) {
        let rs = json!({"properties": {"retentionPolicy": {"retentionDuration": {"count": count, "durationType": unit}}}});
        let _ = PolicyRetention::of(RS, &rs);
        let bv = json!({"properties": {"policyRules": [{"lifecycles": [{"deleteAfter": {"duration": iso}}]}]}});
        let _ = PolicyRetention::of(BV, &bv);
        let vault_body = json!({"properties": {"securitySettings": {"softDeleteSettings": {"retentionDurationInDays": days}}}});
        let _ = VaultProtection::of(BV, &vault_body);
    }
}
