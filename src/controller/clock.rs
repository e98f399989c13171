//! Time as the controllers see it: the system clock in production, the simulator's (which tests can
//! move, for expiry) in tests.

use jiff::Timestamp;

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;

    /// For a clock that can jump (the simulator's): a signal at every jump, so timers set on it are
    /// looked at again. Kubernetes' and tokio's timers follow real time only.
    fn jumps(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        None
    }
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The simulator's clock, so tests can move the operator's time together with Azure's (PIM expiries).
#[cfg(feature = "sim")]
impl Clock for crate::sim::clock::SimClock {
    fn now(&self) -> Timestamp {
        crate::sim::clock::SimClock::now(self)
    }

    fn jumps(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        Some(self.moves())
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;

    #[test]
    fn the_simulators_clock_serves_as_the_operators() {
        let sim = crate::sim::clock::SimClock::default();
        let before = Clock::now(&sim);
        sim.advance(std::time::Duration::from_secs(3600));
        assert!(Clock::now(&sim).duration_since(before) >= jiff::SignedDuration::from_hours(1));
    }

    #[test]
    fn a_jump_of_the_simulators_clock_is_heard() {
        let sim = crate::sim::clock::SimClock::default();
        let jumps = sim.jumps().expect("the simulator's clock jumps");
        assert!(!jumps.has_changed().unwrap());
        sim.advance(std::time::Duration::from_secs(60));
        assert!(jumps.has_changed().unwrap());
        assert!(SystemClock.jumps().is_none());
    }
}
