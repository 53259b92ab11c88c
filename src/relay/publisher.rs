//! Write-behind publishing of relay state to the store: changes queue in
//! memory and are written in batches by one task per kind, so the SIP path
//! never waits on the database. A batch gathers for
//! [`crate::write_behind::GATHER_WINDOW`] after its first change.
//!
//! Registrations and sessions are soft state, published the same way by one
//! generic loop ([`publish`]): a batch that fails for a passing reason (the
//! database is unreachable, busy, …) is retried with backoff, together with
//! the changes that arrived meanwhile; a batch refused for good (a constraint
//! violation) is retried change by change and only the refused changes are
//! dropped, so one bad change cannot block publishing forever. On shutdown
//! what is queued is written once more and the task ends, even if the
//! database is down. (CDRs and charges, which must never be lost, go through
//! the billing ledger and its spool instead.)

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::store::registrations::RegistrationChange;
use crate::store::sessions::SessionChange;
use crate::store::{Store, StoreResult};
use crate::write_behind::{gather, take_queued};

/// Largest batch written in one transaction.
pub const BATCH: usize = 4096;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The future that writes one batch.
pub type Apply<'a> = crate::store::BatchWrite<'a>;

/// Publishes registration changes until `shutdown` turns true (or its
/// sender is dropped) or every sender of `rx` is gone.
pub async fn publish_registrations(
    store: Store,
    rx: mpsc::UnboundedReceiver<RegistrationChange>,
    shutdown: watch::Receiver<bool>,
) {
    publish("registrations", rx, shutdown, move |batch| {
        let store = store.clone();
        Box::pin(async move { store.apply_registration_changes(batch).await })
    })
    .await
}

/// Publishes session changes (sessions, legs, events; applied in the order
/// sent) until `shutdown` turns true (or its sender is dropped) or every
/// sender of `rx` is gone.
pub async fn publish_sessions(
    store: Store,
    rx: mpsc::UnboundedReceiver<SessionChange>,
    shutdown: watch::Receiver<bool>,
) {
    publish("sessions", rx, shutdown, move |batch| {
        let store = store.clone();
        Box::pin(async move { store.apply_session_changes(batch).await })
    })
    .await
}

