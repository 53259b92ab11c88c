//! The queue of [`TuEvent`]s from the shards to the transaction user.
//!
//! Unbounded, so that a shard never waits: shards run inline in the tasks
//! that feed them (the transport's receive loop, the TU itself, the timer
//! task), and none of those may block on the TU. The bound is kept at the
//! entry instead: the layer counts the events not yet taken and, once
//! [`super::LayerConfig::tu_queue`] of them wait, answers requests that
//! would start a transaction with a stateless 503 (RFC 3261 §21.5.4).
//! What belongs to live transactions (retransmissions, ACKs, responses to
//! the TU's own requests, timeouts) is never dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::TuEvent;

/// The shards' end of the queue.
pub(crate) struct TuSender {
    tx: mpsc::UnboundedSender<TuEvent>,
    waiting: Arc<AtomicUsize>,
}

impl TuSender {
    /// Queues `event`; dropped silently when the TU is gone.
    pub(crate) fn send(&self, event: TuEvent) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(event).is_err() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Events queued and not yet taken by the TU.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// The TU's end of the queue, returned by [`super::TransactionLayer::start`].
pub struct TuEvents {
    rx: mpsc::UnboundedReceiver<TuEvent>,
    waiting: Arc<AtomicUsize>,
}

impl TuEvents {
    /// The next event; `None` once the layer has stopped. Cancel safe, as
    /// the channel's own `recv`: an event is counted as taken in the same
    /// poll that returns it.
    pub async fn recv(&mut self) -> Option<TuEvent> {
        let event = self.rx.recv().await;
        self.taken(event)
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<TuEvent> {
        let event = self.rx.try_recv().ok();
        self.taken(event)
    }

    /// Counts `event`, if any, as no longer waiting.
    fn taken(&self, event: Option<TuEvent>) -> Option<TuEvent> {
        if event.is_some() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        event
    }
}

/// A new queue.
pub(crate) fn tu_queue() -> (TuSender, TuEvents) {
    let (tx, rx) = mpsc::unbounded_channel();
    let waiting = Arc::new(AtomicUsize::new(0));
    (
        TuSender {
            tx,
            waiting: waiting.clone(),
        },
        TuEvents { rx, waiting },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::ServerTxId;

    #[tokio::test]
    async fn waiting_counts_what_the_tu_has_not_taken() {
        let (tx, mut rx) = tu_queue();
        for i in 0..3 {
            tx.send(TuEvent::ServerTimeout { tx: ServerTxId(i) });
        }
        assert_eq!(tx.waiting(), 3);
        assert!(rx.recv().await.is_some());
        assert!(rx.try_recv().is_some());
        assert_eq!(tx.waiting(), 1);
        drop(rx);
        tx.send(TuEvent::ServerTimeout { tx: ServerTxId(9) });
        assert_eq!(tx.waiting(), 1, "an event nobody can take is not counted");
    }
}
