//! Slows online password guessing: a source that fails authentication too
//! often in a window is refused without checking until the window ends.
//! A success does not reset the count: one valid account must not let a
//! source go on guessing the passwords of others.
//!
//! Windows are also kept in a queue in the order they started, so expired
//! ones are swept from its front a few at a time: each failure costs
//! amortized O(1), however many sources are tracked.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sources tracked at most; beyond, the oldest windows are dropped first.
const MAX_SOURCES: usize = 100_000;

pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    state: Mutex<Windows>,
}

#[derive(Default)]
struct Windows {
    /// Source → (failures, start of its window).
    failures: HashMap<IpAddr, (u32, Instant)>,
    /// (start, source) of every window, oldest first; an entry whose
    /// source has since started a new window is stale and skipped.
    order: VecDeque<(Instant, IpAddr)>,
}

impl Windows {
    /// Drops the windows that ended by `now`, oldest first.
    fn sweep(&mut self, now: Instant, window: Duration) {
        while let Some(&(start, ip)) = self.order.front() {
            if now.duration_since(start) < window {
                break;
            }
            self.order.pop_front();
            self.forget_if(ip, start);
        }
    }

    /// Drops the oldest windows until at most `max` sources are tracked.
    fn cap(&mut self, max: usize) {
        while self.failures.len() > max {
            let Some((start, ip)) = self.order.pop_front() else {
                break;
            };
            self.forget_if(ip, start);
        }
    }

    fn forget_if(&mut self, ip: IpAddr, start: Instant) {
        if self.failures.get(&ip).is_some_and(|(_, s)| *s == start) {
            self.failures.remove(&ip);
        }
    }
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            state: Mutex::new(Windows::default()),
        }
    }

    /// Whether `source` has failed too often in the current window.
    pub fn is_blocked(&self, source: IpAddr) -> bool {
        self.is_blocked_at(source, Instant::now())
    }

    fn is_blocked_at(&self, source: IpAddr, now: Instant) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.failures.get(&source).is_some_and(|(n, since)| {
            *n >= self.max_failures && now.duration_since(*since) < self.window
        })
    }

    pub fn record_failure(&self, source: IpAddr) {
        self.record_failure_at(source, Instant::now());
    }

    fn record_failure_at(&self, source: IpAddr, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.sweep(now, self.window);
        let window = self.window;
        let entry = state.failures.entry(source).or_insert((0, now));
        let fresh = entry.0 == 0 || now.duration_since(entry.1) >= window;
        if fresh {
            *entry = (0, now);
        }
        entry.0 += 1;
        if fresh {
            state.order.push_back((now, source));
            state.cap(MAX_SOURCES);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (state.failures.len(), state.order.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_per_source() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        for _ in 0..3 {
            assert!(!l.is_blocked(ip));
            l.record_failure(ip);
        }
        assert!(l.is_blocked(ip));
        assert!(!l.is_blocked("192.0.2.10".parse().unwrap()), "per source");
    }

    #[test]
    fn ended_windows_are_swept_and_counting_starts_again() {
        let window = Duration::from_secs(60);
        let l = FailureLimiter::new(2, window);
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        l.record_failure_at(a, t0);
        l.record_failure_at(a, t0);
        l.record_failure_at(b, t0 + Duration::from_secs(30));
        assert!(l.is_blocked_at(a, t0 + Duration::from_secs(59)));
        assert_eq!(l.tracked(), (2, 2), "one queue entry per window");
        // a's window is over: swept by the next failure, and a starts over.
        let later = t0 + window;
        assert!(!l.is_blocked_at(a, later));
        l.record_failure_at(b, later);
        assert_eq!(l.tracked(), (1, 1), "a forgotten, b still in its window");
        l.record_failure_at(a, later);
        assert!(!l.is_blocked_at(a, later), "a new window, one failure");
    }
}
