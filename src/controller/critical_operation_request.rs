//! The CriticalOperationRequest reconciler (security side): decides a request under the security side's
//! rules, grants the elevation with an Azure-side end time, and ends it the moment the operation is done,
//! the time is up, or someone revokes it. Same shape as every reconciler: observe (reads only) → decide
//! (pure) → apply (typed `azure::*` calls) → status (pure); results are reported by `outcome::report`.
//!
//! It trusts nothing a backup admin can write: the rules come from the ResourceGuard or the
//! ElevationPolicy (security admins' objects), the VaultProtection can only narrow them, every approval is
//! re-checked (approver ≠ requester, named by the rules, allowed by RBAC now), and nobody is elevated
//! while the admission policies that enforce the two-person rule are missing from the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::{Resource, ResourceExt};

use super::outcome::{self, Cleanup, Health, Notice, Outcome, Reported, Requeue, Summary};
use super::{Context, Error, Reason, admission, conditions, resource_guard, vault_protection, watch};
use crate::azure::authorization::{self, RequestType, ScheduleRequestSpec, ScheduleStatus};
use crate::azure::guards::GuardId;
use crate::crd::critical_operation_request::{
    Approval, CriticalOperationRequestStatus, Decision as Verdict, EffectivePolicy, Elevation, GrantTarget,
    RequestPhase, Transition,
};
use crate::crd::elevation_policy::{ElevationRole, ElevationRules};
use crate::crd::shared::{ApprovalBackend, Conditions};
use crate::crd::vault_protection::GuardReference;
use crate::crd::{CriticalOperationRequest, ElevationPolicy, ResourceGuard, VaultProtection};
use crate::operations::VaultKind;

pub const CONTROLLER: &str = "criticaloperationrequest";
const FINALIZER: &str = "mua.dev/elevation";
/// The actor recorded for what the operator itself decides.
pub const OPERATOR: &str = "mua-operator";

impl Reported for CriticalOperationRequest {
    type Status = CriticalOperationRequestStatus;
    const CONTROLLER: &'static str = CONTROLLER;

    fn status(&self) -> Option<&CriticalOperationRequestStatus> {
        self.status.as_ref()
    }

    fn conditions(status: &mut CriticalOperationRequestStatus) -> &mut Conditions {
        &mut status.conditions
    }

    fn set_observed_generation(status: &mut CriticalOperationRequestStatus, generation: Option<i64>) {
        status.observed_generation = generation;
    }

    /// People own their approval entries and the revocation: the operator never writes them back (a
    /// write of what it last read could undo a decision made meanwhile).
    fn written(status: &CriticalOperationRequestStatus) -> CriticalOperationRequestStatus {
        CriticalOperationRequestStatus {
            approvals: Vec::new(),
            revocation: None,
            ..status.clone()
        }
    }
}

/// The rules that apply to one request, resolved from the security side's objects and narrowed by the
/// VaultProtection.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub guard: GuardId,
    /// The VaultProtection's `metadata.uid` and its vault's ARM ID: what an approval is for.
    pub vault_protection_uid: String,
    pub vault: String,
    pub guard_description: Option<String>,
    pub rules: ElevationRules,
    pub policy: EffectivePolicy,
    pub max_duration: Duration,
    /// Operations the guard does not protect (no elevation is needed or useful for them).
    pub excluded: Vec<crate::operations::CriticalOperation>,
}

impl Resolved {
    /// What a grant under these rules is for.
    pub fn target(&self) -> GrantTarget {
        GrantTarget {
            vault_protection_uid: self.vault_protection_uid.clone(),
            vault_id: self.vault.clone(),
            guard_id: self.guard.path(),
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
    fn waiting(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            fatal: false,
        }
    }

    fn fatal(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            fatal: true,
        }
    }
}

fn is_service_account(user: &str) -> bool {
    user.starts_with("system:serviceaccount:")
}

/// A Go-style duration (`30m`, `1h30m`) as the CRDs accept it.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let parsed: jiff::SignedDuration = text.parse().ok()?;
    Duration::try_from(parsed).ok()
}

/// The rules for one request: the guard's, narrowed by its VaultProtection. A request created by a
/// ServiceAccount (a GitOps controller applying what someone committed) does not say who asked, and that
/// person may be one of the approvers, so "the approver is not the requester" cannot hold: it needs one
/// approval more than the rules say, so that two people always decide.
fn narrowed(rules: &ElevationRules, vp: &VaultProtection, requester: Option<&str>) -> (EffectivePolicy, Duration) {
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
        backend: rules.backend,
        role: rules.role,
    };
    (policy, max)
}

/// Finds the request's VaultProtection, its guard, and the security side's rules for that guard.
async fn resolve(ctx: &Context, cor: &CriticalOperationRequest) -> Result<Result<Resolved, Refusal>, Error> {
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
    if let Some(linked) = vp.status.as_ref().and_then(|s| s.conditions.get("Linked"))
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
    let resolved = match &vp.spec.guard {
        GuardReference { name: Some(name), .. } => {
            let guards: Api<ResourceGuard> = Api::namespaced(ctx.client.clone(), &namespace);
            let Some(rg) = guards.get_opt(name).await? else {
                return Ok(Err(Refusal::waiting(
                    Reason::GuardNotFound,
                    format!("the ResourceGuard {name} named by the VaultProtection does not exist"),
                )));
            };
            let Some(rules) = rg.spec.elevation.clone() else {
                return Ok(Err(Refusal::waiting(
                    Reason::ElevationPolicyMissing,
                    format!(
                        "the ResourceGuard {name} has no spec.elevation: nobody can be elevated on it until a security admin declares who approves"
                    ),
                )));
            };
            let (policy, max_duration) = narrowed(&rules, &vp, cor.spec.requester.as_deref());
            Resolved {
                guard: resource_guard::guard_id(&rg.spec),
                vault_protection_uid,
                vault,
                guard_description: rg.spec.description.clone(),
                rules,
                policy,
                max_duration,
                excluded: rg.spec.excluded_operations.clone(),
            }
        }
        GuardReference {
            id: Some(id),
            tenant_id,
            ..
        } => {
            let policies: Api<ElevationPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
            let found = policies
                .list(&ListParams::default())
                .await?
                .into_iter()
                .find(|p| p.spec.guard_id.eq_ignore_ascii_case(id));
            let Some(found) = found else {
                return Ok(Err(Refusal::waiting(
                    Reason::ElevationPolicyMissing,
                    format!(
                        "no ElevationPolicy in this namespace has guardId {id}: nobody can be elevated on that guard until a security admin creates one"
                    ),
                )));
            };
            let Some(guard) = GuardId::parse(id) else {
                return Ok(Err(Refusal::fatal(
                    Reason::RequestInvalid,
                    format!("the VaultProtection's guard.id {id} is not a Resource Guard ID"),
                )));
            };
            let (policy, max_duration) = narrowed(&found.spec.rules, &vp, cor.spec.requester.as_deref());
            Resolved {
                guard: guard.in_tenant(tenant_id.as_deref()),
                vault_protection_uid,
                vault,
                guard_description: vp.status.as_ref().and_then(|s| s.guard_description.clone()),
                rules: found.spec.rules,
                policy,
                max_duration,
                excluded: Vec::new(),
            }
        }
        _ => {
            return Ok(Err(Refusal::fatal(
                Reason::RequestInvalid,
                "the VaultProtection names no guard",
            )));
        }
    };
    Ok(Ok(resolved))
}

