//! Policy: the rules a request is judged by — found from the security side's objects (the
//! ResourceGuard's `spec.elevation`, or the ElevationPolicy for a guard given by ARM ID), narrowed by the
//! VaultProtection (never widened), checked against the request's immutable spec, and bound to the
//! target first recorded, so an approval is for what the approver saw.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::azure::authorization;
use crate::azure::guards::GuardId;
use crate::controller::conditions::LINKED;
use crate::controller::{Context, Error, Reason, resource_guard, scope, vault_protection};
use crate::crd::critical_operation_request::{
    BlastRadius, CriticalOperationRequestStatus, EffectivePolicy, GrantTarget,
};
use crate::crd::elevation_policy::ElevationRules;
use crate::crd::shared::ApprovalBackend;
use crate::crd::vault_protection::GuardReference;
use crate::crd::{AzureScopeBinding, CriticalOperationRequest, ElevationPolicy, ResourceGuard, VaultProtection};
use crate::operations::{CriticalOperation, VaultKind};

/// The rules that apply to one request, resolved from the security side's objects and narrowed by the
/// VaultProtection.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub guard: GuardId,
    /// The VaultProtection's `metadata.uid` and its vault's ARM ID: what an approval is for.
    pub vault_protection_uid: String,
    pub vault: String,
    /// The exact change the request is for (its operation, and its action).
    pub change: String,
    pub guard_description: Option<String>,
    pub rules: ElevationRules,
    pub policy: EffectivePolicy,
    pub max_duration: Duration,
    /// How long an approval counts.
    pub approval_validity: Duration,
    /// Operations the guard does not protect (no elevation is needed or useful for them).
    pub excluded: Vec<CriticalOperation>,
    /// For a by-hand elevation: every vault on the guard and every operation the grant opens.
    pub blast_radius: Option<BlastRadius>,
}

impl Resolved {
    /// What a grant under these rules is for.
    pub fn target(&self) -> GrantTarget {
        GrantTarget {
            vault_protection_uid: self.vault_protection_uid.clone(),
            vault_id: self.vault.clone(),
            guard_id: self.guard.path(),
            change: self.change.clone(),
        }
    }
}

/// Why a request cannot go on. `fatal`: it never can (the spec is immutable): the request fails.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
    pub fatal: bool,
}

impl Refusal {
    pub(super) fn waiting(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            fatal: false,
        }
    }

    pub(super) fn fatal(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            fatal: true,
        }
    }
}

pub(super) fn is_service_account(user: &str) -> bool {
    user.starts_with("system:serviceaccount:")
}

/// A Go-style duration (`30m`, `1h30m`) as the CRDs accept it.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let parsed: jiff::SignedDuration = text.parse().ok()?;
    Duration::try_from(parsed).ok()
}

/// How long an approval counts under `rules` (the CRD's default when unreadable, which admission prevents).
pub(super) fn validity(rules: &ElevationRules) -> Duration {
    parse_duration(&rules.approval_validity).unwrap_or(Duration::from_secs(3600))
}

/// The rules for one request: the guard's, narrowed by its VaultProtection. A request created by a
/// ServiceAccount (a GitOps controller applying what someone committed) does not say who asked, and that
/// person may be one of the approvers, so "the approver is not the requester" cannot hold: it needs one
/// approval more than the rules say, so that two people always decide.
pub(super) fn narrowed(
    rules: &ElevationRules,
    vp: &VaultProtection,
    requester: Option<&str>,
) -> (EffectivePolicy, Duration) {
    let guard_max = parse_duration(&rules.max_duration).unwrap_or(Duration::from_secs(3600));
    let max = vp
        .spec
        .approval
        .max_duration
        .as_deref()
        .and_then(parse_duration)
        .map_or(guard_max, |vp_max| vp_max.min(guard_max));
    let required = rules
        .required_approvals
        .max(vp.spec.approval.required_approvals.unwrap_or(1))
        .clamp(1, 5)
        + i32::from(requester.is_some_and(is_service_account));
    let policy = EffectivePolicy {
        required_approvals: required,
        max_duration: jiff::SignedDuration::try_from(max)
            .map(|d| format!("{d:#}"))
            .unwrap_or_else(|_| rules.max_duration.clone()),
        approval_validity: rules.approval_validity.clone(),
        retention_days: Some(rules.retention_days),
        rules_from: String::new(),
        owner_namespace: String::new(),
        backend: rules.backend,
        role: rules.role,
    };
    (policy, max)
}

