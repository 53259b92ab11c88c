//! The nodes sharing this database and the last moment each was known
//! alive, and the sessions a node left open when it died (SPEC §3, §4).

use super::sessions::{SessionRecord, SESSION_COLUMNS};
use super::{on_pool, Store, StoreResult, Timestamp};

impl Store {
    /// When `node` was last known alive, if it ever ran on this database.
    pub async fn node_last_seen(&self, node: &str) -> StoreResult<Option<Timestamp>> {
        let sql = "SELECT last_seen FROM nodes WHERE name = $1";
        Ok(on_pool!(self, |p| sqlx::query_scalar::<_, Timestamp>(sql)
            .bind(node)
            .fetch_optional(p)
            .await)?)
    }

    /// Records that `node` (re)started at `at`.
    pub async fn node_started(&self, node: &str, at: Timestamp) -> StoreResult<()> {
        let sql = "INSERT INTO nodes (name, started_at, last_seen) VALUES ($1, $2, $2)
                   ON CONFLICT (name) DO UPDATE SET started_at = $2, last_seen = $2";
        on_pool!(self, |p| sqlx::query(sql)
            .bind(node)
            .bind(at)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Records that `node` is alive at `at`.
    pub async fn node_alive(&self, node: &str, at: Timestamp) -> StoreResult<()> {
        let sql = "UPDATE nodes SET last_seen = $2 WHERE name = $1";
        on_pool!(self, |p| sqlx::query(sql)
            .bind(node)
            .bind(at)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Sessions of `node` that are not ended.
    pub async fn open_sessions_of_node(&self, node: &str) -> StoreResult<Vec<SessionRecord>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE node = $1 AND state <> 'ended' ORDER BY created_at, id"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<_, SessionRecord>(
            &sql
        )
        .bind(node)
        .fetch_all(p)
        .await)?)
    }

    /// Sessions of `node` that ended at or after `since` and have no CDR
    /// (the process died between publishing the end and writing the CDR).
    pub async fn ended_sessions_without_cdr(
        &self,
        node: &str,
        since: Timestamp,
    ) -> StoreResult<Vec<SessionRecord>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.node = $1 AND s.state = 'ended' AND s.ended_at >= $2
               AND NOT EXISTS (SELECT 1 FROM cdrs c WHERE c.session_id = s.id)
             ORDER BY s.created_at, s.id"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<_, SessionRecord>(
            &sql
        )
        .bind(node)
        .bind(since)
        .fetch_all(p)
        .await)?)
    }

    /// Ends the open legs of a session at `at`.
    pub async fn end_session_legs(&self, session_id: &str, at: Timestamp) -> StoreResult<()> {
        let sql =
            "UPDATE session_legs SET ended_at = $2 WHERE session_id = $1 AND ended_at IS NULL";
        on_pool!(self, |p| sqlx::query(sql)
            .bind(session_id)
            .bind(at)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