/// The request's VaultProtection, vault and guard as first recorded must still be what it names: an
/// object deleted and created again under the same name, or one now naming another vault or guard, is
/// not what the request was made (and approved) for. Pure.
fn same_target(previous: &CriticalOperationRequestStatus, resolved: Resolved) -> Result<Resolved, Refusal> {
    match &previous.target {
        Some(recorded) if !recorded.matches(&resolved.target()) => Err(Refusal::fatal(
            Reason::VaultProtectionChanged,
            format!(
                "the VaultProtection was created again or now names another vault or guard since this request was made (for the vault {} under the guard {}): create a new request",
                recorded.vault_id, recorded.guard_id
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

/// The approvals as the operator judges them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Judged {
    /// Distinct approvers whose approval counts.
    pub approvers: Vec<String>,
    /// A valid denial: who, and why.
    pub denied_by: Option<(String, Option<String>)>,
    /// Entries that do not count, each with why.
    pub ignored: Vec<String>,
}

/// Judges the approval entries. Pure: `may_approve` is what RBAC answered for each approver.
pub fn judge(
    approvals: &[Approval],
    requester: &str,
    rules: &ElevationRules,
    may_approve: &BTreeMap<String, bool>,
) -> Judged {
    let mut judged = Judged::default();
    let mut counted = BTreeSet::new();
    for entry in approvals {
        let who = &entry.approver;
        let why_not = if who == requester {
            Some("is the requester")
        } else if is_service_account(who) {
            Some("is a ServiceAccount; only people approve")
        } else if !rules.approvers.includes(who, &entry.groups) {
            Some("is not an approver under the guard's rules")
        } else if may_approve.get(who) != Some(&true) {
            Some("lacks the approve permission on this request")
        } else {
            None
        };
        if let Some(why) = why_not {
            judged.ignored.push(format!("{who} {why}"));
            continue;
        }
        match entry.decision {
            Verdict::Deny => {
                judged.denied_by.get_or_insert((who.clone(), entry.comment.clone()));
            }
            Verdict::Approve => {
                if counted.insert(who.clone()) {
                    judged.approvers.push(who.clone());
                }
            }
        }
    }
    judged
}

/// What the operator saw about one request.
#[derive(Clone, Debug)]
pub struct Observed {
    pub phase: RequestPhase,
    pub now: Timestamp,
    pub resolved: Result<Resolved, Refusal>,
    pub duration: Result<Duration, Refusal>,
    pub admission: Result<(), String>,
    pub judged: Judged,
    /// Another request holding an elevation for the same vault and operation.
    pub other_active: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// An elevation was granted and not yet ended.
    pub granted: bool,
    pub performed: bool,
    /// Why the backup side could not perform the request's action.
    pub action_failed: Option<String>,
    /// `(by, reason)`.
    pub revoked_by: Option<(String, Option<String>)>,
    /// The PIM backend: the activation request's status while it waits for Azure's approvers.
    pub pim: Option<ScheduleStatus>,
    /// Why a final request ended, from its last transition.
    pub ending: Option<(Reason, String)>,
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Nothing to do now.
    Wait {
        health: Health,
        reason: Reason,
        message: String,
        requeue: Requeue,
    },
    /// Grant the elevation (the approvals are in), then the request is Active.
    Grant { approvers: Vec<String> },
    /// PIM: the principal asks PIM to activate its eligible assignment; PIM's approvers decide.
    Activate,
    /// PIM activated the assignment: the request is Active from now.
    Provisioned,
    /// End the request in a final phase, revoking the elevation first if one is in force.
    End {
        phase: RequestPhase,
        actor: String,
        reason: Reason,
        message: String,
    },
}

fn end(phase: RequestPhase, actor: &str, reason: Reason, message: impl Into<String>) -> Decision {
    Decision::End {
        phase,
        actor: actor.to_string(),
        reason,
        message: message.into(),
    }
}

/// Decides what happens to a request. Pure, so every path is a unit test.
pub fn decide(o: &Observed) -> Decision {
    if o.phase.is_final() {
        return match o.granted {
            // A grant left over (a crash between revoking and recording it): end it again.
            true => end(o.phase, OPERATOR, Reason::Revoked, "ending an elevation left in force"),
            false => {
                // A final request keeps saying why it ended.
                let (reason, message) = o
                    .ending
                    .clone()
                    .unwrap_or((final_reason(o.phase), format!("the request is {:?}", o.phase)));
                Decision::Wait {
                    health: if o.phase == RequestPhase::Failed {
                        Health::Stalled
                    } else {
                        Health::Ready
                    },
                    reason,
                    message,
                    requeue: Requeue::OnChange,
                }
            }
        };
    }
    if let Some((by, reason)) = &o.revoked_by {
        let message = match reason {
            Some(reason) => format!("revoked by {by}: {reason}"),
            None => format!("revoked by {by}"),
        };
        return end(RequestPhase::Revoked, by, Reason::Revoked, message);
    }
    if let Some(status) = &o.pim
        && o.phase == RequestPhase::Pending
    {
        return follow_pim(status);
    }
    if o.phase == RequestPhase::Active || o.granted {
        if let Some(why) = &o.action_failed {
            return end(
                RequestPhase::Failed,
                OPERATOR,
                Reason::RequestFailed,
                format!("the operator could not perform the action: {why}; the elevation ended"),
            );
        }
        if o.performed {
            return end(
                RequestPhase::Completed,
                OPERATOR,
                Reason::Completed,
                "the operation was performed; the elevation ended",
            );
        }
        return match o.expires_at {
            Some(at) if at > o.now => Decision::Wait {
                health: Health::Ready,
                reason: Reason::Elevated,
                message: format!("elevated until {at}"),
                requeue: Requeue::At(at),
            },
            _ => end(
                RequestPhase::Expired,
                OPERATOR,
                Reason::Expired,
                "the elevation's time ran out; it was revoked",
            ),
        };
    }
    // Pending (or Approved before a grant was recorded).
    let resolved = match &o.resolved {
        Ok(resolved) => resolved,
        Err(refusal) => return refuse(refusal),
    };
    if let Err(refusal) = &o.duration {
        return refuse(refusal);
    }
    if let Some((by, comment)) = &o.judged.denied_by {
        let message = match comment {
            Some(comment) => format!("denied by {by}: {comment}"),
            None => format!("denied by {by}"),
        };
        return end(RequestPhase::Denied, by, Reason::Denied, message);
    }
    if let Err(missing) = &o.admission {
        return Decision::Wait {
            health: Health::Stalled,
            reason: Reason::AdmissionPoliciesMissing,
            message: format!(
                "nobody is elevated while the admission policies that enforce the two-person rule are missing: {missing}; a cluster admin must install them from the chart"
            ),
            requeue: Requeue::After(Duration::from_secs(30)),
        };
    }
    if resolved.policy.backend == ApprovalBackend::Pim {
        // PIM's approvers decide in Azure; the operator asks and follows.
        return match &o.other_active {
            Some(other) => another_active(other),
            None => Decision::Activate,
        };
    }
    let required = resolved.policy.required_approvals.max(1) as usize;
    if o.judged.approvers.len() < required {
        let mut message = format!(
            "{} of {required} approvals from the guard's approvers",
            o.judged.approvers.len()
        );
        if !o.judged.ignored.is_empty() {
            message.push_str(&format!("; not counted: {}", o.judged.ignored.join("; ")));
        }
        return Decision::Wait {
            health: Health::Waiting,
            reason: Reason::ApprovalPending,
            message,
            requeue: Requeue::OnChange,
        };
    }
    if let Some(other) = &o.other_active {
        return another_active(other);
    }
    Decision::Grant {
        approvers: o.judged.approvers.clone(),
    }
}

/// ARM's answer to a grant of a role the principal already holds at that scope.
const ASSIGNMENT_EXISTS: &str = "RoleAssignmentExists";

/// Azure already has an assignment this grant would be: another elevation the operator could not see (a
/// race with another request, or one made outside the operator). The request waits for it to end.
fn assigned_already(elevation: &Elevation) -> (Summary, Requeue) {
    let message = format!(
        "Azure already has an assignment of this role to {} on the guard (another elevation, or one made outside \
         the operator); this request waits until it ends (elevations are never merged or extended)",
        elevation.principal_id.as_deref().unwrap_or_default()
    );
    (
        summary(Health::Waiting, Reason::AnotherElevationActive, message),
        Requeue::After(Duration::from_secs(15)),
    )
}

fn another_active(other: &str) -> Decision {
    Decision::Wait {
        health: Health::Waiting,
        reason: Reason::AnotherElevationActive,
        message: format!("{other}; this one waits until it ends (elevations are never merged or extended)"),
        requeue: Requeue::After(Duration::from_secs(15)),
    }
}

/// Where a PIM activation request stands, as a decision.
fn follow_pim(status: &ScheduleStatus) -> Decision {
    use ScheduleStatus::*;
    match status {
        Provisioned | Granted | ScheduleCreated | AdminApproved => Decision::Provisioned,
        Denied | AdminDenied => end(
            RequestPhase::Denied,
            "PIM",
            Reason::Denied,
            "PIM's approvers denied the activation",
        ),
        TimedOut => end(
            RequestPhase::Expired,
            "PIM",
            Reason::Expired,
            "nobody approved the activation in PIM in time",
        ),
        Canceled | Revoked | Failed | FailedAsResourceIsLocked | Invalid => end(
            RequestPhase::Failed,
            "PIM",
            Reason::RequestFailed,
            format!("PIM ended the activation request: {status:?}"),
        ),
        other => Decision::Wait {
            health: Health::Waiting,
            reason: Reason::PendingApprovalInAzure,
            message: format!("waiting for PIM's approvers in Azure (the activation request is {other:?})"),
            requeue: Requeue::After(Duration::from_secs(10)),
        },
    }
}

fn refuse(refusal: &Refusal) -> Decision {
    if refusal.fatal {
        end(RequestPhase::Failed, OPERATOR, refusal.reason, refusal.message.clone())
    } else {
        Decision::Wait {
            health: Health::Stalled,
            reason: refusal.reason,
            message: refusal.message.clone(),
            requeue: Requeue::After(Duration::from_secs(30)),
        }
    }
}

fn final_reason(phase: RequestPhase) -> Reason {
    match phase {
        RequestPhase::Denied => Reason::Denied,
        RequestPhase::Completed => Reason::Completed,
        RequestPhase::Expired => Reason::Expired,
        RequestPhase::Revoked => Reason::Revoked,
        _ => Reason::RequestFailed,
    }
}

fn timestamp(time: &Option<Time>) -> Option<Timestamp> {
    time.as_ref().map(|t| t.0)
}

/// When an elevation of `duration` from `now` ends: on a whole second (what `metav1.Time` holds), so
/// the end in the status is the exact one the operator enforces; rounded down, never extended.
fn elevation_end(now: Timestamp, duration: Duration) -> Timestamp {
    let end = now + jiff::SignedDuration::try_from(duration).unwrap_or_default();
    Timestamp::from_second(end.as_second()).unwrap_or(end)
}

/// The principal the request elevates on `guard`: the one it names (done by hand), else the backup
/// side's identity in the guard's tenant, which performs the operation itself.
async fn principal_for(ctx: &Context, cor: &CriticalOperationRequest, guard: &GuardId) -> Result<String, Error> {
    if let Some(principal) = &cor.spec.principal {
        return Ok(principal.object_id.to_ascii_lowercase());
    }
    Ok(ctx.elevated_principal(guard.tenant.as_deref()).await?)
}

fn role_id(role: ElevationRole) -> &'static str {
    match role {
        ElevationRole::BackupMuaOperator => authorization::BACKUP_MUA_OPERATOR,
        ElevationRole::Contributor => authorization::CONTRIBUTOR,
    }
}

fn schedule_spec(
    cor: &CriticalOperationRequest,
    elevation: &Elevation,
    role: &str,
    request_type: RequestType,
    duration: Duration,
) -> ScheduleRequestSpec {
    // A name of its own per request and kind: asking again after a lost answer (or a failed status
    // write) finds the request already made, so a grant is never made twice.
    let name = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("mua.dev/{}/{request_type:?}", cor.uid().unwrap_or_default()).as_bytes(),
    );
    let idempotent = matches!(request_type, RequestType::AdminAssign | RequestType::SelfActivate);
    ScheduleRequestSpec {
        name: idempotent.then(|| name.to_string()),
        scope: elevation.scope.clone().unwrap_or_default(),
        tenant: elevation.tenant_id.clone(),
        role: role.to_string(),
        principal_id: elevation.principal_id.clone().unwrap_or_default(),
        request_type,
        duration,
        ends_at: None,
        // Who asked, for PIM's approvers: in Azure the operator's identity is the one activating.
        justification: format!(
            "{} for {} ({}/{}): {}",
            cor.spec.operation,
            cor.spec.requester.as_deref().unwrap_or("an unknown requester"),
            cor.namespace().unwrap_or_default(),
            cor.name_any(),
            cor.spec.justification
        ),
        ticket: cor.spec.ticket.as_ref().map(|t| (t.system.clone(), t.number.clone())),
    }
}

/// Ends the elevation in Azure: AdminRemove by the security side (Kubernetes backend); for PIM, cancels
/// an activation still waiting for approval or self-deactivates an active one. An assignment Azure already
/// removed at its end time counts as ended. `Ok(false)`: PIM refuses a deactivation this soon after the
/// activation; try again (Azure's end time bounds it meanwhile).
async fn revoke(
    ctx: &Context,
    cor: &CriticalOperationRequest,
    status: &CriticalOperationRequestStatus,
) -> Result<bool, Error> {
    let Some(elevation) = &status.elevation else {
        return Ok(true);
    };
    if status
        .policy
        .as_ref()
        .is_some_and(|p| p.backend == ApprovalBackend::Pim)
    {
        return revoke_pim(ctx, cor, status, elevation).await;
    }
    let role = elevation
        .role_definition_id
        .clone()
        .unwrap_or_else(|| authorization::BACKUP_MUA_OPERATOR.to_string());
    let spec = schedule_spec(cor, elevation, &role, RequestType::AdminRemove, Duration::ZERO);
    authorization::end_assignment(ctx.security(), &spec).await?;
    Ok(true)
}

async fn revoke_pim(
    ctx: &Context,
    cor: &CriticalOperationRequest,
    status: &CriticalOperationRequestStatus,
    elevation: &Elevation,
) -> Result<bool, Error> {
    let pim = ctx.pim_client().map_err(Error::Azure)?;
    if status.granted_at.is_none()
        && let Some(id) = &elevation.schedule_request_id
    {
        let request = authorization::get_schedule_request(pim, id).await?;
        if !matches!(request.status, ScheduleStatus::Provisioned | ScheduleStatus::Granted) {
            // Still waiting for PIM's approvers (or already over): cancel what can be cancelled; a
            // request PIM no longer holds open needs nothing more.
            return match authorization::cancel_schedule_request(pim, id).await {
                Ok(())
                | Err(crate::azure::AzureError::Arm {
                    status: 400 | 404 | 409,
                    ..
                }) => Ok(true),
                Err(err) => Err(err.into()),
            };
        }
    }
    let role = elevation.role_definition_id.clone().unwrap_or_default();
    let spec = schedule_spec(cor, elevation, &role, RequestType::SelfDeactivate, Duration::ZERO);
    match authorization::end_assignment(pim, &spec).await {
        Ok(()) => Ok(true),
        Err(err) if authorization::is_too_soon_to_deactivate(&err) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

fn transition(
    status: &mut CriticalOperationRequestStatus,
    phase: RequestPhase,
    actor: &str,
    reason: Reason,
    message: &str,
    now: Timestamp,
) {
    status.phase = Some(phase);
    status.history.push(Transition {
        phase,
        actor: actor.to_string(),
        time: Time(now),
        reason: Some(reason.as_str().to_string()),
        message: Some(message.to_string()),
    });
}

/// Another request holding an elevation now that this one's grant would merge with, and how: one for the
/// same VaultProtection and operation, or one of the same principal on the same guard (in any namespace
/// the operator serves). Azure keeps a single assignment per principal, role and scope, so a second grant
/// would be that one, and the first request's revocation would end both.
async fn other_active(ctx: &Context, cor: &CriticalOperationRequest, guard: &GuardId) -> Result<Option<String>, Error> {
    let principal = principal_for(ctx, cor, guard).await?;
    let scope = guard.path();
    let (namespace, name) = (cor.namespace(), cor.name_any());
    Ok(ctx
        .api::<CriticalOperationRequest>()
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|other| !(other.namespace() == namespace && other.name_any() == name))
        .find_map(|other| {
            let elevation = other.status.as_ref().filter(|s| holds_elevation(s))?.elevation.as_ref()?;
            let same_operation = other.namespace() == namespace
                && other.spec.vault_protection == cor.spec.vault_protection
                && other.spec.operation == cor.spec.operation;
            let same_grant = elevation.scope.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(&scope))
                && elevation
                    .principal_id
                    .as_deref()
                    .is_some_and(|p| p.eq_ignore_ascii_case(&principal));
            let other = outcome::key(&other);
            if same_operation {
                Some(format!("the request {other} holds an elevation for the same vault and operation"))
            } else if same_grant {
                Some(format!(
                    "the request {other} holds an elevation of the same principal on the same guard (Azure keeps one assignment per principal, role and scope, so the two would be one)"
                ))
            } else {
                None
            }
        }))
}

/// Whether a request's elevation is (or may still be) in force in Azure.
pub fn holds_elevation(status: &CriticalOperationRequestStatus) -> bool {
    status.elevation.is_some() && status.ended_at.is_none()
}

/// observe → decide → apply → status.
async fn converge(
    ctx: &Context,
    cor: &CriticalOperationRequest,
) -> Result<Outcome<CriticalOperationRequestStatus>, Error> {
    let now = ctx.clock.now();
    let previous = cor.status.clone().unwrap_or_default();
    let phase = previous.phase.unwrap_or(RequestPhase::Pending);
    let mut observed = Observed {
        phase,
        now,
        resolved: Err(Refusal::waiting(Reason::RequestFailed, "not resolved")),
        duration: Err(Refusal::waiting(Reason::RequestFailed, "not checked")),
        admission: Ok(()),
        judged: Judged::default(),
        other_active: None,
        expires_at: timestamp(&previous.expires_at),
        granted: holds_elevation(&previous),
        performed: previous.performed_at.is_some(),
        action_failed: previous.action_failed.clone(),
        revoked_by: previous.revocation.as_ref().map(|r| (r.by.clone(), r.reason.clone())),
        pim: None,
        ending: previous.history.last().and_then(|t| {
            let reason = Reason::parse(t.reason.as_deref()?)?;
            Some((reason, t.message.clone().unwrap_or_default()))
        }),
    };
    let pim_pending = phase == RequestPhase::Pending
        && previous.granted_at.is_none()
        && previous
            .policy
            .as_ref()
            .is_some_and(|p| p.backend == ApprovalBackend::Pim);
    if pim_pending && let Some(id) = previous.elevation.as_ref().and_then(|e| e.schedule_request_id.clone()) {
        let pim = ctx.pim_client().map_err(Error::Azure)?;
        observed.pim = Some(authorization::get_schedule_request(pim, &id).await?.status);
    }
    // Only an undecided request needs its rules, approvals and the admission policies looked at.
    let undecided = !phase.is_final() && !observed.granted && observed.pim.is_none();
    if undecided && observed.revoked_by.is_none() {
        observed.resolved = resolve(ctx, cor)
            .await
            .map(|r| r.and_then(|r| same_target(&previous, r)))?;
        if let Ok(resolved) = &observed.resolved {
            observed.duration = check_spec(cor, resolved);
            let requester = cor.spec.requester.clone().unwrap_or_default();
            let namespace = cor.namespace().unwrap_or_default();
            let mut may = BTreeMap::new();
            for entry in &previous.approvals {
                let allowed =
                    admission::may_approve(&ctx.client, &namespace, &cor.name_any(), &entry.approver, &entry.groups)
                        .await?;
                may.insert(entry.approver.clone(), allowed);
            }
            observed.judged = judge(&previous.approvals, &requester, &resolved.rules, &may);
            observed.admission = ctx.admission.verify(&ctx.client).await;
            // Only a request about to be elevated needs to know whether another one holds an elevation.
            let pim = resolved.policy.backend == ApprovalBackend::Pim;
            if pim || observed.judged.approvers.len() >= resolved.policy.required_approvals as usize {
                observed.other_active = other_active(ctx, cor, &resolved.guard).await?;
            }
        }
    }

    let decision = decide(&observed);
    let mut status = previous.clone();
    if let Ok(resolved) = &observed.resolved {
        status.policy = Some(resolved.policy.clone());
        status.guard_description = resolved.guard_description.clone();
        // What the request is for, from the first time it is seen whole: approvers decide on this.
        status.target.get_or_insert_with(|| resolved.target());
    }
    let mut notices = Vec::new();
    let (summary, requeue) = match decision {
        Decision::Wait {
            health,
            reason,
            message,
            requeue,
        } => {
            if phase == RequestPhase::Pending && previous.phase.is_none() {
                transition(
                    &mut status,
                    RequestPhase::Pending,
                    OPERATOR,
                    reason,
                    "request received",
                    now,
                );
            }
            (summary(health, reason, message), requeue)
        }
        Decision::Grant { approvers } => 'grant: {
            let resolved = observed.resolved.as_ref().expect("granted only when resolved");
            let duration = *observed.duration.as_ref().expect("granted only when valid");
            let elevation = Elevation {
                principal_id: Some(principal_for(ctx, cor, &resolved.guard).await?),
                scope: Some(resolved.guard.path()),
                tenant_id: resolved.guard.tenant.clone(),
                role_definition_id: Some(role_id(resolved.policy.role).to_string()),
                ..Default::default()
            };
            let role = role_id(resolved.policy.role);
            let expires = elevation_end(now, duration);
            let spec = ScheduleRequestSpec {
                ends_at: Some(expires),
                ..schedule_spec(cor, &elevation, role, RequestType::AdminAssign, duration)
            };
            let granted = match authorization::request_schedule(ctx.security(), &spec).await {
                // Still Pending: approved, but nothing is granted while Azure holds another assignment.
                Err(err) if err.code() == Some(ASSIGNMENT_EXISTS) => break 'grant assigned_already(&elevation),
                granted => granted?,
            };
            let actor = approvers.join(", ");
            let message = format!("approved by {actor}");
            transition(
                &mut status,
                RequestPhase::Approved,
                &actor,
                Reason::Approved,
                &message,
                now,
            );
            notices.push(Notice::normal("Approved", message));
            // A grant asked again (its first answer or status write was lost) keeps the first end.
            let expires = granted.ends_at.map_or(expires, |azure| azure.min(expires));
            status.elevation = Some(Elevation {
                schedule_request_id: Some(granted.id),
                ..elevation
            });
            status.granted_at = Some(Time(now));
            status.expires_at = Some(Time(expires));
            let message = format!(
                "granted {} on the guard to {} until {expires} (Azure ends it then even if the operator is down)",
                resolved.policy.role.azure_name(),
                status
                    .elevation
                    .as_ref()
                    .and_then(|e| e.principal_id.clone())
                    .unwrap_or_default()
            );
            transition(
                &mut status,
                RequestPhase::Active,
                OPERATOR,
                Reason::Elevated,
                &message,
                now,
            );
            notices.push(Notice::normal("Elevated", message.clone()));
            (summary(Health::Ready, Reason::Elevated, message), Requeue::At(expires))
        }
        Decision::Activate => 'activate: {
            let resolved = observed.resolved.as_ref().expect("activated only when resolved");
            let duration = *observed.duration.as_ref().expect("activated only when valid");
            let role = role_id(resolved.policy.role);
            let elevation = Elevation {
                principal_id: Some(principal_for(ctx, cor, &resolved.guard).await?),
                scope: Some(resolved.guard.path()),
                tenant_id: resolved.guard.tenant.clone(),
                role_definition_id: Some(role.to_string()),
                ..Default::default()
            };
            let spec = schedule_spec(cor, &elevation, role, RequestType::SelfActivate, duration);
            let pim = ctx.pim_client().map_err(Error::Azure)?;
            let submitted = match authorization::request_schedule(pim, &spec).await {
                Err(err) if err.code() == Some(ASSIGNMENT_EXISTS) => break 'activate assigned_already(&elevation),
                submitted => submitted?,
            };
            status.elevation = Some(Elevation {
                schedule_request_id: Some(submitted.id),
                ..elevation
            });
            let message = format!(
                "asked PIM to activate {} on the guard for {}; PIM's approvers decide in Azure",
                resolved.policy.role.azure_name(),
                cor.spec.duration
            );
            if previous.phase.is_none() {
                transition(
                    &mut status,
                    RequestPhase::Pending,
                    OPERATOR,
                    Reason::PendingApprovalInAzure,
                    &message,
                    now,
                );
            }
            notices.push(Notice::normal("ActivationRequested", message.clone()));
            match follow_pim(&submitted.status) {
                // PIM's policy asks for no approval: active at once.
                Decision::Provisioned => activated(&mut status, cor, now, &mut notices),
                _ => (
                    summary(Health::Waiting, Reason::PendingApprovalInAzure, message),
                    Requeue::After(Duration::from_secs(10)),
                ),
            }
        }
        Decision::Provisioned => activated(&mut status, cor, now, &mut notices),
        Decision::End {
            phase: final_phase,
            actor,
            reason,
            message,
        } => {
            if !revoke(ctx, cor, &status).await? {
                let waiting = Summary::waiting(
                    Reason::DeactivationRefused,
                    "PIM refuses to deactivate within five minutes of the activation; the operator keeps trying (Azure's end time bounds the elevation meanwhile)",
                );
                set_conditions(&mut status, cor.meta().generation, now, &waiting);
                return Ok(Outcome {
                    status,
                    summary: waiting,
                    requeue: Requeue::After(Duration::from_secs(30)),
                    notices,
                });
            }
            // When the elevation ended: after Azure took the removal, not when this reconcile began.
            let ended = ctx.clock.now();
            if status.elevation.is_some() && status.ended_at.is_none() {
                status.ended_at = Some(Time(ended));
            }
            if status.phase != Some(final_phase) {
                transition(&mut status, final_phase, &actor, reason, &message, ended);
                notices.push(if final_phase == RequestPhase::Failed {
                    Notice::warning("Failed", message.clone())
                } else {
                    Notice::normal(final_reason(final_phase).as_str(), message.clone())
                });
            }
            let health = if final_phase == RequestPhase::Failed {
                Health::Stalled
            } else {
                Health::Ready
            };
            (summary(health, reason, message), Requeue::OnChange)
        }
    };
    set_conditions(&mut status, cor.meta().generation, now, &summary);
    Ok(Outcome {
        status,
        summary,
        requeue,
        notices,
    })
}

