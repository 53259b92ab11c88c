//! The ledger writer: CDRs and charges go to the database behind the SIP
//! path and are never lost (SPEC §3, §4).
//!
//! Records queue in memory and are written in batches, each gathering for
//! [`crate::write_behind::GATHER_WINDOW`] after its first record. When a batch cannot
//! be written (the database is down, locked or too slow to answer within
//! [`WRITE_TIMEOUT`]) it goes to the [`Spool`] instead, and so does every
//! record after it until the spool has been replayed into the database;
//! replays are retried with backoff. A record the database refuses for good
//! (a constraint it violates) is kept in the spool's rejected file. At
//! shutdown what is queued is written or spooled; a process that starts
//! with a non-empty spool replays it first. Exactly once rests on the store:
//! writing a record that is already there changes nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::spool::Spool;
use crate::store::BatchWrite;
use crate::write_behind::{gather, take_queued};

/// Largest batch written in one transaction.
pub const BATCH: usize = 2048;

/// How long a batch may take before the database counts as unavailable
/// and the batch is spooled. (Spooled records may still have been written
/// by the abandoned attempt; the replay then changes nothing.)
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Runs the writer of one kind of record until shutdown (or until every
/// sender of `rx` is gone). `name` is for the log.
pub async fn run<C, F>(
    name: &'static str,
    mut rx: mpsc::UnboundedReceiver<C>,
    mut shutdown: watch::Receiver<bool>,
    spool: Spool,
    apply: F,
) where
    C: Serialize + DeserializeOwned + Send + Sync + 'static,
    F: for<'a> Fn(&'a [C]) -> BatchWrite<'a>,
{
    let mut w = Writer {
        name,
        retry_at: (!spool.is_empty()).then(Instant::now),
        spool: Arc::new(Mutex::new(spool)),
        spooled: false,
        apply,
        backoff: MIN_BACKOFF,
    };
    if w.retry_at.is_some() {
        tracing::info!(
            ledger = name,
            "records left in the spool by an earlier run; replaying"
        );
        w.spooled = true;
    }
    // Records that could neither be written nor spooled (the disk failed
    // too): kept in memory and offered again.
    let mut held: Vec<C> = Vec::new();
    // Whether the last batch was full: then the next is written at once.
    let mut backlog = false;
    loop {
        if w.retry_at.is_some_and(|at| at <= Instant::now()) {
            w.replay().await;
        }
        let mut batch = std::mem::take(&mut held);
        if batch.is_empty() {
            let retry_at = w.retry_at;
            tokio::select! {
                record = rx.recv() => match record {
                    Some(c) => batch.push(c),
                    None => {
                        w.finish(Vec::new()).await;
                        return;
                    }
                },
                () = sleep_until(retry_at) => continue,
                () = crate::shutdown::stopping(&mut shutdown) => {
                    take_queued(&mut rx, &mut batch, usize::MAX);
                    w.finish(batch).await;
                    return;
                }
            }
        }
        if !gather(&mut rx, &mut batch, BATCH, backlog, &mut shutdown).await {
            take_queued(&mut rx, &mut batch, usize::MAX);
            w.finish(batch).await;
            return;
        }
        backlog = batch.len() >= BATCH;
        held = w.store(batch).await;
        if !held.is_empty() {
            tokio::select! {
                () = tokio::time::sleep(w.backoff) => {}
                () = crate::shutdown::stopping(&mut shutdown) => {
                    take_queued(&mut rx, &mut held, usize::MAX);
                    w.finish(held).await;
                    return;
                }
            }
        }
    }
}

