//! Tariffs: how a session's time is priced (SPEC §4).

use serde::Serialize;
use utoipa::ToSchema;

use super::{new_id, on_pool, Money, Page, PageRequest, Store, StoreError, StoreResult, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct Tariff {
    #[schema(example = "01933b1e-6a1f-7c3e-9a53-0d3c1f9b2a11")]
    pub id: String,
    #[schema(example = "standard-eur")]
    pub name: String,
    /// ISO 4217 code.
    #[schema(example = "EUR")]
    pub currency: String,
    /// Charged once per answered session.
    pub setup_fee: Money,
    pub price_per_minute: Money,
    /// Minimum billed seconds of an answered session.
    #[schema(example = 60)]
    pub minimum_seconds: i32,
    /// Billing increment in seconds (60 for 60/60, 6 for 30/6, 1 for 1/1).
    #[schema(example = 60)]
    pub increment_seconds: i32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The fields an operator sets.
#[derive(Debug, Clone)]
pub struct TariffFields {
    pub name: String,
    pub currency: String,
    pub setup_fee: Money,
    pub price_per_minute: Money,
    pub minimum_seconds: i32,
    pub increment_seconds: i32,
}

#[derive(Debug, Clone, Default)]
pub struct TariffFilter {
    pub currency: Option<String>,
    pub name: Option<String>,
}

const COLUMNS: &str = "id, name, currency, setup_fee, price_per_minute, minimum_seconds, increment_seconds, created_at, updated_at";

impl Store {
    pub async fn create_tariff(&self, f: &TariffFields) -> StoreResult<Tariff> {
        let now = Timestamp::now();
        let sql = format!(
            "INSERT INTO tariffs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {COLUMNS}"
        );
        on_pool!(self, |p| sqlx::query_as::<_, Tariff>(&sql)
            .bind(new_id())
            .bind(&f.name)
            .bind(&f.currency)
            .bind(f.setup_fee)
            .bind(f.price_per_minute)
            .bind(f.minimum_seconds)
            .bind(f.increment_seconds)
            .bind(now)
            .fetch_one(p)
            .await)
        .map_err(StoreError::classify)
    }

    pub async fn get_tariff(&self, id: &str) -> StoreResult<Tariff> {
        let sql = format!("SELECT {COLUMNS} FROM tariffs WHERE id = $1");
        on_pool!(self, |p| sqlx::query_as::<_, Tariff>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?
        .ok_or(StoreError::NotFound)
    }

    pub async fn list_tariffs(
        &self,
        filter: &TariffFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Tariff>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tariffs
             WHERE ($1 IS NULL OR currency = $1) AND ($2 IS NULL OR name = $2) AND ($3 IS NULL OR id > $3)
             ORDER BY id LIMIT $4"
        );
        let rows = on_pool!(self, |p| sqlx::query_as::<_, Tariff>(&sql)
            .bind(&filter.currency)
            .bind(&filter.name)
            .bind(&page.after)
            .bind(page.fetch_limit())
            .fetch_all(p)
            .await)?;
        Ok(Page::from_rows(rows, page, |t| &t.id))
    }

    /// Every tariff, for the relay's in-memory catalog.
    pub async fn all_tariffs(&self) -> StoreResult<Vec<Tariff>> {
        let sql = format!("SELECT {COLUMNS} FROM tariffs ORDER BY id");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, Tariff>(&sql)
            .fetch_all(p)
            .await)?)
    }

    pub async fn update_tariff(&self, id: &str, f: &TariffFields) -> StoreResult<Tariff> {
        let sql = format!(
            "UPDATE tariffs SET name = $2, currency = $3, setup_fee = $4, price_per_minute = $5,
                    minimum_seconds = $6, increment_seconds = $7, updated_at = $8
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        on_pool!(self, |p| sqlx::query_as::<_, Tariff>(&sql)
            .bind(id)
            .bind(&f.name)
            .bind(&f.currency)
            .bind(f.setup_fee)
            .bind(f.price_per_minute)
            .bind(f.minimum_seconds)
            .bind(f.increment_seconds)
            .bind(Timestamp::now())
            .fetch_optional(p)
            .await)
        .map_err(StoreError::classify)?
        .ok_or(StoreError::NotFound)
    }

    /// Deletes a tariff that no client or service uses.
    pub async fn delete_tariff(&self, id: &str) -> StoreResult<()> {
        let (clients, services): (i64, i64) = on_pool!(self, |p| sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM clients WHERE tariff_id = $1),
                    (SELECT COUNT(*) FROM services WHERE tariff_id = $1)"
        )
        .bind(id)
        .fetch_one(p)
        .await)?;
        if clients + services > 0 {
            return Err(StoreError::InUse(format!(
                "tariff is used by {clients} client(s) and {services} service(s)"
            )));
        }
        self.delete_row("tariffs", id, "tariff").await
    }

    /// Deletes one row by id; a foreign key that still points at it is
    /// reported as `InUse` (the explicit checks above can race a writer).
    pub(crate) async fn delete_row(
        &self,
        table: &'static str,
        id: &str,
        what: &str,
    ) -> StoreResult<()> {
        let sql = format!("DELETE FROM {table} WHERE id = $1");
        let result = on_pool!(self, |p| sqlx::query(&sql)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()));
        match result {
            Ok(0) => Err(StoreError::NotFound),
            Ok(_) => Ok(()),
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_foreign_key_violation()) =>
            {
                Err(StoreError::InUse(format!("{what} is still referenced")))
            }
            Err(e) => Err(StoreError::classify(e)),
        }
    }
}
