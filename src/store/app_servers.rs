//! Application servers: where services are delivered.

use serde::Serialize;
use utoipa::ToSchema;

use super::{new_id, on_pool, Page, PageRequest, Store, StoreError, StoreResult, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct AppServer {
    pub id: String,
    #[schema(example = "voicemail-1")]
    pub name: String,
    /// SIP URI the relay sends inquiries to.
    #[schema(example = "sip:127.0.0.1:5080;transport=udp")]
    pub uri: String,
    /// Lower is tried first.
    #[schema(example = 10)]
    pub priority: i32,
    /// Share of calls under the `weighted` strategy.
    #[schema(example = 100)]
    pub weight: i32,
    pub enabled: bool,
    /// Result of OPTIONS probing: `unknown`, `up` or `down` (read-only).
    #[schema(example = "unknown")]
    pub health: String,
    pub health_changed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct AppServerFields {
    pub name: String,
    pub uri: String,
    pub priority: i32,
    pub weight: i32,
    pub enabled: bool,
}

impl From<AppServer> for AppServerFields {
    fn from(a: AppServer) -> Self {
        Self {
            name: a.name,
            uri: a.uri,
            priority: a.priority,
            weight: a.weight,
            enabled: a.enabled,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AppServerFilter {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub health: Option<String>,
}

const COLUMNS: &str =
    "id, name, uri, priority, weight, enabled, health, health_changed_at, created_at, updated_at";

impl Store {
    pub async fn create_app_server(&self, f: &AppServerFields) -> StoreResult<AppServer> {
        let sql = format!(
            "INSERT INTO app_servers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 'unknown', NULL, $7, $7) RETURNING {COLUMNS}"
        );
        on_pool!(self, |p| sqlx::query_as::<_, AppServer>(&sql)
            .bind(new_id())
            .bind(&f.name)
            .bind(&f.uri)
            .bind(f.priority)
            .bind(f.weight)
            .bind(f.enabled)
            .bind(Timestamp::now())
            .fetch_one(p)
            .await)
        .map_err(StoreError::classify)
    }

    pub async fn get_app_server(&self, id: &str) -> StoreResult<AppServer> {
        let sql = format!("SELECT {COLUMNS} FROM app_servers WHERE id = $1");
        on_pool!(self, |p| sqlx::query_as::<_, AppServer>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?
        .ok_or(StoreError::NotFound)
    }

    pub async fn list_app_servers(
        &self,
        filter: &AppServerFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AppServer>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM app_servers
             WHERE ($1 IS NULL OR name = $1) AND ($2 IS NULL OR enabled = $2)
               AND ($3 IS NULL OR health = $3) AND ($4 IS NULL OR id > $4)
             ORDER BY id LIMIT $5"
        );
        let rows = on_pool!(self, |p| sqlx::query_as::<_, AppServer>(&sql)
            .bind(&filter.name)
            .bind(filter.enabled)
            .bind(&filter.health)
            .bind(&page.after)
            .bind(page.fetch_limit())
            .fetch_all(p)
            .await)?;
        Ok(Page::from_rows(rows, page, |a| &a.id))
    }

    pub async fn all_app_servers(&self) -> StoreResult<Vec<AppServer>> {
        let sql = format!("SELECT {COLUMNS} FROM app_servers ORDER BY id");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, AppServer>(&sql)
            .fetch_all(p)
            .await)?)
    }

    pub async fn update_app_server(&self, id: &str, f: &AppServerFields) -> StoreResult<AppServer> {
        let sql = format!(
            "UPDATE app_servers SET name = $2, uri = $3, priority = $4, weight = $5, enabled = $6, updated_at = $7
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        on_pool!(self, |p| sqlx::query_as::<_, AppServer>(&sql)
            .bind(id)
            .bind(&f.name)
            .bind(&f.uri)
            .bind(f.priority)
            .bind(f.weight)
            .bind(f.enabled)
            .bind(Timestamp::now())
            .fetch_optional(p)
            .await)
        .map_err(StoreError::classify)?
        .ok_or(StoreError::NotFound)
    }

    /// Records a health change seen by the OPTIONS prober.
    pub async fn set_app_server_health(&self, id: &str, health: &str) -> StoreResult<()> {
        on_pool!(self, |p| {
            sqlx::query(
            "UPDATE app_servers SET health = $2, health_changed_at = $3 WHERE id = $1 AND health <> $2"
        )
        .bind(id)
        .bind(health)
        .bind(Timestamp::now())
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Deletes an app server that no service pool contains.
    pub async fn delete_app_server(&self, id: &str) -> StoreResult<()> {
        let used: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM service_app_servers WHERE app_server_id = $1"
        )
        .bind(id)
        .fetch_one(p)
        .await)?;
        if used > 0 {
            return Err(StoreError::InUse(format!(
                "app server is in the pool of {used} service(s)"
            )));
        }
        self.delete_row("app_servers", id, "app server").await
    }
}
