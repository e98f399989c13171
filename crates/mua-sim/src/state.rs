//! The simulator's shared state: the world behind one lock, the clock, the token keys, the device codes
//! waiting for sign-in, throttling, faults and call counts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::clock::SimClock;
use super::device_codes::DeviceCodes;
use super::faults::Faults;
use super::throttle::Throttle;
use super::tokens::{ARM_AUDIENCES, TokenIssuer};
use super::world::World;

pub struct SimState {
    pub world: Mutex<World>,
    pub clock: Arc<SimClock>,
    pub tokens: TokenIssuer,
    pub device_codes: DeviceCodes,
    /// `https://127.0.0.1:PORT`: ARM and the authority share one listener.
    pub base_url: String,
    pub throttle: Throttle,
    pub faults: Faults,
    /// The token audiences ARM accepts (the public cloud's, or another cloud's: `SimOptions::arm_audience`).
    pub arm_audiences: Vec<String>,
    calls: Mutex<CallCounts>,
    state_file: Option<PathBuf>,
}

/// How often each route was called (admitted past throttling), in total and per principal; and how often
/// each principal was refused with a 429 per route, so a benchmark sees how often a client was throttled.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallCounts {
    pub total: u64,
    pub by_route: BTreeMap<String, u64>,
    pub by_principal: BTreeMap<String, BTreeMap<String, u64>>,
    pub throttled: u64,
    pub throttled_by_principal: BTreeMap<String, BTreeMap<String, u64>>,
}

impl SimState {
    pub fn new(
        world: World,
        clock: Arc<SimClock>,
        tokens: TokenIssuer,
        base_url: String,
        throttle: Throttle,
        state_file: Option<PathBuf>,
        device_code_interval: std::time::Duration,
    ) -> Self {
        Self {
            world: Mutex::new(world),
            clock,
            tokens,
            device_codes: DeviceCodes::new(device_code_interval),
            base_url,
            throttle,
            faults: Faults::default(),
            arm_audiences: ARM_AUDIENCES.iter().map(|a| a.to_string()).collect(),
            calls: Mutex::new(CallCounts::default()),
            state_file,
        }
    }

    /// The world, locked. A handler that panicked while holding the lock must not take every later
    /// request down with it: a poisoned lock is taken over as it is (handlers validate their input
    /// before they change anything, so a panic leaves no half-made change behind).
    pub fn lock_world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the world after dropping what has ended by now.
    pub fn read<R>(&self, f: impl FnOnce(&World) -> R) -> R {
        let mut world = self.lock_world();
        world.expire(self.clock.now());
        f(&world)
    }

    /// Changes the world and, with `--state`, saves it.
    pub fn write<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut world = self.lock_world();
        world.expire(self.clock.now());
        let result = f(&mut world);
        if let Some(path) = &self.state_file {
            save(&world, path);
        }
        result
    }

    /// The tenant ID for a tenant ID or a known domain-less alias (`organizations`/`common` are refused:
    /// client credentials need a tenant).
    pub fn resolve_tenant(&self, tenant: &str) -> Option<String> {
        let world = self.lock_world();
        world
            .tenants
            .values()
            .find(|t| t.id.eq_ignore_ascii_case(tenant) || (!t.name.is_empty() && t.name.eq_ignore_ascii_case(tenant)))
            .map(|t| t.id.clone())
    }

    pub fn count_call(&self, route: &str, principal: &str) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.total += 1;
        *calls.by_route.entry(route.to_string()).or_default() += 1;
        *calls
            .by_principal
            .entry(principal.to_string())
            .or_default()
            .entry(route.to_string())
            .or_default() += 1;
    }

    pub fn count_throttled(&self, route: &str, principal: &str) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.throttled += 1;
        *calls
            .throttled_by_principal
            .entry(principal.to_string())
            .or_default()
            .entry(route.to_string())
            .or_default() += 1;
    }

    pub fn calls(&self) -> CallCounts {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn reset_calls(&self) {
        *self.calls.lock().unwrap_or_else(PoisonError::into_inner) = CallCounts::default();
    }
}

/// Writes the state file atomically (a crash mid-write must not lose the previous state).
fn save(world: &World, path: &PathBuf) {
    let tmp = path.with_extension("tmp");
    let result = serde_json::to_vec_pretty(world)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(err) = result {
        tracing::error!(path = %path.display(), %err, "saving the simulator state failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::throttle::Limits;

    #[test]
    fn a_panic_while_the_world_is_locked_does_not_take_the_next_call_down() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(SimClock::default());
        let state = Arc::new(SimState::new(
            World::default(),
            clock.clone(),
            TokenIssuer::load_or_create(dir.path()).unwrap(),
            "https://127.0.0.1:1".into(),
            Throttle::new(Limits::default(), clock, false),
            None,
            std::time::Duration::from_secs(5),
        ));
        let panicking = state.clone();
        let crashed = std::thread::spawn(move || {
            panicking.write(|w| {
                w.tenants.insert("t".into(), Default::default());
                panic!("a handler bug");
            })
        })
        .join();
        assert!(crashed.is_err(), "the write panicked");
        assert!(state.world.is_poisoned());
        // Later calls are served, and see what the world holds.
        assert_eq!(state.read(|w| w.tenants.len()), 1);
        state.write(|w| w.tenants.clear());
        assert_eq!(state.read(|w| w.tenants.len()), 0);
    }
}
