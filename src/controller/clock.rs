//! Time as the controllers see it: the system clock in production, a clock tests can move (the
//! simulator's, for expiry) everywhere else.

use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to.
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.0.lock().expect("clock lock");
        *now = now
            .saturating_add(SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX))
            .expect("a clock in range");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("clock lock")
    }
}

/// The simulator's clock, so tests can move the operator's time together with Azure's (PIM expiries).
impl Clock for crate::sim::clock::SimClock {
    fn now(&self) -> Timestamp {
        crate::sim::clock::SimClock::now(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = Timestamp::from_second(1_000).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(std::time::Duration::from_secs(90));
        assert_eq!(clock.now(), Timestamp::from_second(1_090).unwrap());
    }

    #[test]
    fn the_simulators_clock_serves_as_the_operators() {
        let sim = crate::sim::clock::SimClock::default();
        let before = Clock::now(&sim);
        sim.advance(std::time::Duration::from_secs(3600));
        assert!(Clock::now(&sim).duration_since(before) >= jiff::SignedDuration::from_hours(1));
    }
}
