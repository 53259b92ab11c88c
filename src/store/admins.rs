//! Administrator accounts (REST only). Passwords are argon2 hashes.

use super::{new_id, on_pool, Store, StoreError, StoreResult, Timestamp};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Admin {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub created_at: Timestamp,
}

impl Store {
    pub async fn count_admins(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM admins"
        )
        .fetch_one(p)
        .await)?)
    }

    pub async fn create_admin(&self, username: &str, password_hash: &str) -> StoreResult<Admin> {
        on_pool!(self, |p| sqlx::query_as::<_, Admin>(
            "INSERT INTO admins (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)
             RETURNING id, username, password_hash, created_at"
        )
        .bind(new_id())
        .bind(username)
        .bind(password_hash)
        .bind(Timestamp::now())
        .fetch_one(p)
        .await)
        .map_err(StoreError::classify)
    }

    pub async fn find_admin(&self, username: &str) -> StoreResult<Option<Admin>> {
        Ok(on_pool!(self, |p| sqlx::query_as::<_, Admin>(
            "SELECT id, username, password_hash, created_at FROM admins WHERE username = $1"
        )
        .bind(username)
        .fetch_optional(p)
        .await)?)
    }
}