/// PIM activated the assignment: the request is Active from now, for its duration.
fn activated(
    status: &mut CriticalOperationRequestStatus,
    cor: &CriticalOperationRequest,
    now: Timestamp,
    notices: &mut Vec<Notice>,
) -> (Summary, Requeue) {
    let duration = parse_duration(&cor.spec.duration).unwrap_or_default();
    let expires = elevation_end(now, duration);
    transition(
        status,
        RequestPhase::Approved,
        "PIM",
        Reason::Approved,
        "approved in PIM",
        now,
    );
    status.granted_at = Some(Time(now));
    status.expires_at = Some(Time(expires));
    let message = format!("PIM activated the assignment until {expires}");
    transition(status, RequestPhase::Active, OPERATOR, Reason::Elevated, &message, now);
    notices.push(Notice::normal("Elevated", message.clone()));
    (summary(Health::Ready, Reason::Elevated, message), Requeue::At(expires))
}

fn summary(health: Health, reason: Reason, message: String) -> Summary {
    match health {
        Health::Ready => Summary::ready(reason, message),
        Health::Waiting => Summary::waiting(reason, message),
        Health::Stalled => Summary::stalled(reason, message),
    }
}

/// `Approved` and `Elevated`, from the phase and the elevation. Pure.
fn set_conditions(
    status: &mut CriticalOperationRequestStatus,
    generation: Option<i64>,
    now: Timestamp,
    summary: &Summary,
) {
    let phase = status.phase.unwrap_or(RequestPhase::Pending);
    let approved = matches!(
        phase,
        RequestPhase::Approved | RequestPhase::Active | RequestPhase::Completed | RequestPhase::Expired
    ) || (phase == RequestPhase::Revoked && status.granted_at.is_some());
    let (approved_reason, approved_message) = match phase {
        RequestPhase::Pending => (summary.reason, summary.message.as_str()),
        RequestPhase::Denied => (Reason::Denied, summary.message.as_str()),
        RequestPhase::Failed => (Reason::RequestFailed, summary.message.as_str()),
        _ if approved => (Reason::Approved, "the required approvals were given"),
        _ => (final_reason(phase), "the request ended before it was approved"),
    };
    conditions::set(
        &mut status.conditions,
        "Approved",
        approved,
        approved_reason,
        approved_message,
        generation,
        now,
    );
    let elevated = holds_elevation(status);
    let (reason, message) = if elevated {
        (Reason::Elevated, "the elevation is in force in Azure")
    } else if status.ended_at.is_some() {
        (final_reason(phase), "the elevation has ended")
    } else {
        (Reason::NotElevated, "no elevation was granted")
    };
    conditions::set(
        &mut status.conditions,
        "Elevated",
        elevated,
        reason,
        message,
        generation,
        now,
    );
}

