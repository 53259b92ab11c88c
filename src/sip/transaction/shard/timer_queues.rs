//! The shard's pending timers, one FIFO queue per duration.
//!
//! Every transaction timer lasts one of a handful of durations, all derived
//! from T1, T2 and T4 (RFC 3261 Table 4: T1·2ⁿ up to T2 for A/E/G, 64·T1
//! for B/F/H/J/L/M, T4 for I/K, at least 32 s for D). Timers of one
//! duration started in order are due in order, so each duration's queue is
//! sorted by deadline by construction: scheduling is a push at the back,
//! the next deadline is the smallest of a few queue heads. A binary heap
//! of every timer did the same in O(log n) with a cache miss per level, on
//! heaps of some 200,000 entries at 2,000 calls/s (Timers L, J and M keep
//! three entries per call for 32 s).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::Entry;

/// Pending timer entries, in one queue per duration.
#[derive(Default)]
pub(super) struct TimerQueues {
    queues: Vec<(Duration, VecDeque<Entry>)>,
    /// The queue whose head is due first: asked on every message, changed
    /// only when a queue's head does.
    first: Option<usize>,
}

impl TimerQueues {
    /// Schedules `e`, started now for `after`.
    pub(super) fn push(&mut self, after: Duration, mut e: Entry) {
        let i = match self.queues.iter().position(|(d, _)| *d == after) {
            Some(i) => i,
            None => {
                self.queues.push((after, VecDeque::new()));
                self.queues.len() - 1
            }
        };
        let queue = &mut self.queues[i].1;
        // The clock never goes back, so this never moves `at`; were it to,
        // the queue stays sorted and the timer fires a moment late.
        if let Some(last) = queue.back() {
            e.at = e.at.max(last.at);
        }
        let new_head = queue.is_empty();
        queue.push_back(e);
        // Only a new head can be due before the current first.
        if new_head && self.head(self.first).is_none_or(|f| (e.at, e.seq) < f) {
            self.first = Some(i);
        }
    }

    /// Deadline and scheduling order of the head of queue `i`.
    fn head(&self, i: Option<usize>) -> Option<(Instant, u64)> {
        let e = self.queues.get(i?)?.1.front()?;
        Some((e.at, e.seq))
    }

    /// Finds the queue whose head is due first again.
    fn find_first(&mut self) {
        self.first = (0..self.queues.len())
            .filter_map(|i| self.head(Some(i)).map(|h| (h, i)))
            .min()
            .map(|(_, i)| i);
    }

    /// The earliest deadline.
    pub(super) fn next_at(&self) -> Option<Instant> {
        self.head(self.first).map(|(at, _)| at)
    }

    /// The earliest entry.
    pub(super) fn head_entry(&self) -> Option<&Entry> {
        self.queues.get(self.first?)?.1.front()
    }

    /// Drops the earliest entry.
    pub(super) fn pop_first(&mut self) {
        if let Some(i) = self.first {
            self.queues[i].1.pop_front();
            self.find_first();
        }
    }

    /// Takes the earliest entry if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        let i = self.first?;
        let queue = &mut self.queues[i].1;
        if queue.front()?.at > now {
            return None;
        }
        let e = queue.pop_front();
        self.find_first();
        e
    }

    /// Entries pending, stale ones included.
    pub(super) fn len(&self) -> usize {
        self.queues.iter().map(|(_, q)| q.len()).sum()
    }

    /// Keeps the entries `keep` accepts, in order, and gives back the room
    /// of queues left mostly empty (a burst would otherwise hold it).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        for (_, q) in &mut self.queues {
            q.retain(&mut keep);
            if q.capacity() > 64 && q.len() * 4 < q.capacity() {
                q.shrink_to(q.len() * 2);
            }
        }
        self.find_first();
    }
}

#[cfg(test)]
mod tests {
    use super::super::Side;
    use super::*;
    use crate::sip::transaction::timers::Timer;

    fn entry(at: Instant, seq: u64) -> Entry {
        Entry {
            at,
            seq,
            side: Side::Server,
            id: seq,
            timer: Timer::J,
            gen: 0,
        }
    }

    #[test]
    fn due_in_deadline_order_across_durations() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = TimerQueues::default();
        // (started at, lasting) in scheduling order.
        let starts = [
            (100, 500),
            (200, 32_000),
            (500, 500),
            (600, 4_000),
            (700, 500),
        ];
        for (seq, (start, after)) in starts.into_iter().enumerate() {
            q.push(ms(after), entry(t0 + ms(start) + ms(after), seq as u64));
        }
        assert_eq!(q.len(), 5);
        assert_eq!(q.next_at(), Some(t0 + ms(600)));
        assert!(q.pop_due(t0 + ms(599)).is_none(), "nothing due yet");
        let due: Vec<u64> = std::iter::from_fn(|| q.pop_due(t0 + ms(5_000)))
            .map(|e| e.seq)
            .collect();
        // Due at 600, 1000, 1200 and 4600; the 32 s one is not.
        assert_eq!(due, vec![0, 2, 4, 3]);
        assert_eq!(q.next_at(), Some(t0 + ms(32_200)));
        assert_eq!(q.pop_due(t0 + ms(32_200)).map(|e| e.seq), Some(1));
        assert_eq!((q.len(), q.next_at()), (0, None));
    }

    #[test]
    fn a_deadline_before_its_queue_tail_waits_for_it() {
        // Only a clock going back could do this; the queue stays sorted.
        let t0 = Instant::now();
        let mut q = TimerQueues::default();
        let after = Duration::from_millis(500);
        q.push(after, entry(t0 + Duration::from_millis(600), 0));
        q.push(after, entry(t0 + Duration::from_millis(500), 1));
        assert!(q.pop_due(t0 + Duration::from_millis(550)).is_none());
        let due: Vec<u64> = std::iter::from_fn(|| q.pop_due(t0 + Duration::from_millis(600)))
            .map(|e| e.seq)
            .collect();
        assert_eq!(due, vec![0, 1]);
    }

    #[test]
    fn same_deadline_fires_in_scheduling_order() {
        let at = Instant::now() + Duration::from_secs(1);
        let mut q = TimerQueues::default();
        q.push(Duration::from_secs(1), entry(at, 2));
        q.push(Duration::from_millis(500), entry(at, 1));
        q.push(Duration::from_millis(500), entry(at, 3));
        let order: Vec<u64> = std::iter::from_fn(|| q.pop_due(at))
            .map(|e| e.seq)
            .collect();
        assert_eq!(order, vec![1, 2, 3]);
    }

    #[test]
    fn retain_keeps_order_and_count() {
        let t0 = Instant::now();
        let mut q = TimerQueues::default();
        for seq in 0..1000u64 {
            let after = Duration::from_millis(if seq % 2 == 0 { 500 } else { 4000 });
            q.push(after, entry(t0 + after + Duration::from_micros(seq), seq));
        }
        q.retain(|e| e.seq % 10 == 0);
        assert_eq!(q.len(), 100);
        let order: Vec<u64> = std::iter::from_fn(|| q.pop_due(t0 + Duration::from_secs(10)))
            .map(|e| e.seq)
            .collect();
        let mut expected: Vec<u64> = (0..1000).filter(|s| s % 10 == 0).collect();
        expected.sort_by_key(|s| {
            let after = if s % 2 == 0 { 500_000 } else { 4_000_000 };
            after + s
        });
        assert_eq!(order, expected);
    }
}
