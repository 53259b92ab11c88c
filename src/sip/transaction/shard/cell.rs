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

    /// A panic in a step is a bug; the layer goes on with what the shard
    /// holds rather than refusing every later message of its Call-IDs.
    fn lock(&self) -> MutexGuard<'_, Shard> {
        self.shard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one step on the shard. Timers due at this instant fire first: a
    /// message arriving as Timer M/J/... expires meets a finished
    /// transaction, whichever task got there first. The step's TU events
    /// are queued before the lock is released, so they keep their order.
    pub(crate) fn with<R>(&self, step: impl FnOnce(&mut Shard) -> R) -> R {
        let mut shard = self.lock();
        shard.fire_due(Instant::now());
        let r = step(&mut shard);
        shard.flush();
        let rearm = shard.deadline_moved_up();
        drop(shard);
        if rearm {
            self.wake.notify_one();
        }
        r
    }

    /// Stops the timer task (the layer is gone).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    async fn fire_timers(self: Arc<Self>) {
        let sleep = tokio::time::sleep(Duration::from_secs(86_400));
        tokio::pin!(sleep);
        let mut set: Option<Instant> = None;
        while !self.closed.load(Ordering::Acquire) {
            let next = {
                let mut shard = self.lock();
                shard.fire_due(Instant::now());
                shard.flush();
                shard.armed = shard.next_live_deadline();
                shard.armed
            };
            if next != set {
                if let Some(at) = next {
                    sleep.as_mut().reset(at);
                }
                set = next;
            }
            tokio::select! {
                biased;
                () = self.wake.notified() => {}
                () = &mut sleep, if next.is_some() => set = None,
            }
        }
    }
}