/// Finds the request's VaultProtection, its guard, and the security side's rules for that guard.
pub(super) async fn resolve(ctx: &Context, cor: &CriticalOperationRequest) -> Result<Result<Resolved, Refusal>, Error> {
    let namespace = cor.namespace().unwrap_or_default();
    let vps: Api<VaultProtection> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(vp) = vps.get_opt(&cor.spec.vault_protection).await? else {
        return Ok(Err(Refusal::waiting(
            Reason::VaultProtectionNotFound,
            format!(
                "the VaultProtection {} does not exist in this namespace",
                cor.spec.vault_protection
            ),
        )));
    };
    let Some(vault) = vault_protection::vault_id(&vp.spec.vault).map(|v| v.path()) else {
        return Ok(Err(Refusal::waiting(
            Reason::VaultNotFound,
            format!(
                "the VaultProtection {} names no vault: it needs vault.id, or the vault's kind, subscription, resource group and name",
                cor.spec.vault_protection
            ),
        )));
    };
    let vault_protection_uid = vp.uid().unwrap_or_default();
    // A vault linked to another guard would not be helped by an elevation on this one: nobody is elevated
    // for nothing.
    if let Some(linked) = vp.status.as_ref().and_then(|s| s.conditions.get(LINKED))
        && linked.reason == Reason::LinkedToOtherGuard.as_str()
    {
        return Ok(Err(Refusal::waiting(
            Reason::LinkedToOtherGuard,
            format!(
                "the vault of the VaultProtection {} is linked to another guard: {}",
                cor.spec.vault_protection, linked.message
            ),
        )));
    }
    // The operator performs actions with the Recovery Services backup API only.
    if cor.spec.action.is_some()
        && vault_protection::vault_id(&vp.spec.vault).is_some_and(|v| v.kind == VaultKind::BackupVault)
    {
        return Ok(Err(Refusal::fatal(
            Reason::RequestInvalid,
            format!(
                "spec.action is for Recovery Services vaults, and the VaultProtection {} protects a Backup vault: create a request without an action, naming the principal who does the operation by hand",
                cor.spec.vault_protection
            ),
        )));
    }
    // The guard the VaultProtection names: a ResourceGuard of its namespace, or an ARM ID.
    let guard = match &vp.spec.guard {
        GuardReference { name: Some(name), .. } => {
            let guards: Api<ResourceGuard> = Api::namespaced(ctx.client.clone(), &namespace);
            let Some(rg) = guards.get_opt(name).await? else {
                return Ok(Err(Refusal::waiting(
                    Reason::GuardNotFound,
                    format!("the ResourceGuard {name} named by the VaultProtection does not exist"),
                )));
            };
            resource_guard::guard_id(&rg.spec)
        }
        GuardReference {
            id: Some(id),
            tenant_id,
            ..
        } => match GuardId::parse(id) {
            Some(guard) => guard.in_tenant(tenant_id.as_deref()),
            None => {
                return Ok(Err(Refusal::fatal(
                    Reason::RequestInvalid,
                    format!("the VaultProtection's guard.id {id} is not a Resource Guard ID"),
                )));
            }
        },
        _ => {
            return Ok(Err(Refusal::fatal(
                Reason::RequestInvalid,
                "the VaultProtection names no guard",
            )));
        }
    };
    // The namespace may only reach what its AzureScopeBinding covers.
    let scope = scope::of(&ctx.client, &namespace).await?;
    if let Err(why) = scope
        .may_name("the vault", &vault)
        .and_then(|()| scope.may_name("the guard", &guard.path()))
    {
        return Ok(Err(Refusal::waiting(Reason::OutOfScope, why)));
    }
    let owner = match owner_rules(ctx, &guard).await? {
        Ok(owner) => owner,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let (mut policy, max_duration) = narrowed(&owner.rules, &vp, cor.spec.requester.as_deref());
    policy.rules_from = owner.from.clone();
    policy.owner_namespace = owner.namespace.clone();
    let blast_radius = match cor.spec.principal {
        Some(_) => Some(blast_radius(ctx, &guard, &vault, &owner.excluded).await?),
        None => None,
    };
    // A person's grant reaches every vault on the guard: that reach is part of what is approved, so a vault
    // linked to the guard afterwards changes the target (and fails the request).
    let change = match &blast_radius {
        Some(radius) => format!("{}; the grant opens {}", cor.spec.change(), radius.describe()),
        None => cor.spec.change(),
    };
    Ok(Ok(Resolved {
        guard,
        vault_protection_uid,
        vault,
        change,
        guard_description: owner
            .description
            .or_else(|| vp.status.as_ref().and_then(|s| s.guard_description.clone())),
        approval_validity: validity(&owner.rules),
        rules: owner.rules,
        policy,
        max_duration,
        excluded: owner.excluded,
        blast_radius,
    }))
}

/// What a grant on `guard` opens: every operation it protects, on every vault the cluster's
/// VaultProtections (in any namespace) link or declare linked to it, `vault` included.
async fn blast_radius(
    ctx: &Context,
    guard: &GuardId,
    vault: &str,
    excluded: &[CriticalOperation],
) -> Result<BlastRadius, Error> {
    let mut vaults: BTreeSet<String> = Api::<VaultProtection>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|vp| {
            vp.spec.guard.id.as_deref().is_some_and(|g| guard.is(g))
                || vp
                    .status
                    .as_ref()
                    .and_then(|s| s.guard_id.as_deref())
                    .is_some_and(|g| guard.is(g))
        })
        .filter_map(|vp| vault_protection::vault_id(&vp.spec.vault).map(|v| v.path()))
        .collect();
    vaults.insert(vault.to_string());
    let mut seen = BTreeSet::new();
    let vaults = vaults
        .into_iter()
        .filter(|v| seen.insert(v.to_ascii_lowercase()))
        .collect();
    Ok(BlastRadius {
        vaults,
        operations: CriticalOperation::all().filter(|op| !excluded.contains(op)).collect(),
    })
}

