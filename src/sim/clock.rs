//! The simulator's clock: real time by default; tests drive it forward to reach expiries without waiting.
//! Access-token lifetimes use wall-clock time instead, because clients cache tokens by their own clock.

use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Default)]
pub struct SimClock {
    /// How far the simulated time runs ahead of real time, in milliseconds.
    offset_ms: AtomicI64,
}

impl SimClock {
    pub fn now(&self) -> Timestamp {
        Timestamp::now() + SignedDuration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves simulated time forward (never back: expiries that passed stay passed).
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn offset(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.offset_ms.load(Ordering::SeqCst).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward_by_that_much() {
        let clock = SimClock::default();
        let before = clock.now();
        clock.advance(std::time::Duration::from_secs(3600));
        let moved = clock.now().duration_since(before);
        assert!(
            moved >= SignedDuration::from_secs(3600) && moved < SignedDuration::from_secs(3660),
            "{moved}"
        );
    }
}
