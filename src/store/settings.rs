//! Small key/value settings shared by every node (e.g. the token signing
//! secret when the operator did not configure one).

use super::{on_pool, Store, StoreResult};

impl Store {
    /// Returns the stored value of `key`, storing `make()` first if there is
    /// none. Safe when several nodes start at once: the first insert wins
    /// and everyone reads it back.
    pub async fn setting_or_insert(
        &self,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> StoreResult<String> {
        let candidate = make();
        on_pool!(self, |p| sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
        )
        .bind(key)
        .bind(&candidate)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT value FROM settings WHERE key = $1"
        )
        .bind(key)
        .fetch_one(p)
        .await)?)
    }
}