/// The guard owner's rules: the security side's objects in the one namespace that owns the guard.
struct OwnerRules {
    rules: ElevationRules,
    /// `ResourceGuard ns/name` or `ElevationPolicy ns/name`: where the rules come from.
    from: String,
    /// The namespace owning the guard, whose security identity grants on it.
    namespace: String,
    description: Option<String>,
    excluded: Vec<CriticalOperation>,
}

/// The rules of the guard's owner, never of the requester's namespace: the ResourceGuard that manages the
/// guard, or else the ElevationPolicy for it, each counted only in a namespace whose AzureScopeBinding
/// owns the guard (`guardScopes`). Two candidates of the same kind are a conflict: nobody is elevated.
async fn owner_rules(ctx: &Context, guard: &GuardId) -> Result<Result<OwnerRules, Refusal>, Error> {
    let bindings: Api<AzureScopeBinding> = Api::all(ctx.client.clone());
    let owning: BTreeSet<String> = bindings
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|b| b.spec.owns_guard(&guard.path()))
        .map(|b| b.name_any())
        .collect();
    let owned_here = |ns: Option<String>| ns.is_some_and(|ns| owning.contains(&ns));
    let managing: Vec<ResourceGuard> = Api::<ResourceGuard>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|rg| resource_guard::guard_id(&rg.spec).is(&guard.path()) && owned_here(rg.namespace()))
        .collect();
    let policies: Vec<ElevationPolicy> = Api::<ElevationPolicy>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|p| guard.is(&p.spec.guard_id) && owned_here(p.namespace()))
        .collect();
    let key = |kind: &str, ns: Option<String>, name: String| format!("{kind} {}/{name}", ns.unwrap_or_default());
    let conflict = |found: Vec<String>| {
        Refusal::waiting(
            Reason::ElevationRulesConflict,
            format!(
                "the guard {} has more than one owner's rules ({}): nobody is elevated on it until one namespace owns it and declares its rules once",
                guard.path(),
                found.join(", ")
            ),
        )
    };
    if managing.len() > 1 {
        let found = managing
            .into_iter()
            .map(|rg| key("ResourceGuard", rg.namespace(), rg.name_any()));
        return Ok(Err(conflict(found.collect())));
    }
    if let Some(rg) = managing.into_iter().next() {
        let from = key("ResourceGuard", rg.namespace(), rg.name_any());
        let Some(rules) = rg.spec.elevation.clone() else {
            return Ok(Err(Refusal::waiting(
                Reason::ElevationPolicyMissing,
                format!(
                    "the {from} that manages the guard has no spec.elevation: nobody can be elevated on it until a security admin declares who approves"
                ),
            )));
        };
        return Ok(Ok(OwnerRules {
            rules,
            from,
            namespace: rg.namespace().unwrap_or_default(),
            description: rg.spec.description.clone(),
            excluded: rg.spec.excluded_operations.clone(),
        }));
    }
    let mut policies = policies;
    let Some(policy) = policies.pop() else {
        return Ok(Err(Refusal::waiting(
            Reason::ElevationPolicyMissing,
            format!(
                "no ResourceGuard manages the guard {} and no ElevationPolicy for it is in a namespace that owns it: nobody can be elevated on that guard until its security admin declares the rules",
                guard.path()
            ),
        )));
    };
    if !policies.is_empty() {
        policies.push(policy);
        let found = policies
            .into_iter()
            .map(|p| key("ElevationPolicy", p.namespace(), p.name_any()));
        return Ok(Err(conflict(found.collect())));
    }
    Ok(Ok(OwnerRules {
        from: key("ElevationPolicy", policy.namespace(), policy.name_any()),
        namespace: policy.namespace().unwrap_or_default(),
        rules: policy.spec.rules,
        description: None,
        excluded: Vec::new(),
    }))
}

