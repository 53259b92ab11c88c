//! The relay core's timers: one heap of deadlines driven by one sleep in
//! the core's loop. Nothing is spawned per timer, so a peer that refreshes
//! its session every second costs a heap entry update, not a task.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ahash::HashMap;
use tokio::time::Instant;

/// Names a scheduled timer, to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerKey(u64);

/// Timers ordered by deadline (then by scheduling order).
pub struct TimerService<T> {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    entries: HashMap<u64, T>,
    next: u64,
}

impl<T> Default for TimerService<T> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            entries: HashMap::default(),
            next: 0,
        }
    }
}

impl<T> TimerService<T> {
    pub fn schedule(&mut self, at: Instant, timer: T) -> TimerKey {
        let seq = self.next;
        self.next += 1;
        self.heap.push(Reverse((at, seq)));
        self.entries.insert(seq, timer);
        TimerKey(seq)
    }

    /// The timer will not fire. Its deadline stays in the heap (a few
    /// bytes) until it comes due and is skipped; what the timer carries is
    /// freed now.
    pub fn cancel(&mut self, key: TimerKey) {
        self.entries.remove(&key.0);
    }

    /// The earliest deadline, if any timer is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The next timer due at `now`, earliest first.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        while let Some(Reverse((at, seq))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if let Some(timer) = self.entries.remove(&seq) {
                return Some(timer);
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timers_fire_in_deadline_order_and_only_when_due() {
        let start = Instant::now();
        let mut t = TimerService::default();
        t.schedule(start + Duration::from_secs(3), "c");
        t.schedule(start + Duration::from_secs(1), "a");
        t.schedule(start + Duration::from_secs(1), "b");
        assert_eq!(t.next_deadline(), Some(start + Duration::from_secs(1)));
        assert_eq!(t.pop_due(start), None);
        let at_two = start + Duration::from_secs(2);
        assert_eq!(
            t.pop_due(at_two),
            Some("a"),
            "same deadline: first scheduled first"
        );
        assert_eq!(t.pop_due(at_two), Some("b"));
        assert_eq!(t.pop_due(at_two), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_due(start + Duration::from_secs(3)), Some("c"));
        assert!(t.is_empty());
    }

    #[test]
    fn a_cancelled_timer_never_fires_and_the_others_still_do() {
        let start = Instant::now();
        let mut t = TimerService::default();
        let a = t.schedule(start + Duration::from_secs(1), "a");
        t.schedule(start + Duration::from_secs(2), "b");
        t.cancel(a);
        assert_eq!(t.len(), 1, "what the cancelled timer carried is freed");
        assert_eq!(t.pop_due(start + Duration::from_secs(1)), None);
        assert_eq!(t.pop_due(start + Duration::from_secs(2)), Some("b"));
        assert!(t.is_empty());
    }
}
