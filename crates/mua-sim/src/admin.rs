//! The simulator's own API under `/_sim/` (separate from ARM paths, no authentication: loopback only):
//! inspect state, count calls per route and principal, set faults, drive the clock, and sign in with a
//! device code.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::FaultRule;
use super::state::SimState;
use crate::error::ArmError;

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/_sim/state", get(state))
        .route("/_sim/calls", get(calls).delete(reset_calls))
        .route("/_sim/faults", get(faults).put(set_faults))
        .route("/_sim/clock", get(clock))
        .route("/_sim/clock/advance", post(advance))
        .route(
            "/_sim/devicelogin",
            get(super::device_code::device_login_help).post(super::device_code::device_login),
        )
}

async fn state(State(sim): State<Arc<SimState>>) -> Result<Json<Value>, ArmError> {
    sim.read(|w| serde_json::to_value(w)).map(Json).map_err(not_serialized)
}

async fn calls(State(sim): State<Arc<SimState>>) -> Result<Json<Value>, ArmError> {
    serde_json::to_value(sim.calls()).map(Json).map_err(not_serialized)
}

/// Plain data always serializes; were it not to, the caller hears a 500.
fn not_serialized(err: serde_json::Error) -> ArmError {
    ArmError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
        format!("The state could not be serialized: {err}"),
    )
}

async fn reset_calls(State(sim): State<Arc<SimState>>) -> Json<Value> {
    sim.reset_calls();
    Json(json!({}))
}

async fn faults(State(sim): State<Arc<SimState>>) -> Json<Vec<FaultRule>> {
    Json(sim.faults.get())
}

async fn set_faults(
    State(sim): State<Arc<SimState>>,
    Json(rules): Json<Vec<FaultRule>>,
) -> Result<Json<Vec<FaultRule>>, ArmError> {
    super::faults::validate(&rules).map_err(|message| ArmError::bad_request("InvalidFaultRule", message))?;
    sim.faults.set(rules);
    Ok(Json(sim.faults.get()))
}

async fn clock(State(sim): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({"now": sim.clock.now().to_string(), "offsetSeconds": sim.clock.offset().as_secs_f64()}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Advance {
    seconds: f64,
}

async fn advance(State(sim): State<Arc<SimState>>, Json(by): Json<Advance>) -> Result<Json<Value>, ArmError> {
    // The clock only moves forward, by at most its whole range; `from_secs_f64` would panic on
    // anything it cannot hold (NaN, negative, 1e20).
    let max = super::clock::MAX_OFFSET.as_secs_f64();
    if !(by.seconds.is_finite() && (0.0..=max).contains(&by.seconds)) {
        return Err(ArmError::bad_request(
            "InvalidClockAdvance",
            format!(
                "seconds must be a number from 0 to {max} (the simulated clock runs at most a century ahead); got {}.",
                by.seconds
            ),
        ));
    }
    sim.clock.advance(std::time::Duration::from_secs_f64(by.seconds));
    Ok(Json(
        json!({"now": sim.clock.now().to_string(), "offsetSeconds": sim.clock.offset().as_secs_f64()}),
    ))
}
