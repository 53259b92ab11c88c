//! A shard behind its lock, and the task that fires its timers.
//!
//! The shard runs inline in the task that hands it work: the transport's
//! receive loop for messages, the TU for its responses and requests. A
//! message thus reaches the TU through one queue instead of two, and a
//! response leaves in the TU's own poll. The lock is held only for one
//! synchronous step and never across an await; with one SIP worker it is
//! never contended.
//!
//! The cell's task sleeps until the shard's earliest deadline. Whoever
//! schedules an earlier one wakes it to re-arm ([`Notify`] keeps the wake-up
//! if the task is between two sleeps).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Shard;

pub(crate) struct ShardCell {
    shard: Mutex<Shard>,
    wake: Notify,
    closed: AtomicBool,
}

impl ShardCell {
    /// The cell, with its timer task spawned on the current runtime.
    pub(crate) fn start(shard: Shard) -> Arc<ShardCell> {
        let cell = Arc::new(ShardCell {
            shard: Mutex::new(shard),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(cell.clone().fire_timers());
        cell
    }

    /// Steps catch their own panics ([`guarded`]), so the lock is not
    /// poisoned; were it, the shard goes on with what it holds.
    fn lock(&self) -> MutexGuard<'_, Shard> {
        self.shard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one step on the shard. Timers due at this instant fire first: a
    /// message arriving as Timer M/J/... expires meets a finished
    /// transaction, whichever task got there first. The step's TU events
    /// are queued before the lock is released, so they keep their order.
    pub(crate) fn with(&self, step: impl FnOnce(&mut Shard)) {
        let mut shard = self.lock();
        guarded(&mut shard, |s| {
            s.fire_due(Instant::now());
            step(s);
        });
        shard.flush();
        let rearm = shard.deadline_moved_up();
        drop(shard);
        if rearm {
            self.wake.notify_one();
        }
    }

    /// Stops the timer task (the layer is gone).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    async fn fire_timers(self: Arc<Self>) {
        let sleep = tokio::time::sleep(Duration::from_secs(86_400));
        tokio::pin!(sleep);
        let mut sleeping_until: Option<Instant> = None;
        while !self.closed.load(Ordering::Acquire) {
            let next = {
                let mut shard = self.lock();
                guarded(&mut shard, |s| s.fire_due(Instant::now()));
                shard.flush();
                shard.armed = shard.next_live_deadline();
                shard.armed
            };
            if next != sleeping_until {
                if let Some(at) = next {
                    sleep.as_mut().reset(at);
                }
                sleeping_until = next;
            }
            tokio::select! {
                biased;
                () = self.wake.notified() => {}
                () = &mut sleep, if next.is_some() => sleeping_until = None,
            }
        }
    }
}

/// Runs `step`, containing a panic to the step. The shard runs inside the
/// receive loop and the relay core: a bug in one transaction must not stop
/// every message of the server. What the step did before it panicked
/// stands (its TU events are still sent); the panic itself is reported by
/// the panic hook and logged here.
fn guarded(shard: &mut Shard, step: impl FnOnce(&mut Shard)) {
    if catch_unwind(AssertUnwindSafe(|| step(shard))).is_err() {
        tracing::error!(
            shard = shard.index,
            "a transaction step panicked; the shard goes on"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::shard::lone_shard;

    #[tokio::test]
    async fn a_panicking_step_leaves_the_shard_usable() {
        let cell = ShardCell::start(lone_shard());
        cell.with(|_| panic!("a bug in one transaction"));
        let mut ran = false;
        cell.with(|_| ran = true);
        assert!(ran, "the next step runs");
        assert!(!cell.shard.is_poisoned());
        cell.close();
    }
}
