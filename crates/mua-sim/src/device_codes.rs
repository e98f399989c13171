//! The device codes the simulator's Entra issued and not yet redeemed (the OAuth 2.0 device authorization
//! grant's state): each with its user code, the tenant and client that asked, its expiry and the person's
//! decision. The endpoints that use them are in `device_code`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// "From the moment the request is sent, the user has 15 minutes to sign in" (Entra's `expires_in`).
pub const EXPIRES_IN_SECS: i64 = 900;
/// Codes held at once; past this, new requests are refused rather than memory growing without bound.
pub const MAX_CODES: usize = 1000;

/// Letters and digits a person cannot mistake for one another (no 0/O, 1/I/L).
const USER_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const USER_CODE_LEN: usize = 8;

/// The device codes issued and not yet redeemed. In memory only: a restart ends the sign-ins under way
/// (their clients then hear `bad_verification_code`).
pub struct DeviceCodes {
    /// How long clients wait between polls (Entra: 5 seconds).
    interval: Duration,
    by_device_code: Mutex<HashMap<String, DeviceCode>>,
}

struct DeviceCode {
    user_code: String,
    tenant: String,
    client_id: String,
    scope: String,
    /// Wall-clock seconds, like the tokens' times: clients time the flow by their own clock.
    expires_at: i64,
    decision: Decision,
}

#[derive(Clone, Debug, PartialEq)]
enum Decision {
    Pending,
    Approved { user: String },
    Declined,
}

/// A new device code and the user code a person enters for it.
#[derive(Debug)]
pub struct Issued {
    pub device_code: String,
    pub user_code: String,
}

/// A redeemed device code: who approved it, and the scope the client asked for.
#[derive(Debug, PartialEq)]
pub struct Approved {
    pub user: String,
    pub scope: String,
}

/// Why a poll of the token endpoint gets no token.
#[derive(Debug, PartialEq)]
pub enum PollError {
    Pending,
    Declined,
    Expired,
    Unknown,
}

/// Why a person cannot approve or decline a user code.
#[derive(Debug, PartialEq)]
pub enum DecideError {
    Unknown,
    Expired,
    AlreadyDecided,
}

impl DeviceCodes {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            by_device_code: Mutex::default(),
        }
    }

    /// How long clients wait between polls.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, DeviceCode>> {
        self.by_device_code.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new pair of codes, or `None` when too many are held already.
    pub fn issue(&self, tenant: &str, client_id: &str, scope: &str, now: i64) -> Option<Issued> {
        let mut codes = self.lock();
        // An expired code is kept as long again, so that a late poll still hears `expired_token`.
        codes.retain(|_, code| now < code.expires_at + EXPIRES_IN_SECS);
        if codes.len() >= MAX_CODES {
            return None;
        }
        let user_code = loop {
            let candidate = new_user_code();
            if !codes.values().any(|code| code.user_code == candidate) {
                break candidate;
            }
        };
        // The device code is the client's secret until it has its token: unguessable, from the OS's
        // random numbers (a v4 UUID holds 122 random bits).
        let device_code = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        codes.insert(
            device_code.clone(),
            DeviceCode {
                user_code: user_code.clone(),
                tenant: tenant.to_string(),
                client_id: client_id.to_string(),
                scope: scope.to_string(),
                expires_at: now + EXPIRES_IN_SECS,
                decision: Decision::Pending,
            },
        );
        Some(Issued { device_code, user_code })
    }

    /// The tenant a user code signs in to, while the code waits for a decision.
    pub fn pending_tenant(&self, user_code: &str, now: i64) -> Result<String, DecideError> {
        Ok(pending(&mut self.lock(), user_code, now)?.tenant.clone())
    }

    pub fn approve(&self, user_code: &str, user: &str, now: i64) -> Result<(), DecideError> {
        pending(&mut self.lock(), user_code, now)?.decision = Decision::Approved { user: user.to_string() };
        Ok(())
    }

    pub fn decline(&self, user_code: &str, now: i64) -> Result<(), DecideError> {
        pending(&mut self.lock(), user_code, now)?.decision = Decision::Declined;
        Ok(())
    }

    /// A poll of the token endpoint: the approval, once, for the tenant and client that asked for the
    /// code. An approved, declined or expired code is used up.
    pub fn redeem(&self, device_code: &str, tenant: &str, client_id: &str, now: i64) -> Result<Approved, PollError> {
        let mut codes = self.lock();
        let Some(code) = codes
            .get(device_code)
            .filter(|code| code.tenant == tenant && code.client_id == client_id)
        else {
            return Err(PollError::Unknown);
        };
        if now >= code.expires_at {
            codes.remove(device_code);
            return Err(PollError::Expired);
        }
        if code.decision == Decision::Pending {
            return Err(PollError::Pending);
        }
        match codes.remove(device_code) {
            Some(DeviceCode {
                decision: Decision::Approved { user },
                scope,
                ..
            }) => Ok(Approved { user, scope }),
            Some(_) => Err(PollError::Declined),
            None => Err(PollError::Unknown),
        }
    }
}

