//! What the write-behind loops (relay publishers, billing ledger) share:
//! how long a batch gathers before it is written.
//!
//! Writing each change as soon as it is queued costs a transaction (and on
//! SQLite a WAL commit) per handful of rows, and writes a session row once
//! per state it passes through in the same few milliseconds. Waiting a short
//! window after the first change of a batch turns a few hundred commits a
//! second into a few dozen and lets a batch keep only the latest row of a
//! session (see `store::bulk`). The window bounds how stale the database
//! may be behind the SIP engine; the SIP path never waits for it.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// How long a batch gathers after its first change.
pub const GATHER_WINDOW: Duration = Duration::from_millis(50);

/// Waits out the gather window, unless `backlog` says the queue already
/// held a full batch last time (then there is nothing to wait for), and
/// moves up to `max` queued changes into `batch`. Returns false when
/// shutdown was asked for during the wait (nothing was moved then).
pub async fn gather<C>(
    rx: &mut mpsc::UnboundedReceiver<C>,
    batch: &mut Vec<C>,
    max: usize,
    backlog: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    if !backlog {
        tokio::select! {
            () = tokio::time::sleep(GATHER_WINDOW) => {}
            () = crate::shutdown::stopping(shutdown) => return false,
        }
    }
    take_queued(rx, batch, max);
    true
}

/// Moves what is queued on `rx` into `batch` until it holds `max`
/// (`usize::MAX`: everything, as at shutdown).
pub fn take_queued<C>(rx: &mut mpsc::UnboundedReceiver<C>, batch: &mut Vec<C>, max: usize) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(c) => batch.push(c),
            Err(_) => break,
        }
    }
}
