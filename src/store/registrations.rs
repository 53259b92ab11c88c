//! Registrations published by the registrar (RFC 3261 §10): what each
//! node holds in memory, written behind in batches.

use serde::Serialize;
use utoipa::ToSchema;

use super::{on_pool, Page, PageRequest, Store, StoreError, StoreResult, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct Registration {
    pub id: String,
    pub client_id: String,
    /// Address of record.
    #[schema(example = "sip:alice@sip.example.com")]
    pub aor: String,
    /// The contact URI bound to the AOR.
    #[schema(example = "sip:alice@192.0.2.10:5060;transport=udp")]
    pub contact: String,
    /// Where the REGISTER came from (the flow requests to the client reuse).
    #[schema(example = "192.0.2.10:5060")]
    pub source: String,
    /// `UDP` or `TCP`.
    #[schema(example = "UDP")]
    pub transport: String,
    pub call_id: String,
    pub cseq: i64,
    pub user_agent: Option<String>,
    /// Node holding the binding.
    pub node: String,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct RegistrationFilter {
    pub client_id: Option<String>,
    pub aor: Option<String>,
}

const COLUMNS: &str =
    "id, client_id, aor, contact, source, transport, call_id, cseq, user_agent, node, expires_at, created_at, updated_at";

/// One change to publish.
#[derive(Debug, Clone)]
pub enum RegistrationChange {
    Upsert(Box<Registration>),
    Delete(String),
}

impl Store {
    /// Applies a batch of changes in one transaction.
    pub async fn apply_registration_changes(
        &self,
        changes: &[RegistrationChange],
    ) -> StoreResult<()> {
        let upsert = format!(
            "INSERT INTO registrations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (id) DO UPDATE SET contact = $4, source = $5, transport = $6, call_id = $7, cseq = $8,
                user_agent = $9, node = $10, expires_at = $11, updated_at = $13"
        );
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for change in changes {
                match change {
                    RegistrationChange::Upsert(r) => {
                        sqlx::query(&upsert)
                            .bind(&r.id)
                            .bind(&r.client_id)
                            .bind(&r.aor)
                            .bind(&r.contact)
                            .bind(&r.source)
                            .bind(&r.transport)
                            .bind(&r.call_id)
                            .bind(r.cseq)
                            .bind(&r.user_agent)
                            .bind(&r.node)
                            .bind(r.expires_at)
                            .bind(r.created_at)
                            .bind(r.updated_at)
                            .execute(&mut *tx)
                            .await?;
                    }
                    RegistrationChange::Delete(id) => {
                        sqlx::query("DELETE FROM registrations WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn get_registration(&self, id: &str) -> StoreResult<Registration> {
        let sql = format!("SELECT {COLUMNS} FROM registrations WHERE id = $1");
        on_pool!(self, |p| sqlx::query_as::<_, Registration>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?
        .ok_or(StoreError::NotFound)
    }

    /// Live bindings (unexpired), optionally of one client or AOR.
    pub async fn list_registrations(
        &self,
        filter: &RegistrationFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Registration>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM registrations
             WHERE expires_at > $1 AND ($2 IS NULL OR client_id = $2) AND ($3 IS NULL OR aor = $3)
               AND ($4 IS NULL OR id > $4)
             ORDER BY id LIMIT $5"
        );
        let rows = on_pool!(self, |p| sqlx::query_as::<_, Registration>(&sql)
            .bind(Timestamp::now())
            .bind(&filter.client_id)
            .bind(&filter.aor)
            .bind(&page.after)
            .bind(page.fetch_limit())
            .fetch_all(p)
            .await)?;
        Ok(Page::from_rows(rows, page, |r| &r.id))
    }

    /// This node's unexpired bindings, to restore them after a restart.
    pub async fn node_registrations(&self, node: &str) -> StoreResult<Vec<Registration>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM registrations WHERE node = $1 AND expires_at > $2 ORDER BY id"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<_, Registration>(&sql)
            .bind(node)
            .bind(Timestamp::now())
            .fetch_all(p)
            .await)?)
    }

    /// Removes one binding; false when there was none.
    pub async fn delete_registration(&self, id: &str) -> StoreResult<bool> {
        let n = on_pool!(self, |p| sqlx::query(
            "DELETE FROM registrations WHERE id = $1"
        )
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }
}