/// The code a person entered (in any case, with or without spaces and dashes), if it still waits for a
/// decision.
fn pending<'a>(
    codes: &'a mut HashMap<String, DeviceCode>,
    entered: &str,
    now: i64,
) -> Result<&'a mut DeviceCode, DecideError> {
    let entered: String = entered
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let code = codes
        .values_mut()
        .find(|code| code.user_code == entered)
        .ok_or(DecideError::Unknown)?;
    if now >= code.expires_at {
        return Err(DecideError::Expired);
    }
    if code.decision != Decision::Pending {
        return Err(DecideError::AlreadyDecided);
    }
    Ok(code)
}

/// A user code: short, to be typed by a person. Guessing one gains nothing: approving it takes a
/// password, and the token goes to the client holding the device code.
fn new_user_code() -> String {
    (0..USER_CODE_LEN)
        .map(|_| USER_CODE_ALPHABET[fastrand::usize(..USER_CODE_ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn codes() -> DeviceCodes {
        DeviceCodes::new(Duration::from_secs(5))
    }

    fn issue(codes: &DeviceCodes) -> Issued {
        codes.issue("tenant", "client", "arm/.default openid", NOW).unwrap()
    }

    #[test]
    fn a_code_is_pending_until_approved_then_redeemed_once() {
        let codes = codes();
        let issued = issue(&codes);
        assert_eq!(issued.user_code.len(), USER_CODE_LEN);
        let poll = |at| codes.redeem(&issued.device_code, "tenant", "client", at);
        assert_eq!(poll(NOW + 1), Err(PollError::Pending));
        codes.approve(&issued.user_code, "alice", NOW + 2).unwrap();
        let approved = Approved {
            user: "alice".into(),
            scope: "arm/.default openid".into(),
        };
        assert_eq!(poll(NOW + 3), Ok(approved));
        assert_eq!(poll(NOW + 4), Err(PollError::Unknown));
    }

    #[test]
    fn a_declined_code_is_refused_once_then_unknown() {
        let codes = codes();
        let issued = issue(&codes);
        codes.decline(&issued.user_code, NOW).unwrap();
        let poll = || codes.redeem(&issued.device_code, "tenant", "client", NOW + 1);
        assert_eq!(poll(), Err(PollError::Declined));
        assert_eq!(poll(), Err(PollError::Unknown));
    }

    #[test]
    fn a_code_expires_after_expires_in_for_the_person_and_the_client() {
        let codes = codes();
        let issued = issue(&codes);
        let expiry = NOW + EXPIRES_IN_SECS;
        assert_eq!(
            codes.approve(&issued.user_code, "alice", expiry),
            Err(DecideError::Expired)
        );
        assert_eq!(
            codes.redeem(&issued.device_code, "tenant", "client", expiry),
            Err(PollError::Expired)
        );
    }

    #[test]
    fn a_code_answers_only_the_tenant_and_client_that_asked_for_it() {
        let codes = codes();
        let issued = issue(&codes);
        codes.approve(&issued.user_code, "alice", NOW).unwrap();
        let poll = |tenant, client| codes.redeem(&issued.device_code, tenant, client, NOW);
        assert_eq!(poll("other-tenant", "client"), Err(PollError::Unknown));
        assert_eq!(poll("tenant", "other-client"), Err(PollError::Unknown));
        assert!(poll("tenant", "client").is_ok());
    }

    #[test]
    fn a_person_may_type_the_user_code_in_lower_case_with_dashes_and_decide_once() {
        let codes = codes();
        let issued = issue(&codes);
        let typed = format!("{}-{}", &issued.user_code[..4], &issued.user_code[4..]).to_lowercase();
        assert_eq!(codes.pending_tenant(&typed, NOW), Ok("tenant".into()));
        codes.approve(&typed, "alice", NOW).unwrap();
        assert_eq!(codes.decline(&typed, NOW), Err(DecideError::AlreadyDecided));
        assert_eq!(codes.approve("NOSUCHCD", "alice", NOW), Err(DecideError::Unknown));
    }

    #[test]
    fn codes_are_bounded_and_the_long_expired_make_room() {
        let codes = codes();
        for _ in 0..MAX_CODES {
            issue(&codes);
        }
        assert!(
            codes.issue("tenant", "client", "s", NOW).is_none(),
            "the limit is reached"
        );
        // Expired codes still answer `expired_token` for another `expires_in`; after that they go.
        let later = NOW + 2 * EXPIRES_IN_SECS;
        assert!(codes.issue("tenant", "client", "s", later - 1).is_none());
        assert!(codes.issue("tenant", "client", "s", later).is_some());
        assert_eq!(codes.lock().len(), 1);
    }
}
