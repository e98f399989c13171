//! What the VaultProtection controller remembers between reconciles to spare ARM reads: when it last
//! read each link, the guards it read before linking, and which requests have an action or a PIM
//! activation waiting.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube::ResourceExt;

use super::activation::awaits_backup_side;
use crate::azure::guards::GuardId;
use crate::azure::vaults::Link;
use crate::crd::CriticalOperationRequest;
use crate::crd::critical_operation_request::RequestPhase;

/// How long a link read stays good enough to skip while the vault reports MUA on (a link re-pointed by
/// an elevated admin within this window is seen at the next full read).
pub(super) const LINK_RECHECK: Duration = Duration::from_secs(3600);

/// How long a guard read before linking stays good for other vaults linking to the same guard.
const GUARD_FACTS_TTL: Duration = Duration::from_secs(300);

/// What the controller remembers between reconciles to spare ARM reads (never what it decides on alone:
/// a write that finds Azure otherwise is checked again).
#[derive(Default)]
pub struct Memo {
    /// When each object's link was last read from Azure, and the guard it named (see `observe::known_link`).
    link_reads: Mutex<HashMap<String, (Instant, Option<String>)>>,
    /// Guards the backup identity could read, by lowercase ARM ID and tenant: region and description.
    /// Many vaults linking to one guard read it once.
    guards: Mutex<HashMap<GuardKey, (Instant, GuardFacts)>>,
    /// Requests with an action to perform, by `namespace/name`, naming their VaultProtection's key, as
    /// the watch last saw them: only objects named here list their requests on every reconcile.
    actions: Mutex<HashMap<String, String>>,
    /// Likewise, requests whose PIM activation awaits the backup side (to be asked for, or cancelled).
    activations: Mutex<HashMap<String, String>>,
}

/// Whether a request noted in `map` is for the object `key`.
fn names(map: &Mutex<HashMap<String, String>>, key: &str) -> bool {
    map.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .any(|vp| vp == key)
}

/// A guard's lowercase ARM ID and the tenant it is read from.
type GuardKey = (String, Option<String>);

#[derive(Clone, Debug)]
pub(super) struct GuardFacts {
    pub location: String,
    pub description: Option<String>,
}

impl Memo {
    /// Notes whether `request` has an action waiting to be performed (Active, not yet performed or failed).
    pub fn note_request(&self, request: &CriticalOperationRequest) {
        let namespace = request.namespace().unwrap_or_default();
        let waiting = request.spec.action.is_some()
            && request.status.as_ref().is_some_and(|s| {
                s.phase == Some(RequestPhase::Active) && s.performed_at.is_none() && s.action_failed.is_none()
            });
        let activating = request.status.as_ref().is_some_and(awaits_backup_side);
        let key = format!("{namespace}/{}", request.name_any());
        let vp = format!("{namespace}/{}", request.spec.vault_protection);
        for (map, noted) in [(&self.actions, waiting), (&self.activations, activating)] {
            let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
            if noted {
                map.insert(key.clone(), vp.clone());
            } else {
                map.remove(&key);
            }
        }
    }

    pub(super) fn has_action(&self, key: &str) -> bool {
        names(&self.actions, key)
    }

    /// Whether a request for the object `key` awaits the backup side in PIM.
    pub(super) fn has_activation(&self, key: &str) -> bool {
        names(&self.activations, key)
    }

    pub fn forget(&self, key: &str) {
        self.link_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    pub(super) fn link_read(&self, key: &str, link: Option<&Link>) {
        let guard = link.map(|l| l.guard_id.clone());
        self.link_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_string(), (Instant::now(), guard));
    }

    /// Whether this process read, within [`LINK_RECHECK`], that the object's vault is linked to `guard`:
    /// the operator's own reading, never what a status (which others could write) claims.
    pub(super) fn recently_linked_to(&self, key: &str, guard: &GuardId) -> bool {
        let reads = self.link_reads.lock().unwrap_or_else(PoisonError::into_inner);
        reads.get(key).is_some_and(|(read, linked)| {
            read.elapsed() < LINK_RECHECK && linked.as_deref().is_some_and(|g| guard.is(g))
        })
    }

    pub(super) fn guard(&self, id: &GuardId) -> Option<GuardFacts> {
        let guards = self.guards.lock().unwrap_or_else(PoisonError::into_inner);
        let (read, facts) = guards.get(&(id.path().to_ascii_lowercase(), id.tenant.clone()))?;
        (read.elapsed() < GUARD_FACTS_TTL).then(|| facts.clone())
    }

    pub(super) fn remember_guard(&self, id: &GuardId, facts: GuardFacts) {
        let mut guards = self.guards.lock().unwrap_or_else(PoisonError::into_inner);
        guards.retain(|_, (read, _)| read.elapsed() < GUARD_FACTS_TTL);
        guards.insert(
            (id.path().to_ascii_lowercase(), id.tenant.clone()),
            (Instant::now(), facts),
        );
    }
}
