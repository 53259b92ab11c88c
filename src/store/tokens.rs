//! Scoped API tokens minted by admins. The token text itself is a signed
//! JWT handed out once; the row is what makes it revocable.

use serde::Serialize;
use utoipa::ToSchema;

use super::{on_pool, Page, PageRequest, Store, StoreError, StoreResult, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct ApiToken {
    pub id: String,
    #[schema(example = "billing-export")]
    pub name: String,
    /// `admin`, `billing` or `app_server`.
    #[schema(example = "billing")]
    pub role: String,
    /// For role `app_server`: the app server it speaks for.
    pub app_server_id: Option<String>,
    /// Admin who minted it.
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    pub role: Option<String>,
    pub app_server_id: Option<String>,
    pub include_revoked: bool,
}

const COLUMNS: &str =
    "id, name, role, app_server_id, created_by, created_at, expires_at, revoked_at";

impl Store {
    pub async fn create_token(&self, t: &ApiToken) -> StoreResult<ApiToken> {
        let sql = format!("INSERT INTO api_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) RETURNING {COLUMNS}");
        on_pool!(self, |p| sqlx::query_as::<_, ApiToken>(&sql)
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.role)
            .bind(&t.app_server_id)
            .bind(&t.created_by)
            .bind(t.created_at)
            .bind(t.expires_at)
            .fetch_one(p)
            .await)
        .map_err(StoreError::classify)
    }

    pub async fn get_token(&self, id: &str) -> StoreResult<ApiToken> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1");
        on_pool!(self, |p| sqlx::query_as::<_, ApiToken>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?
        .ok_or(StoreError::NotFound)
    }

    pub async fn list_tokens(
        &self,
        filter: &TokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<ApiToken>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_tokens
             WHERE ($1 IS NULL OR role = $1) AND ($2 IS NULL OR app_server_id = $2)
               AND ($3 OR revoked_at IS NULL) AND ($4 IS NULL OR id > $4)
             ORDER BY id LIMIT $5"
        );
        let rows = on_pool!(self, |p| sqlx::query_as::<_, ApiToken>(&sql)
            .bind(&filter.role)
            .bind(&filter.app_server_id)
            .bind(filter.include_revoked)
            .bind(&page.after)
            .bind(page.fetch_limit())
            .fetch_all(p)
            .await)?;
        Ok(Page::from_rows(rows, page, |t| &t.id))
    }

    /// Marks a token revoked; revoking twice is not an error.
    pub async fn revoke_token(&self, id: &str) -> StoreResult<()> {
        let affected = on_pool!(self, |p| sqlx::query(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1"
        )
        .bind(id)
        .bind(Timestamp::now())
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        if affected == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
