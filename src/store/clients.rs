//! SIP client accounts. Passwords are never stored: only the digest HA1
//! values for the realm (RFC 7616 §3.4.2), one per algorithm offered.

use serde::Serialize;
use utoipa::ToSchema;

use super::{new_id, on_pool, Page, PageRequest, Store, StoreError, StoreResult, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct Client {
    pub id: String,
    #[schema(example = "alice")]
    pub username: String,
    /// Digest realm the stored hashes were computed for.
    #[schema(example = "sip.example.com")]
    pub realm: String,
    #[serde(skip)]
    #[schema(ignore)]
    pub ha1_md5: String,
    #[serde(skip)]
    #[schema(ignore)]
    pub ha1_sha256: String,
    #[schema(example = "Alice")]
    pub display_name: Option<String>,
    pub enabled: bool,
    /// Overrides the service's tariff for this client.
    pub tariff_id: Option<String>,
    /// Concurrent sessions allowed; none means unlimited.
    #[schema(example = 4)]
    pub max_sessions: Option<i32>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Everything stored for a client except id and times.
#[derive(Debug, Clone)]
pub struct ClientFields {
    pub username: String,
    pub realm: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    pub display_name: Option<String>,
    pub enabled: bool,
    pub tariff_id: Option<String>,
    pub max_sessions: Option<i32>,
}

impl From<Client> for ClientFields {
    fn from(c: Client) -> Self {
        Self {
            username: c.username,
            realm: c.realm,
            ha1_md5: c.ha1_md5,
            ha1_sha256: c.ha1_sha256,
            display_name: c.display_name,
            enabled: c.enabled,
            tariff_id: c.tariff_id,
            max_sessions: c.max_sessions,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ClientFilter {
    pub username: Option<String>,
    pub enabled: Option<bool>,
    pub tariff_id: Option<String>,
}

const COLUMNS: &str = "id, username, realm, ha1_md5, ha1_sha256, display_name, enabled, tariff_id, max_sessions, created_at, updated_at";

impl Store {
    pub async fn create_client(&self, f: &ClientFields) -> StoreResult<Client> {
        let sql = format!(
            "INSERT INTO clients ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {COLUMNS}"
        );
        on_pool!(self, |p| sqlx::query_as::<_, Client>(&sql)
            .bind(new_id())
            .bind(&f.username)
            .bind(&f.realm)
            .bind(&f.ha1_md5)
            .bind(&f.ha1_sha256)
            .bind(&f.display_name)
            .bind(f.enabled)
            .bind(&f.tariff_id)
            .bind(f.max_sessions)
            .bind(Timestamp::now())
            .fetch_one(p)
            .await)
        .map_err(StoreError::classify)
    }

    pub async fn get_client(&self, id: &str) -> StoreResult<Client> {
        let sql = format!("SELECT {COLUMNS} FROM clients WHERE id = $1");
        on_pool!(self, |p| sqlx::query_as::<_, Client>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?
        .ok_or(StoreError::NotFound)
    }

    pub async fn list_clients(
        &self,
        filter: &ClientFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Client>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM clients
             WHERE ($1 IS NULL OR username = $1) AND ($2 IS NULL OR enabled = $2)
               AND ($3 IS NULL OR tariff_id = $3) AND ($4 IS NULL OR id > $4)
             ORDER BY id LIMIT $5"
        );
        let rows = on_pool!(self, |p| sqlx::query_as::<_, Client>(&sql)
            .bind(&filter.username)
            .bind(filter.enabled)
            .bind(&filter.tariff_id)
            .bind(&page.after)
            .bind(page.fetch_limit())
            .fetch_all(p)
            .await)?;
        Ok(Page::from_rows(rows, page, |c| &c.id))
    }

    /// Every client, for the relay's in-memory credential table.
    pub async fn all_clients(&self) -> StoreResult<Vec<Client>> {
        let sql = format!("SELECT {COLUMNS} FROM clients ORDER BY id");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, Client>(&sql)
            .fetch_all(p)
            .await)?)
    }

    pub async fn update_client(&self, id: &str, f: &ClientFields) -> StoreResult<Client> {
        let sql = format!(
            "UPDATE clients SET username = $2, realm = $3, ha1_md5 = $4, ha1_sha256 = $5, display_name = $6,
                    enabled = $7, tariff_id = $8, max_sessions = $9, updated_at = $10
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        on_pool!(self, |p| sqlx::query_as::<_, Client>(&sql)
            .bind(id)
            .bind(&f.username)
            .bind(&f.realm)
            .bind(&f.ha1_md5)
            .bind(&f.ha1_sha256)
            .bind(&f.display_name)
            .bind(f.enabled)
            .bind(&f.tariff_id)
            .bind(f.max_sessions)
            .bind(Timestamp::now())
            .fetch_optional(p)
            .await)
        .map_err(StoreError::classify)?
        .ok_or(StoreError::NotFound)
    }

    pub async fn delete_client(&self, id: &str) -> StoreResult<()> {
        self.delete_row("clients", id, "client").await
    }
}
