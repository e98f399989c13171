//! ARM behaviour of the simulator: throttling, ETags, long-running operations, api-version and path
//! errors, injected faults, call counts, persistence, workload identity, device code sign-in and the `sim`
//! command.

use crate::simulator;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use simulator::*;

mod auth;
mod device_code;
mod faults;
mod protocol;
mod server;
mod throttling;
mod vault_config;

fn policy_path(n: usize) -> String {
    format!("{}/backupPolicies/p{n}", vault("prod-vault"))
}

/// A raw call to the simulator's admin API: status and body, whatever they are.
async fn admin_raw(ts: &TestSim, method: Method, path: &str, body: Value) -> (u16, Value) {
    let response = ts
        .http
        .request(method, format!("{}{path}", ts.sim.arm_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Graph's scope as the Azure CLI asks for it: the simulator's `microsoftGraphResourceId` + `/.default`.
fn graph_scope(ts: &TestSim) -> String {
    format!("{}//.default", ts.sim.arm_url)
}
