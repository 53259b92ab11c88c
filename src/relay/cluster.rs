//! Following the other nodes that share this database (SPEC §3): their
//! configuration changes rebuild this node's routing catalog, and
//! terminations asked for through them end sessions this node holds.

use std::time::Duration;

use tokio::sync::watch;

use super::catalog::CatalogHandle;
use super::RelayHandle;
use crate::shutdown::stopping;
use crate::store::signals::Signal;
use crate::store::Store;

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Follows the signals of other nodes until shutdown; returns at once on
/// SQLite (one node only).
pub async fn follow(
    store: Store,
    catalog: CatalogHandle,
    relay: RelayHandle,
    node: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let listener = tokio::select! {
            l = store.signal_listener() => l,
            () = stopping(&mut shutdown) => return,
        };
        let mut listener = match listener {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                    "cannot listen for the signals of other nodes");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stopping(&mut shutdown) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        // Signals sent while nobody listened are lost: catch up.
        reload(&catalog, &store).await;
        loop {
            let next = tokio::select! {
                n = listener.recv() => n,
                () = stopping(&mut shutdown) => return,
            };
            match next {
                Ok(Some(Signal::CatalogChanged { from })) if from != node => {
                    reload(&catalog, &store).await;
                }
                Ok(Some(Signal::Terminate {
                    node: holder,
                    session,
                })) if holder == node => {
                    if relay.terminate(&session).await {
                        tracing::info!(session = %session, "session terminated at another node's request");
                    }
                }
                // Our own changes (already applied) and other nodes' sessions.
                Ok(Some(_)) => {}
                Ok(None) => {
                    tracing::info!("signal connection lost; listening again");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "signal connection failed; listening again");
                    break;
                }
            }
        }
    }
}

async fn reload(catalog: &CatalogHandle, store: &Store) {
    if let Err(e) = catalog.reload(store).await {
        tracing::warn!(error = %e, "catalog not reloaded after a change on another node");
    }
}
