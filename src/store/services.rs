//! Services and their app server pools.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::{new_id, on_pool, Page, PageRequest, Store, StoreError, StoreResult, Timestamp};

/// How a service uses its pool (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Priority order; the next app server on 408, 5xx or no answer.
    Failover,
    /// Each request starts at the next app server in turn.
    RoundRobin,
    /// Random order weighted by each app server's `weight`.
    Weighted,
    /// Every available app server at once (fan-out).
    Parallel,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failover => "failover",
            Self::RoundRobin => "round_robin",
            Self::Weighted => "weighted",
            Self::Parallel => "parallel",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Failover,
            Self::RoundRobin,
            Self::Weighted,
            Self::Parallel,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Service {
    pub id: String,
    #[schema(example = "voicemail")]
    pub name: String,
    pub strategy: Strategy,
    /// The pool, in the order given.
    pub app_server_ids: Vec<String>,
    pub tariff_id: Option<String>,
    /// Give up on an unanswered inquiry after this many seconds (Timer C otherwise).
    #[schema(example = 30)]
    pub ring_timeout_seconds: Option<i32>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct ServiceRow {
    id: String,
    name: String,
    strategy: String,
    tariff_id: Option<String>,
    ring_timeout_seconds: Option<i32>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct ServiceFields {
    pub name: String,
    pub strategy: Strategy,
    pub app_server_ids: Vec<String>,
    pub tariff_id: Option<String>,
    pub ring_timeout_seconds: Option<i32>,
}

impl From<Service> for ServiceFields {
    fn from(s: Service) -> Self {
        Self {
            name: s.name,
            strategy: s.strategy,
            app_server_ids: s.app_server_ids,
            tariff_id: s.tariff_id,
            ring_timeout_seconds: s.ring_timeout_seconds,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ServiceFilter {
    pub name: Option<String>,
    pub strategy: Option<Strategy>,
    pub app_server_id: Option<String>,
    pub tariff_id: Option<String>,
}

const COLUMNS: &str = "id, name, strategy, tariff_id, ring_timeout_seconds, created_at, updated_at";

impl Store {
    /// Ids among `ids` that name no app server.
    pub async fn unknown_app_servers(&self, ids: &[String]) -> StoreResult<Vec<String>> {
        let mut unknown = Vec::new();
        for id in ids {
            let found: Option<String> = on_pool!(self, |p| sqlx::query_scalar(
                "SELECT id FROM app_servers WHERE id = $1"
            )
            .bind(id)
            .fetch_optional(p)
            .await)?;
            if found.is_none() {
                unknown.push(id.clone());
            }
        }
        Ok(unknown)
    }

    pub async fn create_service(&self, f: &ServiceFields) -> StoreResult<Service> {
        let id = new_id();
        let now = Timestamp::now();
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(&format!(
                "INSERT INTO services ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $6)"
            ))
            .bind(&id)
            .bind(&f.name)
            .bind(f.strategy.as_str())
            .bind(&f.tariff_id)
            .bind(f.ring_timeout_seconds)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::classify)?;
            for (position, as_id) in f.app_server_ids.iter().enumerate() {
                sqlx::query("INSERT INTO service_app_servers (service_id, app_server_id, position) VALUES ($1, $2, $3)")
                    .bind(&id)
                    .bind(as_id)
                    .bind(position as i32)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::classify)?;
            }
            tx.commit().await?;
        });
        self.get_service(&id).await
    }

    pub async fn get_service(&self, id: &str) -> StoreResult<Service> {
        let sql = format!("SELECT {COLUMNS} FROM services WHERE id = $1");
        let row = on_pool!(self, |p| sqlx::query_as::<_, ServiceRow>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?
        .ok_or(StoreError::NotFound)?;
        let mut services = self.attach_pools(vec![row]).await?;
        services.pop().ok_or(StoreError::NotFound)
    }

    pub async fn list_services(
        &self,
        filter: &ServiceFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Service>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM services s
             WHERE ($1 IS NULL OR name = $1) AND ($2 IS NULL OR strategy = $2)
               AND ($3 IS NULL OR EXISTS (SELECT 1 FROM service_app_servers m WHERE m.service_id = s.id AND m.app_server_id = $3))
               AND ($4 IS NULL OR tariff_id = $4) AND ($5 IS NULL OR id > $5)
             ORDER BY id LIMIT $6"
        );
        let rows = on_pool!(self, |p| sqlx::query_as::<_, ServiceRow>(&sql)
            .bind(&filter.name)
            .bind(filter.strategy.map(Strategy::as_str))
            .bind(&filter.app_server_id)
            .bind(&filter.tariff_id)
            .bind(&page.after)
            .bind(page.fetch_limit())
            .fetch_all(p)
            .await)?;
        let services = self.attach_pools(rows).await?;
        Ok(Page::from_rows(services, page, |s| &s.id))
    }

    pub async fn all_services(&self) -> StoreResult<Vec<Service>> {
        let sql = format!("SELECT {COLUMNS} FROM services ORDER BY id");
        let rows = on_pool!(self, |p| sqlx::query_as::<_, ServiceRow>(&sql)
            .fetch_all(p)
            .await)?;
        self.attach_pools(rows).await
    }

    /// Adds each service's pool with one query: the rows are sorted by id,
    /// so every pool member of the page lies between its first and last id.
    async fn attach_pools(&self, rows: Vec<ServiceRow>) -> StoreResult<Vec<Service>> {
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(Vec::new());
        };
        let members: Vec<(String, String)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT service_id, app_server_id FROM service_app_servers
             WHERE service_id >= $1 AND service_id <= $2 ORDER BY service_id, position"
        )
        .bind(&first.id)
        .bind(&last.id)
        .fetch_all(p)
        .await)?;
        let mut pools: HashMap<String, Vec<String>> = HashMap::new();
        for (service_id, as_id) in members {
            pools.entry(service_id).or_default().push(as_id);
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let app_server_ids = pools.remove(&row.id).unwrap_or_default();
            let strategy = Strategy::parse(&row.strategy).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "service {} has strategy '{}'",
                    row.id, row.strategy
                ))
            })?;
            out.push(Service {
                id: row.id,
                name: row.name,
                strategy,
                app_server_ids,
                tariff_id: row.tariff_id,
                ring_timeout_seconds: row.ring_timeout_seconds,
                created_at: row.created_at,
                updated_at: row.updated_at,
            });
        }
        Ok(out)
    }

    pub async fn update_service(&self, id: &str, f: &ServiceFields) -> StoreResult<Service> {
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let updated = sqlx::query(
                "UPDATE services SET name = $2, strategy = $3, tariff_id = $4, ring_timeout_seconds = $5, updated_at = $6
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&f.name)
            .bind(f.strategy.as_str())
            .bind(&f.tariff_id)
            .bind(f.ring_timeout_seconds)
            .bind(Timestamp::now())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::classify)?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM service_app_servers WHERE service_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for (position, as_id) in f.app_server_ids.iter().enumerate() {
                sqlx::query("INSERT INTO service_app_servers (service_id, app_server_id, position) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(as_id)
                    .bind(position as i32)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::classify)?;
            }
            tx.commit().await?;
        });
        self.get_service(id).await
    }

    /// Deletes a service that no rule points to.
    pub async fn delete_service(&self, id: &str) -> StoreResult<()> {
        let used: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM rules WHERE service_id = $1"
        )
        .bind(id)
        .fetch_one(p)
        .await)?;
        if used > 0 {
            return Err(StoreError::InUse(format!(
                "service is the target of {used} rule(s)"
            )));
        }
        self.delete_row("services", id, "service").await
    }
}
