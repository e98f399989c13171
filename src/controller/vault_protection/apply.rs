//! Apply: carries the plan's steps out with typed `azure::*` calls, checking before each write (the
//! guard exists, the backup identity can read it, same region) and stopping at the first step that
//! cannot be made. Weakenings run only under the active request the plan names, and are recorded on it.

use super::memo::GuardFacts;
use super::observe::Seen;
use super::perform;
use super::plan::{Blocker, Observed, Plan, Step, Target, linked_to_other, region_mismatch};
use crate::azure::vaults::{self, Link, SoftDeleteChange, Vault};
use crate::azure::{ArmClient, guards};
use crate::controller::outcome::Notice;
use crate::controller::{BackupContext, Error, Reason};

/// How a check before a write, or a write, came out.
#[derive(Default)]
pub(super) struct Applied {
    /// The link as it is after the writes.
    pub link: Option<Link>,
    /// The soft-delete state as it is after the writes.
    pub soft_delete: Option<vaults::SoftDeleteSettings>,
    /// The guard's description, when the pre-link read found one.
    pub description: Option<String>,
    pub blockers: Vec<Blocker>,
    pub notices: Vec<Notice>,
}

impl Applied {
    /// Nothing written: Azure as observed.
    pub(super) fn unchanged(observed: &Observed) -> Self {
        Self {
            link: observed.link.clone(),
            soft_delete: observed.vault.soft_delete,
            ..Default::default()
        }
    }
}

/// Checks what linking needs (the guard exists, the backup identity can read it, same region); returns
/// the guard's description, or why the link cannot be made. Reads only.
async fn check_guard(
    ctx: &BackupContext,
    arm: &ArmClient,
    target: &Target,
    vault: &Vault,
) -> Result<Result<Option<String>, Blocker>, Error> {
    let facts = match ctx.side.memo.guard(&target.id) {
        Some(facts) => facts,
        None => match read_guard(arm, target).await? {
            Ok(facts) => {
                ctx.side.memo.remember_guard(&target.id, facts.clone());
                facts
            }
            Err(blocker) => return Ok(Err(blocker)),
        },
    };
    if !facts.location.eq_ignore_ascii_case(&vault.location) {
        return Ok(Err(region_mismatch(&facts.location, &vault.location)));
    }
    Ok(Ok(facts.description))
}

/// Reads the guard with the backup identity (from the guard's tenant).
async fn read_guard(arm: &ArmClient, target: &Target) -> Result<Result<GuardFacts, Blocker>, Error> {
    let guard = match guards::get(arm, &target.id).await {
        Ok(Some(guard)) => guard,
        Ok(None) => {
            return Ok(Err(Blocker::new(
                Reason::GuardNotFound,
                format!(
                    "the Resource Guard {} does not exist in Azure; its security admin must create it, or fix the guard reference",
                    target.id.path()
                ),
            )));
        }
        Err(err) if err.status() == Some(403) => return Ok(Err(reader_missing(arm, target))),
        Err(err) => return Err(err.into()),
    };
    Ok(Ok(GuardFacts {
        location: guard.location,
        description: guard.description,
    }))
}

fn reader_missing(arm: &ArmClient, target: &Target) -> Blocker {
    let tenant = target.id.tenant.as_deref().unwrap_or(arm.home_tenant());
    Blocker::new(
        Reason::ReaderRoleMissing,
        format!(
            "the backup side's Azure identity cannot read the Resource Guard {} (tenant {tenant}); the guard's security admin must grant it the Reader role on the guard",
            target.id.path()
        ),
    )
}