/// Opens the spool `name` in `dir` and starts its writer; the sender takes
/// the records.
pub fn start<C, F>(
    name: &'static str,
    dir: &std::path::Path,
    shutdown: watch::Receiver<bool>,
    apply: F,
) -> Result<(mpsc::UnboundedSender<C>, tokio::task::JoinHandle<()>), super::spool::SpoolError>
where
    C: Serialize + DeserializeOwned + Send + Sync + 'static,
    F: for<'a> Fn(&'a [C]) -> BatchWrite<'a> + Send + Sync + 'static,
{
    let spool = Spool::open(dir, name)?;
    let (tx, rx) = mpsc::unbounded_channel();
    Ok((tx, tokio::spawn(run(name, rx, shutdown, spool, apply))))
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct Writer<F> {
    name: &'static str,
    spool: Arc<Mutex<Spool>>,
    /// Whether the spool may hold records (then new ones join them there,
    /// so nothing overtakes the replay).
    spooled: bool,
    /// When to try the next replay of the spool.
    retry_at: Option<Instant>,
    apply: F,
    backoff: Duration,
}

impl<F> Writer<F> {
    /// Writes `batch` to the database, or else to the spool; returns what
    /// could be put in neither.
    async fn store<C>(&mut self, batch: Vec<C>) -> Vec<C>
    where
        C: Serialize + Send + Sync + 'static,
        F: for<'a> Fn(&'a [C]) -> BatchWrite<'a>,
    {
        let from = if self.spooled {
            0
        } else {
            match self.write(&batch).await {
                Ok(()) => return Vec::new(),
                Err(from) => from,
            }
        };
        let mut rest = batch;
        let rest = rest.split_off(from);
        let count = rest.len();
        let appended = self
            .on_spool(move |s| match s.append(&rest) {
                Ok(()) => Ok(()),
                Err(e) => Err((e, rest)),
            })
            .await;
        match appended {
            Ok(Ok(())) => {
                if !self.spooled {
                    tracing::warn!(
                        ledger = self.name,
                        records = count,
                        "database unavailable; records spooled until it is back"
                    );
                    self.spooled = true;
                    self.retry_at = Some(Instant::now() + self.backoff);
                }
                Vec::new()
            }
            Ok(Err((e, rest))) => {
                tracing::error!(ledger = self.name, error = %e, records = count,
                    "records can be neither written nor spooled; held in memory");
                self.retry_at
                    .get_or_insert_with(|| Instant::now() + MIN_BACKOFF);
                rest
            }
            Err(e) => {
                tracing::error!(ledger = self.name, error = %e, records = count,
                    "spool writer failed; records lost");
                Vec::new()
            }
        }
    }

    /// Writes `batch`; on failure, Err gives the index of the first record
    /// that is not written (records refused for good are rejected, not
    /// retried).
    async fn write<C>(&mut self, batch: &[C]) -> Result<(), usize>
    where
        C: Serialize + Send + Sync + 'static,
        F: for<'a> Fn(&'a [C]) -> BatchWrite<'a>,
    {
        match self.attempt(batch).await {
            Ok(()) => return Ok(()),
            Err(Lasting::No) => return Err(0),
            Err(Lasting::Yes) => {}
        }
        // One record is refused for good: find it by writing one by one.
        for (i, record) in batch.iter().enumerate() {
            match self.attempt(std::slice::from_ref(record)).await {
                Ok(()) => {}
                Err(Lasting::No) => return Err(i),
                Err(Lasting::Yes) => {
                    let kept = match serde_json::to_vec(record) {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            tracing::error!(ledger = self.name, error = %e,
                                "record refused by the database cannot be encoded");
                            return Err(i);
                        }
                    };
                    let rejected = self.on_spool(move |s| s.reject_line(&kept)).await;
                    match rejected {
                        Ok(Ok(())) => tracing::error!(
                            ledger = self.name,
                            "record refused by the database; kept in the rejected file"
                        ),
                        Ok(Err(e)) => {
                            tracing::error!(ledger = self.name, error = %e,
                                "record refused by the database and not kept either");
                            return Err(i);
                        }
                        Err(e) => {
                            tracing::error!(ledger = self.name, error = %e, "spool writer failed");
                            return Err(i);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn attempt<C>(&self, batch: &[C]) -> Result<(), Lasting>
    where
        F: for<'a> Fn(&'a [C]) -> BatchWrite<'a>,
    {
        match tokio::time::timeout(WRITE_TIMEOUT, (self.apply)(batch)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.is_lasting() => {
                tracing::warn!(ledger = self.name, error = %e, "batch refused");
                Err(Lasting::Yes)
            }
            Ok(Err(e)) => {
                tracing::debug!(ledger = self.name, error = %e, "write failed");
                Err(Lasting::No)
            }
            Err(_) => {
                tracing::debug!(ledger = self.name, "write timed out");
                Err(Lasting::No)
            }
        }
    }

    /// Writes the spool into the database and empties it, or schedules the
    /// next try.
    async fn replay<C>(&mut self)
    where
        C: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: for<'a> Fn(&'a [C]) -> BatchWrite<'a>,
    {
        let records: Vec<C> = match self.on_spool(|s| s.load()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(ledger = self.name, error = %e, "spool unreadable");
                self.later();
                return;
            }
            Err(e) => {
                tracing::error!(ledger = self.name, error = %e, "spool unreadable");
                self.later();
                return;
            }
        };
        for chunk in records.chunks(BATCH) {
            if self.write(chunk).await.is_err() {
                self.later();
                return;
            }
        }
        match self.on_spool(|s| s.clear()).await {
            Ok(Ok(())) => {
                tracing::info!(
                    ledger = self.name,
                    records = records.len(),
                    "spool replayed into the database"
                );
                self.spooled = false;
                self.retry_at = None;
                self.backoff = MIN_BACKOFF;
            }
            Ok(Err(e)) => {
                tracing::error!(ledger = self.name, error = %e, "spool could not be emptied");
                self.later();
            }
            Err(e) => {
                tracing::error!(ledger = self.name, error = %e, "spool could not be emptied");
                self.later();
            }
        }
    }

    fn later(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// At shutdown: `batch` (what is still queued) is written or spooled;
    /// a spool is replayed once if the database answers. What is left in
    /// the spool is replayed by the next start.
    async fn finish<C>(&mut self, batch: Vec<C>)
    where
        C: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: for<'a> Fn(&'a [C]) -> BatchWrite<'a>,
    {
        let lost = self.store(batch).await;
        if !lost.is_empty() {
            tracing::error!(
                ledger = self.name,
                records = lost.len(),
                "shutting down with records that could be neither written nor spooled"
            );
        }
        if self.spooled {
            self.replay().await;
        }
        if self.spooled {
            tracing::warn!(
                ledger = self.name,
                "records remain in the spool; the next start replays them"
            );
        }
    }

    /// Runs `f` on the spool off the async threads (the file I/O blocks).
    /// Err only if `f` panicked.
    async fn on_spool<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Spool) -> R + Send + 'static,
    ) -> Result<R, tokio::task::JoinError> {
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = spool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut s)
        })
        .await
    }
}

enum Lasting {
    Yes,
    No,
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