/// On delete: an elevation in force is revoked before the object may go.
async fn cleanup(
    ctx: &Context,
    cor: &CriticalOperationRequest,
) -> Result<Cleanup<CriticalOperationRequestStatus>, Error> {
    let status = cor.status.clone().unwrap_or_default();
    if holds_elevation(&status) {
        revoke(ctx, cor, &status).await?;
        tracing::info!(request = %outcome::key(cor), "revoked the elevation of a deleted request");
    }
    Ok(Cleanup::Done)
}

async fn reconcile(cor: Arc<CriticalOperationRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The finalizer stays while an elevation may be in force, so deleting the request revokes it first.
    let status = cor.status.clone().unwrap_or_default();
    let needs_finalizer = !status.phase.is_some_and(RequestPhase::is_final) || holds_elevation(&status);
    outcome::lifecycle(
        &ctx,
        &*cor,
        FINALIZER,
        needs_finalizer,
        || cleanup(&ctx, &cor),
        || converge(&ctx, &cor),
    )
    .await
}

/// What wakes a request: its spec, deletion, a reconcile request, and what people write into its status
/// (approvals, revocation) or the backup side records (the operation performed).
fn trigger(cor: &CriticalOperationRequest) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    cor.meta().generation.hash(&mut hasher);
    cor.meta().deletion_timestamp.is_some().hash(&mut hasher);
    cor.annotations().get(watch::RECONCILE_REQUEST).hash(&mut hasher);
    if let Some(status) = &cor.status {
        serde_json::to_string(&status.approvals)
            .unwrap_or_default()
            .hash(&mut hasher);
        serde_json::to_string(&status.revocation)
            .unwrap_or_default()
            .hash(&mut hasher);
        status.performed_at.is_some().hash(&mut hasher);
        status.action_failed.hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// The start-up sweep: every elevation role the elevated principal holds directly on a guard the cluster
/// knows, with no request holding it, is removed — a request deleted while the operator was down (its
/// finalizer forced away) leaves no grant behind. Grants whose time has passed are ended by the first
/// reconcile of their request, which the initial list triggers for every request.
pub async fn sweep(ctx: &Context) -> Result<usize, Error> {
    // Only grants older than the sweep: one the controller makes meanwhile is recorded by its request.
    let started = ctx.clock.now();
    let mut scopes: Vec<GuardId> = ctx
        .api::<ResourceGuard>()
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|rg| rg.spec.elevation.is_some())
        .map(|rg| resource_guard::guard_id(&rg.spec))
        .collect();
    for policy in ctx.api::<ElevationPolicy>().list(&ListParams::default()).await? {
        if let Some(id) = GuardId::parse(&policy.spec.guard_id) {
            scopes.push(id);
        }
    }
    // No elevation rules, no elevations to look for (and no need to know whom they would elevate).
    if scopes.is_empty() {
        return Ok(0);
    }
    let held: Vec<String> = ctx
        .api::<CriticalOperationRequest>()
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter_map(|cor| cor.status)
        .filter(holds_elevation)
        .filter_map(|s| s.elevation.and_then(|e| e.scope))
        .collect();
    let mut removed = 0;
    for guard in scopes {
        let scope = guard.path();
        if held.iter().any(|h| h.eq_ignore_ascii_case(&scope)) {
            continue;
        }
        let principal = ctx.elevated_principal(guard.tenant.as_deref()).await?;
        let tenant = guard.tenant.as_deref();
        let assignments = match authorization::list_for_principal_in(ctx.security(), tenant, &scope, &principal).await {
            Ok(list) => list,
            // A guard that is gone, or one this identity cannot read: nothing it could have granted there.
            Err(err) => {
                tracing::debug!(guard = %scope, %err, "sweep: cannot list role assignments");
                continue;
            }
        };
        for assignment in assignments {
            let elevation_role = [authorization::BACKUP_MUA_OPERATOR, authorization::CONTRIBUTOR]
                .iter()
                .any(|r| assignment.role.eq_ignore_ascii_case(r));
            let older = assignment.created_on.is_some_and(|t| t < started);
            if !elevation_role || !older || !assignment.scope.eq_ignore_ascii_case(&scope) {
                continue;
            }
            let spec = ScheduleRequestSpec {
                name: None,
                scope: scope.clone(),
                tenant: guard.tenant.clone(),
                role: assignment.role.clone(),
                principal_id: principal.clone(),
                request_type: RequestType::AdminRemove,
                duration: Duration::ZERO,
                ends_at: None,
                justification: "mua-operator start-up sweep: no CriticalOperationRequest holds this elevation".into(),
                ticket: None,
            };
            authorization::end_assignment(ctx.security(), &spec).await?;
            tracing::warn!(guard = %scope, role = %assignment.role, %principal, "removed an elevation no request holds");
            removed += 1;
        }
    }
    Ok(removed)
}

