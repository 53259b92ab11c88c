//! The process-wide stop signal: a `watch` channel that turns true (or
//! whose sender is dropped) when Switchboard shuts down.

use tokio::sync::watch;

/// Resolves once shutdown is asked for: the value is true, or the sender is
/// gone. Cancel-safe, so it can sit in a `select!` loop.
pub async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}