/// The request's VaultProtection, vault and guard as first recorded must still be what it names: an
/// object deleted and created again under the same name, or one now naming another vault or guard, is
/// not what the request was made (and approved) for. Pure.
pub(super) fn same_target(previous: &CriticalOperationRequestStatus, resolved: Resolved) -> Result<Resolved, Refusal> {
    match &previous.target {
        Some(recorded) if !recorded.matches(&resolved.target()) => Err(Refusal::fatal(
            Reason::VaultProtectionChanged,
            format!(
                "what this request is for changed since it was recorded (for the vault {} under the guard {}: {}): the VaultProtection was created again, names another vault or guard, or the guard now reaches other vaults; create a new request",
                recorded.vault_id, recorded.guard_id, recorded.change
            ),
        )),
        _ => Ok(resolved),
    }
}

/// Checks the immutable spec against the rules. Pure. `Ok`: the elevation's length.
pub fn check_spec(cor: &CriticalOperationRequest, resolved: &Resolved) -> Result<Duration, Refusal> {
    let spec = &cor.spec;
    let Some(requester) = spec.requester.as_deref().filter(|r| !r.trim().is_empty()) else {
        return Err(Refusal::fatal(
            Reason::RequestInvalid,
            "spec.requester is empty: the chart's admission policy fills it in with the creating user",
        ));
    };
    if resolved.excluded.contains(&spec.operation) {
        return Err(Refusal::fatal(
            Reason::RequestInvalid,
            format!(
                "the guard does not protect {} (it is in its excludedOperations): no elevation is needed for it",
                spec.operation
            ),
        ));
    }
    let Some(duration) = parse_duration(&spec.duration) else {
        return Err(Refusal::fatal(
            Reason::RequestInvalid,
            format!("duration {} is not a duration", spec.duration),
        ));
    };
    if duration > resolved.max_duration {
        return Err(Refusal::fatal(
            Reason::DurationTooLong,
            format!(
                "duration {} is longer than the {} the guard's rules allow: create a new request for at most {}",
                spec.duration, resolved.policy.max_duration, resolved.policy.max_duration
            ),
        ));
    }
    if let Some(principal) = &spec.principal {
        if !resolved.rules.by_hand.contains(&spec.operation) {
            return Err(Refusal::fatal(
                Reason::ByHandNotAllowed,
                format!(
                    "the guard's rules do not allow {} by hand (elevating a person): a grant on the guard would open every operation it protects on every vault linked to it; a security admin may list it in the rules' byHand",
                    spec.operation
                ),
            ));
        }
        let others: Vec<&String> = resolved
            .blast_radius
            .iter()
            .flat_map(|b| &b.vaults)
            .filter(|v| !v.eq_ignore_ascii_case(&resolved.vault))
            .collect();
        if resolved.rules.sole_vault && !others.is_empty() {
            return Err(Refusal::waiting(
                Reason::GuardProtectsOtherVaults,
                format!(
                    "the guard's rules allow a by-hand elevation only while the guard protects this vault alone, and it also protects {}",
                    others.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let allowed = resolved.rules.principals.iter().any(|p| {
            p.object_id.eq_ignore_ascii_case(&principal.object_id)
                && p.requesters.includes(requester, &spec.requester_groups)
        });
        if !allowed {
            return Err(Refusal::fatal(
                Reason::PrincipalNotAllowed,
                format!(
                    "the guard's rules do not allow {requester} to elevate the principal {}: ask a security admin to add it to the rules' principals",
                    principal.object_id
                ),
            ));
        }
    }
    if resolved.policy.backend == ApprovalBackend::Pim && spec.principal.is_some() {
        return Err(Refusal::fatal(
            Reason::RequestInvalid,
            "the guard's rules choose PIM: a person activates their own eligible assignment in Azure PIM; requests here are for the operations the operator performs itself",
        ));
    }
    Ok(duration)
}

/// Whether PIM's settings for the role on the guard keep two people in the loop: an approval is required,
/// by approvers who are neither the principal that activates (the operator's backup identity: PIM sees it
/// as the requestor) nor a principal the rules tie to the requester. Pure.
pub fn check_pim(
    approval: &authorization::ActivationApproval,
    activating: &str,
    requester_principals: &[String],
) -> Result<(), Refusal> {
    if !approval.required || approval.approvers.is_empty() {
        return Err(Refusal::waiting(
            Reason::PimApprovalNotRequired,
            "the role's PIM settings on the guard activate it without an approval: a security admin must require approval (by people other than the requester) before anyone is elevated",
        ));
    }
    let own = approval
        .approvers
        .iter()
        .find(|a| a.eq_ignore_ascii_case(activating) || requester_principals.iter().any(|p| p.eq_ignore_ascii_case(a)));
    if let Some(own) = own {
        return Err(Refusal::waiting(
            Reason::PimApproverIsRequester,
            format!(
                "PIM's approvers for the role include {own}, the activating identity or the requester's own principal, who could approve their own activation: a security admin must name other approvers"
            ),
        ));
    }
    Ok(())
}
