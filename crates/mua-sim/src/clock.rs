//! The simulator's clock: real time by default; tests drive it forward to reach expiries without waiting.
//! Access-token lifetimes use wall-clock time instead, because clients cache tokens by their own clock.

use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

const MAX_OFFSET_MS: i64 = 100 * 365 * 24 * 3600 * 1000;
/// How far the simulated clock may run ahead of real time in all: a century.
pub const MAX_OFFSET: std::time::Duration = std::time::Duration::from_millis(MAX_OFFSET_MS as u64);

#[derive(Debug, Default)]
pub struct SimClock {
    /// How far the simulated time runs ahead of real time, in milliseconds.
    offset_ms: AtomicI64,
    /// Tells whoever waits on simulated time (an operator's timers) that it moved.
    moved: tokio::sync::watch::Sender<()>,
}

impl SimClock {
    pub fn now(&self) -> Timestamp {
        let offset = SignedDuration::from_millis(self.offset_ms.load(Ordering::SeqCst));
        Timestamp::now().checked_add(offset).unwrap_or(Timestamp::MAX)
    }

    /// Moves simulated time forward (never back: expiries that passed stay passed), by at most a century
    /// in all, so simulated timestamps stay representable.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .offset_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |offset| {
                Some(offset.saturating_add(ms).min(MAX_OFFSET_MS))
            });
        self.moved.send_replace(());
    }

    /// Hears of every move of the clock from now on.
    pub fn moves(&self) -> tokio::sync::watch::Receiver<()> {
        self.moved.subscribe()
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
