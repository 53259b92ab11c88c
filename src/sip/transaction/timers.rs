//! Transaction timers (RFC 3261 §17 and Table 4 of Appendix A; RFC 6026 §8.7
//! for Timer L and §8.4 for Timer M).
//!
//! Every value derives from T1 (RTT estimate), T2 (longest retransmit
//! interval for non-INVITE requests and INVITE responses) and T4 (longest
//! time a message stays in the network). On reliable transports the
//! retransmission timers (A, E, G) are never started and the "wait for
//! retransmissions" timers (D, I, J, K) are zero, so the machines go straight
//! to Terminated instead of scheduling them.

use std::time::Duration;

/// T1/T2/T4 (RFC 3261 §17.1.1.1, Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Timer D's floor on unreliable transports: "at least 32 seconds"
/// (RFC 3261 §17.1.1.2), whatever T1 is.
const TIMER_D_MIN: Duration = Duration::from_secs(32);

impl TimerConfig {
    /// 64*T1: Timers B, F, H, J (unreliable), L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: wait time for response retransmissions in the INVITE client
    /// "Completed" state; >= 32 s on UDP, 0 on reliable transports
    /// (§17.1.1.2).
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1x64().max(TIMER_D_MIN)
        }
    }

    /// Timer I: ACK retransmission absorption, T4 on UDP, 0 on reliable
    /// transports (§17.2.1).
    pub fn timer_i(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }

    /// Timer J: request retransmission absorption of a non-INVITE server
    /// transaction, 64*T1 on UDP, 0 on reliable transports (§17.2.2).
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1x64()
        }
    }

    /// Timer K: response retransmission absorption of a non-INVITE client
    /// transaction, T4 on UDP, 0 on reliable transports (§17.1.2.2).
    pub fn timer_k(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }

    /// Next Timer E or G interval: doubles, capped at T2 (§17.1.2.2,
    /// §17.2.1). Timer A doubles without a cap (§17.1.1.2): Timer B ends it.
    pub fn backoff_capped(&self, current: Duration) -> Duration {
        (current * 2).min(self.t2)
    }
}

/// The RFC's timer names. Timer C belongs to a proxy's TU (§16.6 step 11)
/// and is not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE request retransmit interval (client, unreliable).
    A,
    /// INVITE transaction timeout (client).
    B,
    /// Wait time for response retransmissions (INVITE client, Completed).
    D,
    /// Non-INVITE request retransmit interval (client, unreliable).
    E,
    /// Non-INVITE transaction timeout (client).
    F,
    /// INVITE final response retransmit interval (server, unreliable).
    G,
    /// Wait time for ACK receipt (INVITE server, Completed).
    H,
    /// Wait time for ACK retransmissions (INVITE server, Confirmed).
    I,
    /// Wait time for request retransmissions (non-INVITE server).
    J,
    /// Wait time for response retransmissions (non-INVITE client).
    K,
    /// Wait time for INVITE retransmissions after a 2xx (server, Accepted,
    /// RFC 6026 §8.7).
    L,
    /// Wait time for 2xx retransmissions (client, Accepted, RFC 6026 §8.4).
    M,
}

impl Timer {
    pub const COUNT: usize = 12;

    /// A dense index, for per-transaction timer bookkeeping.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_values() {
        let c = TimerConfig::default();
        assert_eq!(c.t1x64(), Duration::from_secs(32));
        assert_eq!(c.timer_d(false), Duration::from_secs(32));
        assert_eq!(c.timer_d(true), Duration::ZERO);
        assert_eq!(c.timer_i(false), Duration::from_secs(5));
        assert_eq!(c.timer_j(false), Duration::from_secs(32));
        assert_eq!(c.timer_k(false), Duration::from_secs(5));
        assert_eq!(c.timer_i(true), Duration::ZERO);
        assert_eq!(c.timer_j(true), Duration::ZERO);
        assert_eq!(c.timer_k(true), Duration::ZERO);
        assert_eq!(
            c.backoff_capped(Duration::from_secs(2)),
            Duration::from_secs(4)
        );
        assert_eq!(
            c.backoff_capped(Duration::from_secs(4)),
            Duration::from_secs(4)
        );
        // A short T1 still leaves Timer D at 32 s on UDP.
        let fast = TimerConfig {
            t1: Duration::from_millis(100),
            ..c
        };
        assert_eq!(fast.timer_d(false), Duration::from_secs(32));
        assert_eq!(fast.t1x64(), Duration::from_millis(6400));
        assert_eq!(Timer::M.index(), Timer::COUNT - 1);
    }
}
