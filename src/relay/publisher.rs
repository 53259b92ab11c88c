//! Write-behind publishing of relay state to the store: changes queue in
//! memory and are written in batches by one task, so the SIP path never
//! waits on the database. Registrations are soft state: a batch that fails
//! is retried with the ones that arrived meanwhile.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::store::registrations::RegistrationChange;
use crate::store::Store;

/// Largest batch written in one transaction.
const BATCH: usize = 512;

pub async fn publish_registrations(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<RegistrationChange>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pending: Vec<RegistrationChange> = Vec::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        if pending.is_empty() {
            tokio::select! {
                change = rx.recv() => match change {
                    Some(c) => pending.push(c),
                    None => return,
                },
                _ = shutdown.changed() => {
                    // Drain what is queued, once, then stop.
                    while let Ok(c) = rx.try_recv() {
                        pending.push(c);
                    }
                    if !pending.is_empty() {
                        let _ = store.apply_registration_changes(&pending).await;
                    }
                    return;
                }
            }
        }
        while pending.len() < BATCH {
            match rx.try_recv() {
                Ok(c) => pending.push(c),
                Err(_) => break,
            }
        }
        match store.apply_registration_changes(&pending).await {
            Ok(()) => {
                pending.clear();
                backoff = Duration::from_millis(100);
            }
            Err(e) => {
                tracing::warn!(error = %e, queued = pending.len(), "publishing registrations failed; will retry");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}