/// The batching loop shared by every publisher: takes what is queued (up to
/// [`BATCH`]), writes it with `apply`, and retries as described in the
/// module documentation. `name` is for the log.
pub async fn publish<C, F>(
    name: &'static str,
    mut rx: mpsc::UnboundedReceiver<C>,
    mut shutdown: watch::Receiver<bool>,
    apply: F,
) where
    C: Send + Sync,
    F: for<'a> Fn(&'a [C]) -> Apply<'a>,
{
    let mut pending: Vec<C> = Vec::new();
    let mut backoff = MIN_BACKOFF;
    // Whether the last batch was full: then the next is written at once.
    let mut backlog = false;
    loop {
        if pending.is_empty() {
            tokio::select! {
                change = rx.recv() => match change {
                    Some(c) => pending.push(c),
                    None => {
                        tracing::debug!(publisher = name, "all senders gone; publisher stopped");
                        return;
                    }
                },
                () = crate::shutdown::stopping(&mut shutdown) => {
                    final_flush(name, &mut rx, pending, &apply).await;
                    return;
                }
            }
        }
        if !gather(&mut rx, &mut pending, BATCH, backlog, &mut shutdown).await {
            final_flush(name, &mut rx, pending, &apply).await;
            return;
        }
        backlog = pending.len() >= BATCH;
        match flush(name, &mut pending, &apply).await {
            Ok(()) => backoff = MIN_BACKOFF,
            Err(e) => {
                tracing::warn!(publisher = name, error = %e, queued = pending.len(),
                    retry_in_ms = backoff.as_millis() as u64, "publishing failed; will retry");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = crate::shutdown::stopping(&mut shutdown) => {
                        final_flush(name, &mut rx, pending, &apply).await;
                        return;
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Writes `pending` in one batch. On a lasting refusal the changes are
/// written one by one and those refused for good are dropped (logged).
/// Err means a passing failure: `pending` then holds what is still to write,
/// in order.
async fn flush<C, F>(name: &'static str, pending: &mut Vec<C>, apply: &F) -> StoreResult<()>
where
    F: for<'a> Fn(&'a [C]) -> Apply<'a>,
{
    let e = match apply(pending).await {
        Ok(()) => {
            pending.clear();
            return Ok(());
        }
        Err(e) if e.is_lasting() => e,
        Err(e) => return Err(e),
    };
    tracing::warn!(publisher = name, error = %e, batch = pending.len(),
        "batch refused; writing its changes one by one");
    for i in 0..pending.len() {
        match apply(std::slice::from_ref(&pending[i])).await {
            Ok(()) => {}
            Err(e) if e.is_lasting() => {
                tracing::error!(publisher = name, error = %e, "change refused by the database; dropped");
            }
            Err(e) => {
                pending.drain(..i);
                return Err(e);
            }
        }
    }
    pending.clear();
    Ok(())
}

/// On shutdown: writes what is pending and queued, once, then gives up.
async fn final_flush<C, F>(
    name: &'static str,
    rx: &mut mpsc::UnboundedReceiver<C>,
    mut pending: Vec<C>,
    apply: &F,
) where
    F: for<'a> Fn(&'a [C]) -> Apply<'a>,
{
    take_queued(rx, &mut pending, usize::MAX);
    let total = pending.len();
    while !pending.is_empty() {
        let rest = pending.split_off(pending.len().min(BATCH));
        if let Err(e) = flush(name, &mut pending, apply).await {
            let lost = pending.len() + rest.len();
            tracing::warn!(publisher = name, error = %e, lost, total,
                "database unavailable at shutdown; unpublished changes dropped");
            return;
        }
        pending = rest;
    }
    tracing::debug!(publisher = name, written = total, "publisher stopped");
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::store::StoreError;

    /// A fake store: records the batches written; fails while `fail` says
    /// so (transiently), and refuses for good any batch holding `POISON`.
    #[derive(Default)]
    struct Fake {
        batches: Mutex<Vec<Vec<u32>>>,
        attempts: Mutex<u32>,
        fail_first: u32,
        fail_always: bool,
    }

    const POISON: u32 = u32::MAX;

    impl Fake {
        fn apply(self: &Arc<Self>) -> impl for<'a> Fn(&'a [u32]) -> Apply<'a> {
            let fake = self.clone();
            move |batch| {
                let fake = fake.clone();
                Box::pin(async move {
                    let attempt = {
                        let mut a = fake.attempts.lock().expect("lock");
                        *a += 1;
                        *a
                    };
                    if fake.fail_always || attempt <= fake.fail_first {
                        return Err(StoreError::Database(sqlx::Error::PoolTimedOut));
                    }
                    if batch.contains(&POISON) {
                        return Err(StoreError::UnknownReference("poison".into()));
                    }
                    fake.batches.lock().expect("lock").push(batch.to_vec());
                    Ok(())
                })
            }
        }

        fn written(&self) -> Vec<u32> {
            self.batches.lock().expect("lock").concat()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn batches_in_order_and_stops_when_senders_are_gone() {
        let fake = Arc::new(Fake::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let (_stop_tx, stop_rx) = watch::channel(false);
        for i in 0..(BATCH as u32 * 2 + 10) {
            tx.send(i).expect("send");
        }
        drop(tx);
        publish("test", rx, stop_rx, fake.apply()).await;
        let batches = fake.batches.lock().expect("lock").clone();
        assert_eq!(batches.len(), 3, "queued changes are batched");
        assert!(batches.iter().all(|b| b.len() <= BATCH));
        assert_eq!(
            fake.written(),
            (0..(BATCH as u32 * 2 + 10)).collect::<Vec<_>>()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn passing_failures_are_retried_with_what_came_meanwhile() {
        let fake = Arc::new(Fake {
            fail_first: 4,
            ..Fake::default()
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(publish("test", rx, stop_rx, fake.apply()));
        tx.send(1).expect("send");
        tokio::time::sleep(Duration::from_millis(150)).await;
        tx.send(2).expect("send");
        tx.send(3).expect("send");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(fake.written(), vec![1, 2, 3], "nothing lost, order kept");
        assert_eq!(*fake.attempts.lock().expect("lock"), 5);
        stop_tx.send(true).expect("stop");
        task.await.expect("publisher");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_refused_for_good_is_dropped_alone() {
        let fake = Arc::new(Fake::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let (_stop_tx, stop_rx) = watch::channel(false);
        for i in [1, 2, POISON, 4] {
            tx.send(i).expect("send");
        }
        drop(tx);
        publish("test", rx, stop_rx, fake.apply()).await;
        assert_eq!(fake.written(), vec![1, 2, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_drains_the_queue() {
        let fake = Arc::new(Fake::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        stop_tx.send(true).expect("stop");
        for i in 0..(BATCH as u32 + 1) {
            tx.send(i).expect("send");
        }
        publish("test", rx, stop_rx, fake.apply()).await;
        assert_eq!(fake.written(), (0..(BATCH as u32 + 1)).collect::<Vec<_>>());
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_task_while_the_database_is_down() {
        let fake = Arc::new(Fake {
            fail_always: true,
            ..Fake::default()
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(publish("test", rx, stop_rx, fake.apply()));
        tx.send(1).expect("send");
        // Long enough for the backoff to reach its ceiling.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(*fake.attempts.lock().expect("lock") > 5, "retried");
        stop_tx.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("stopped at once, not after the backoff")
            .expect("publisher");
        assert!(fake.written().is_empty());
    }
}