/// Runs the CriticalOperationRequest controller until `shutdown` resolves, after the start-up sweep.
pub async fn run(
    api: Api<CriticalOperationRequest>,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let sweeping = Arc::clone(&ctx);
    tokio::spawn(async move {
        if let Err(err) = sweep(&sweeping).await {
            tracing::warn!(reason = %err.reason(), %err, "start-up sweep of elevations failed");
        }
    });
    let (reader, stream) = watch::objects_with_trigger(api, &ctx, trigger);
    let mut controller =
        Controller::for_stream(stream, reader).with_config(Config::default().concurrency(ctx.config.concurrency));
    // An elevation's end is a moment on the context's clock: when that clock jumps (the simulator's),
    // every request is looked at again, as its timer, set in real time, would not fire.
    if let Some(jumps) = ctx.clock.jumps() {
        controller = controller.reconcile_all_on(futures::stream::unfold(jumps, |mut jumps| async move {
            jumps.changed().await.ok().map(|()| ((), jumps))
        }));
    }
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, outcome::error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::elevation_policy::Subjects;
    use serde_json::json;

    fn rules() -> ElevationRules {
        serde_json::from_value(
            json!({"approvers": {"groups": ["mua-approvers"], "users": ["carol"]}, "requiredApprovals": 2}),
        )
        .unwrap()
    }

    fn approval(who: &str, groups: &[&str], decision: Verdict) -> Approval {
        Approval {
            approver: who.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            decision,
            time: Time(Timestamp::UNIX_EPOCH),
            comment: None,
        }
    }

    fn rbac(allowed: &[&str]) -> BTreeMap<String, bool> {
        allowed.iter().map(|a| (a.to_string(), true)).collect()
    }

    #[test]
    fn the_requester_never_counts_as_an_approver() {
        let judged = judge(
            &[approval("bob", &["mua-approvers"], Verdict::Approve)],
            "bob",
            &rules(),
            &rbac(&["bob"]),
        );
        assert!(judged.approvers.is_empty());
        assert_eq!(judged.ignored, ["bob is the requester"]);
    }

    #[test]
    fn an_approval_counts_only_from_a_named_approver_whom_rbac_allows() {
        let entries = [
            approval("alice", &["mua-approvers"], Verdict::Approve),
            approval("mallory", &["backup-admins"], Verdict::Approve),
            approval("carol", &[], Verdict::Approve),
            approval("dave", &["mua-approvers"], Verdict::Approve),
            approval(
                "system:serviceaccount:argocd:argocd-application-controller",
                &["mua-approvers"],
                Verdict::Approve,
            ),
        ];
        let judged = judge(
            &entries,
            "bob",
            &rules(),
            &rbac(&[
                "alice",
                "mallory",
                "carol",
                "system:serviceaccount:argocd:argocd-application-controller",
            ]),
        );
        assert_eq!(judged.approvers, ["alice", "carol"]);
        assert_eq!(judged.ignored.len(), 3, "{:?}", judged.ignored);
    }

    #[test]
    fn a_valid_denial_wins_and_an_invalid_one_does_not() {
        let entries = [
            approval("alice", &["mua-approvers"], Verdict::Approve),
            approval("bob", &["mua-approvers"], Verdict::Deny),
        ];
        let judged = judge(&entries, "bob", &rules(), &rbac(&["alice", "bob"]));
        assert_eq!(
            judged.denied_by, None,
            "the requester cannot deny on others' behalf either"
        );
        let entries = [approval("carol", &[], Verdict::Deny)];
        let judged = judge(&entries, "bob", &rules(), &rbac(&["carol"]));
        assert_eq!(judged.denied_by, Some(("carol".into(), None)));
    }

    fn resolved() -> Resolved {
        Resolved {
            guard: GuardId::new("s", "rg", "g"),
            vault_protection_uid: "uid-1".into(),
            vault: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v".into(),
            guard_description: None,
            rules: rules(),
            policy: EffectivePolicy {
                required_approvals: 2,
                max_duration: "1h".into(),
                backend: ApprovalBackend::Kubernetes,
                role: ElevationRole::BackupMuaOperator,
            },
            max_duration: Duration::from_secs(3600),
            excluded: Vec::new(),
        }
    }

    fn observed() -> Observed {
        Observed {
            phase: RequestPhase::Pending,
            now: Timestamp::from_second(1_000_000).unwrap(),
            resolved: Ok(resolved()),
            duration: Ok(Duration::from_secs(600)),
            admission: Ok(()),
            judged: Judged {
                approvers: vec!["alice".into(), "carol".into()],
                ..Default::default()
            },
            other_active: None,
            expires_at: None,
            granted: false,
            performed: false,
            action_failed: None,
            revoked_by: None,
            pim: None,
            ending: None,
        }
    }

    #[test]
    fn enough_valid_approvals_grant() {
        assert_eq!(
            decide(&observed()),
            Decision::Grant {
                approvers: vec!["alice".into(), "carol".into()]
            }
        );
    }

    #[test]
    fn too_few_approvals_wait() {
        let mut o = observed();
        o.judged.approvers.pop();
        assert!(matches!(
            decide(&o),
            Decision::Wait {
                reason: Reason::ApprovalPending,
                ..
            }
        ));
    }

    #[test]
    fn nobody_is_elevated_without_the_admission_policies() {
        let mut o = observed();
        o.admission = Err("ValidatingAdmissionPolicy x".into());
        assert!(matches!(
            decide(&o),
            Decision::Wait {
                health: Health::Stalled,
                reason: Reason::AdmissionPoliciesMissing,
                ..
            }
        ));
    }

    #[test]
    fn a_second_elevation_for_the_same_operation_waits_and_is_never_merged() {
        let mut o = observed();
        o.other_active = Some("first".into());
        assert!(matches!(
            decide(&o),
            Decision::Wait {
                reason: Reason::AnotherElevationActive,
                ..
            }
        ));
    }

    #[test]
    fn an_active_elevation_ends_at_its_time_exactly() {
        let mut o = observed();
        o.phase = RequestPhase::Active;
        o.granted = true;
        o.expires_at = Some(o.now + jiff::SignedDuration::from_secs(90));
        assert!(matches!(decide(&o), Decision::Wait { requeue: Requeue::At(at), .. } if Some(at) == o.expires_at));
        o.expires_at = Some(o.now);
        assert!(matches!(
            decide(&o),
            Decision::End {
                phase: RequestPhase::Expired,
                ..
            }
        ));
    }

    #[test]
    fn a_performed_operation_completes_and_a_revocation_ends_at_once() {
        let mut o = observed();
        o.phase = RequestPhase::Active;
        o.granted = true;
        o.expires_at = Some(o.now + jiff::SignedDuration::from_secs(90));
        o.performed = true;
        assert!(matches!(
            decide(&o),
            Decision::End {
                phase: RequestPhase::Completed,
                ..
            }
        ));
        o.revoked_by = Some(("bob".into(), None));
        assert!(matches!(decide(&o), Decision::End { phase: RequestPhase::Revoked, ref actor, .. } if actor == "bob"));
    }

    #[test]
    fn an_action_the_backup_side_could_not_perform_fails_the_request_and_ends_the_grant() {
        let mut o = observed();
        o.phase = RequestPhase::Active;
        o.granted = true;
        o.expires_at = Some(o.now + jiff::SignedDuration::from_secs(90));
        o.action_failed = Some("the vault has no protected item x".into());
        assert!(matches!(
            decide(&o),
            Decision::End { phase: RequestPhase::Failed, ref message, .. } if message.contains("no protected item x")
        ));
    }

    #[test]
    fn a_request_longer_than_the_rules_allow_fails() {
        let cor: CriticalOperationRequest = serde_json::from_value(json!({
            "apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "r"},
            "spec": {"vaultProtection": "vp", "operation": "DisableSoftDelete", "duration": "2h", "justification": "j", "requester": "bob"}
        }))
        .unwrap();
        let refusal = check_spec(&cor, &resolved()).unwrap_err();
        assert_eq!((refusal.reason, refusal.fatal), (Reason::DurationTooLong, true));
    }

    #[test]
    fn a_request_stays_bound_to_what_it_was_made_for() {
        let mut previous = CriticalOperationRequestStatus::default();
        assert!(same_target(&previous, resolved()).is_ok(), "nothing recorded yet");
        previous.target = Some(GrantTarget {
            vault_id: resolved().target().vault_id.to_uppercase(),
            ..resolved().target()
        });
        assert!(same_target(&previous, resolved()).is_ok(), "ARM IDs in any casing");
        for changed in [
            Resolved {
                vault_protection_uid: "uid-2".into(),
                ..resolved()
            },
            Resolved {
                vault: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/w".into(),
                ..resolved()
            },
            Resolved {
                guard: GuardId::new("s", "rg", "other"),
                ..resolved()
            },
        ] {
            let refusal = same_target(&previous, changed).unwrap_err();
            assert_eq!((refusal.reason, refusal.fatal), (Reason::VaultProtectionChanged, true));
        }
    }

    #[test]
    fn azure_is_told_who_asked() {
        let cor: CriticalOperationRequest = serde_json::from_value(json!({
            "apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "r", "namespace": "team"},
            "spec": {"vaultProtection": "vp", "operation": "DisableSoftDelete", "duration": "10m", "justification": "decommission",
                     "requester": "alice@contoso.example"}
        }))
        .unwrap();
        let spec = schedule_spec(
            &cor,
            &Elevation::default(),
            "role",
            RequestType::SelfActivate,
            Duration::from_secs(600),
        );
        assert_eq!(
            spec.justification,
            "DisableSoftDelete for alice@contoso.example (team/r): decommission"
        );
    }

    #[test]
    fn a_principal_outside_the_rules_is_refused() {
        let cor: CriticalOperationRequest = serde_json::from_value(json!({
            "apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "r"},
            "spec": {"vaultProtection": "vp", "operation": "ChangeMarsSecurityPin", "duration": "10m", "justification": "j",
                     "requester": "bob", "requesterGroups": ["backup-admins"], "principal": {"objectId": "9f2c1d4e-5b6a-4c3d-8e7f-0a1b2c3d4e5f"}}
        }))
        .unwrap();
        let mut r = resolved();
        assert_eq!(check_spec(&cor, &r).unwrap_err().reason, Reason::PrincipalNotAllowed);
        r.rules.principals.push(crate::crd::elevation_policy::AllowedPrincipal {
            object_id: "9F2C1D4E-5B6A-4C3D-8E7F-0A1B2C3D4E5F".into(),
            requesters: Subjects {
                groups: vec!["backup-admins".into()],
                ..Default::default()
            },
        });
        assert_eq!(check_spec(&cor, &r), Ok(Duration::from_secs(600)));
    }

    #[test]
    fn the_vault_protection_only_narrows() {
        let mut vp: VaultProtection = serde_json::from_value(json!({
            "apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "vp"},
            "spec": {"vault": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"}, "guard": {"name": "g"},
                     "approval": {"requiredApprovals": 1, "maxDuration": "24h"}}
        }))
        .unwrap();
        let (policy, max) = narrowed(&rules(), &vp, Some("bob"));
        assert_eq!((policy.required_approvals, max), (2, Duration::from_secs(3600)));
        vp.spec.approval.required_approvals = Some(3);
        vp.spec.approval.max_duration = Some("10m".into());
        let (policy, max) = narrowed(&rules(), &vp, Some("bob"));
        assert_eq!((policy.required_approvals, max), (3, Duration::from_secs(600)));
    }

    #[test]
    fn a_request_made_by_a_service_account_needs_one_approval_more() {
        let vp: VaultProtection = serde_json::from_value(json!({
            "apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "vp"},
            "spec": {"vault": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"}, "guard": {"name": "g"}}
        }))
        .unwrap();
        let mut one = rules();
        one.required_approvals = 1;
        let argocd = Some("system:serviceaccount:argocd:argocd-application-controller");
        assert_eq!(narrowed(&one, &vp, argocd).0.required_approvals, 2);
        assert_eq!(narrowed(&one, &vp, Some("alice")).0.required_approvals, 1);
    }
}
