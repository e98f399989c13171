//! `wait`, and the waiting `request` does: follow one request with a watch, print each phase change, and
//! turn the phase it settles in into the exit code.

use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::runtime::{WatchStreamExt, watcher};
use mua_api::crd::CriticalOperationRequest;
use mua_api::crd::critical_operation_request::RequestPhase;
use tokio::time::Instant;

use super::{KIND, get};
use crate::args::{Output, WaitArgs, WaitFor};
use crate::client::Session;
use crate::error::{Exit, Failure, Target, from_kube};
use crate::output::{self, note};
use crate::state;

/// Watch errors in a row (each after a backoff) before giving up: one is normal (a watch expiring with
/// 410 Gone), several mean the API server is gone.
const MAX_CONSECUTIVE_ERRORS: u32 = 5;

pub async fn run(session: &Session, args: WaitArgs, format: Output) -> Result<Exit, Failure> {
    let (exit, last) = follow(session, &args.name, args.wait_for, args.timeout, format).await?;
    if format != Output::Table {
        print!("{}", output::object(&last, format)?);
    }
    Ok(exit)
}

/// Follows `name` until `wait_for` is settled or `timeout` (zero: none) passes; prints phase changes and,
/// when the outcome is not a success, says why on stderr. Returns the exit code and the last state seen.
pub async fn follow(
    session: &Session,
    name: &str,
    wait_for: WaitFor,
    timeout: Duration,
    format: Output,
) -> Result<(Exit, CriticalOperationRequest), Failure> {
    let deadline = (!timeout.is_zero()).then(|| Instant::now() + timeout);
    let mut last = get(session, name).await?;
    let mut shown = None;
    show_phase(&last, &mut shown, format);
    if let Some(exit) = state::outcome(state::phase(&last), wait_for) {
        return Ok((finish(name, exit, &last), last));
    }

    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher(session.requests(), config).default_backoff());
    let mut errors = 0;
    loop {
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(next) => next,
                Err(_) => {
                    let waited = jiff::SignedDuration::try_from(timeout).unwrap_or_default();
                    eprintln!(
                        "error: timed out after {} waiting for {KIND} \"{name}\" (phase {}); the request stays: \
                         run `kubectl mua wait {name}` to keep waiting",
                        output::human_duration(waited),
                        state::phase_name(state::phase(&last)),
                    );
                    return Ok((Exit::TimedOut, last));
                }
            },
            None => events.next().await,
        };
        match next {
            None => return Err(Failure::unexpected("the watch on the request ended unexpectedly")),
            Some(Ok(watcher::Event::Apply(request) | watcher::Event::InitApply(request))) => {
                errors = 0;
                show_phase(&request, &mut shown, format);
                last = request;
                if let Some(exit) = state::outcome(state::phase(&last), wait_for) {
                    return Ok((finish(name, exit, &last), last));
                }
            }
            Some(Ok(watcher::Event::Delete(_))) => {
                return Err(Failure::new(
                    Exit::NotFound,
                    format!("{KIND} \"{name}\" was deleted while waiting"),
                ));
            }
            Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => errors = 0,
            Some(Err(err)) => {
                errors += 1;
                let (fatal, failure) = watch_failure(err, name, &session.namespace);
                if fatal || errors >= MAX_CONSECUTIVE_ERRORS {
                    return Err(failure);
                }
            }
        }
    }
}

/// Prints a line when the phase differs from the one shown last.
fn show_phase(request: &CriticalOperationRequest, shown: &mut Option<Option<RequestPhase>>, format: Output) {
    let phase = state::phase(request);
    if *shown == Some(phase) {
        return;
    }
    *shown = Some(phase);
    let name = kube::ResourceExt::name_any(request);
    let mut line = format!(
        "{name}: {}",
        phase.map_or("waiting for the operator".to_string(), |p| format!("{p:?}"))
    );
    if let Some(detail) = state::phase_detail(request) {
        line.push_str(&format!(" ({detail})"));
    }
    if phase == Some(RequestPhase::Active) {
        let expires = request.status.as_ref().and_then(|s| s.expires_at.as_ref());
        line.push_str(&format!(", expires {}", output::when(expires, Timestamp::now())));
    }
    note(format, line);
}

/// Says on stderr why a wait did not end in success; the phase line itself is already shown.
fn finish(name: &str, exit: Exit, last: &CriticalOperationRequest) -> Exit {
    let phase = state::phase_name(state::phase(last));
    match exit {
        Exit::Denied => eprintln!("error: {KIND} \"{name}\" was denied"),
        Exit::Ended => eprintln!("error: {KIND} \"{name}\" ended without success ({phase})"),
        _ => {}
    }
    exit
}

/// Whether a watch error is worth retrying, and what to report if not.
fn watch_failure(err: watcher::Error, name: &str, namespace: &str) -> (bool, Failure) {
    let target = || Target::object(KIND, name, namespace);
    match err {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            let forbidden = matches!(&e, kube::Error::Api(s) if s.code == 403 || s.code == 401);
            (forbidden, from_kube(e, target()))
        }
        watcher::Error::WatchError(status) => {
            let forbidden = status.code == 403;
            (forbidden, from_kube(kube::Error::Api(status), target()))
        }
        watcher::Error::NoResourceVersion => (
            true,
            Failure::unexpected("the API server's watch answer has no resourceVersion"),
        ),
    }
}
