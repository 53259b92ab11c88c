//! Signals between nodes sharing one PostgreSQL database (SPEC §3): a
//! configuration change made through one node's API reaches the routing
//! catalog of every node at once, and a session can be terminated through
//! any node. Carried by PostgreSQL LISTEN/NOTIFY on one channel; SQLite is
//! one node only, so there they go nowhere.

use serde::{Deserialize, Serialize};

use super::{Pool, Store, StoreError, StoreResult};

/// The LISTEN/NOTIFY channel.
const CHANNEL: &str = "switchboard_signals";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "signal", rename_all = "snake_case")]
pub enum Signal {
    /// Clients, app servers, services, rules or tariffs changed.
    CatalogChanged { from: String },
    /// End session `session` held by node `node` (reason `admin`).
    Terminate { node: String, session: String },
}

impl Store {
    /// Sends `signal` to every node listening (PostgreSQL; a no-op on
    /// SQLite).
    pub async fn signal(&self, signal: &Signal) -> StoreResult<()> {
        let Pool::Postgres(p) = &self.pool else {
            return Ok(());
        };
        let payload = serde_json::to_string(signal)
            .map_err(|e| StoreError::Corrupt(format!("signal not encodable: {e}")))?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(p)
            .await?;
        Ok(())
    }

    /// A listener for the signals of other nodes, or `None` on SQLite.
    pub async fn signal_listener(&self) -> StoreResult<Option<SignalListener>> {
        let Pool::Postgres(p) = &self.pool else {
            return Ok(None);
        };
        let mut listener = sqlx::postgres::PgListener::connect_with(p).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(SignalListener(listener)))
    }
}

/// Receives the signals of other nodes.
pub struct SignalListener(sqlx::postgres::PgListener);

impl SignalListener {
    /// The next signal, or `None` when the connection was lost: it is
    /// re-established by the next call, but signals sent meanwhile are
    /// gone, so the caller catches up on what they would have said.
    /// Payloads that are not signals are skipped.
    pub async fn recv(&mut self) -> StoreResult<Option<Signal>> {
        loop {
            let Some(n) = self.0.try_recv().await? else {
                return Ok(None);
            };
            match serde_json::from_str(n.payload()) {
                Ok(signal) => return Ok(Some(signal)),
                Err(e) => {
                    tracing::warn!(error = %e, payload = n.payload(), "unknown signal ignored");
                }
            }
        }
    }
}
