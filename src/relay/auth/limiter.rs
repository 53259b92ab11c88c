//! Slows online password guessing: a source that fails authentication too
//! often in a window is refused without checking until the window ends.
//! A success does not reset the count: one valid account must not let a
//! source go on guessing the passwords of others.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sources tracked before old windows are pruned.
const MAX_SOURCES: usize = 100_000;

pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `source` has failed too often in the current window.
    pub fn is_blocked(&self, source: IpAddr) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .get(&source)
            .is_some_and(|(n, since)| *n >= self.max_failures && since.elapsed() < self.window)
    }

    pub fn record_failure(&self, source: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_SOURCES {
            let window = self.window;
            failures.retain(|_, (_, since)| since.elapsed() < window);
        }
        let entry = failures.entry(source).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
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
}