/// Carries the plan's steps out, checking before each write; stops at the first step that cannot be
/// made.
pub(super) async fn apply(ctx: &BackupContext, seen: &Seen, plan: &Plan) -> Result<Applied, Error> {
    let (key, id, target, observed) = (seen.key.as_str(), &seen.id, &seen.target, &seen.observed);
    let backup = &seen.arm;
    let mut applied = Applied::unchanged(observed);
    for step in &plan.steps {
        match step {
            Step::Link { restore } => {
                match check_guard(ctx, backup, target, &observed.vault).await? {
                    Ok(description) => applied.description = description,
                    Err(blocker) => {
                        applied.blockers.push(blocker);
                        break;
                    }
                }
                let link = match vaults::link(backup, id, &target.id).await {
                    Ok(link) => link,
                    Err(err) if err.status() == Some(403) => {
                        applied.blockers.push(reader_missing(backup, target));
                        break;
                    }
                    // Linked meanwhile (or the vault's MUA flag was stale): look at the link itself.
                    Err(err) if err.status() == Some(409) => match vaults::get_link(backup, id).await? {
                        Some(link) if target.id.is(&link.guard_id) => link,
                        Some(other) => {
                            applied.blockers.push(linked_to_other(&other, &target.id));
                            applied.link = Some(other);
                            break;
                        }
                        None => return Err(err.into()),
                    },
                    Err(err) => return Err(err.into()),
                };
                applied.notices.push(if *restore {
                    Notice::warning(
                        "LinkRestored",
                        format!(
                            "the vault's link to the guard {} was removed outside the operator; restored it",
                            target.id.path()
                        ),
                    )
                } else {
                    Notice::normal("Linked", format!("linked the vault to the guard {}", target.id.path()))
                });
                // Linking read (or wrote) the link: the next look need not read it again.
                ctx.side.memo.link_read(key, Some(&link));
                applied.link = Some(link);
            }
            Step::StrengthenSoftDelete { change, restore } => {
                vaults::set_soft_delete(backup, id, *change, None).await?;
                let before = describe_soft_delete(observed.vault.soft_delete);
                applied.notices.push(if *restore {
                    Notice::warning(
                        "SoftDeleteRestored",
                        format!(
                            "soft delete was changed outside the operator ({before}); restored it to {}",
                            describe_change(change)
                        ),
                    )
                } else {
                    Notice::normal(
                        "SoftDeleteUpdated",
                        format!("set soft delete to {}", describe_change(change)),
                    )
                });
                applied.soft_delete = Some(settings(change, observed.vault.soft_delete));
            }
            Step::WeakenSoftDelete { change, request } => {
                let guard = request.as_ref().map(|_| &target.id);
                vaults::set_soft_delete(backup, id, *change, guard).await?;
                if let Some(request) = request {
                    perform::record_performed(ctx, key, request).await?;
                }
                let note = match request {
                    Some(request) => format!(
                        "set soft delete to {} under the CriticalOperationRequest {request} (DisableSoftDelete)",
                        describe_change(change)
                    ),
                    None => format!(
                        "set soft delete to {} (the vault is not under MUA)",
                        describe_change(change)
                    ),
                };
                applied.notices.push(Notice::normal("CriticalOperationPerformed", note));
                applied.soft_delete = Some(settings(change, observed.vault.soft_delete));
            }
            Step::Unlink { request } => {
                vaults::unlink(backup, id, &target.id).await?;
                perform::record_performed(ctx, key, request).await?;
                applied.notices.push(Notice::normal(
                    "CriticalOperationPerformed",
                    format!(
                        "removed the vault's link to the guard {} under the CriticalOperationRequest {request} (DisableMultiUserAuthorization)",
                        target.id.path()
                    ),
                ));
                applied.link = None;
            }
            Step::Perform { request, action } => match perform::perform(backup, id, &target.id, action).await? {
                Ok(done) => {
                    perform::record_performed(ctx, key, request).await?;
                    let operation = action.operation();
                    tracing::info!(object = %key, %request, %operation, "performed: {done}");
                    applied.notices.push(Notice::normal(
                        "CriticalOperationPerformed",
                        format!("{done} under the CriticalOperationRequest {request} ({operation})"),
                    ));
                }
                Err(why) => {
                    // Final: the request fails (and its elevation ends) rather than being tried again.
                    perform::record_action_failed(ctx, key, request, &why).await?;
                    tracing::warn!(object = %key, %request, "could not {}: {why}", action.describe());
                    let message = format!(
                        "could not {} under the CriticalOperationRequest {request}: {why}",
                        action.describe()
                    );
                    applied
                        .notices
                        .push(Notice::warning("CriticalOperationFailed", message.clone()));
                    applied.blockers.push(Blocker::new(Reason::AzureRejected, message));
                }
            },
        }
    }
    Ok(applied)
}

fn settings(change: &SoftDeleteChange, before: Option<vaults::SoftDeleteSettings>) -> vaults::SoftDeleteSettings {
    vaults::SoftDeleteSettings {
        state: change.state,
        retention_days: change.retention_days.or(before.and_then(|b| b.retention_days)),
    }
}

pub(super) fn describe_change(change: &SoftDeleteChange) -> String {
    match change.retention_days {
        Some(days) => format!("{:?} with {days} days of retention", change.state),
        None => format!("{:?}", change.state),
    }
}

pub(super) fn describe_soft_delete(settings: Option<vaults::SoftDeleteSettings>) -> String {
    match settings {
        Some(s) => describe_change(&SoftDeleteChange {
            state: s.state,
            retention_days: s.retention_days,
        }),
        None => "unknown".into(),
    }
}
