//! The queries behind billing reports: CDRs and charges grouped by client,
//! service, app server or day, and by currency, as
//! [`Partial`] rows, which `billing::report` adds up.
//!
//! Money never passes through a float: PostgreSQL sums NUMERIC exactly;
//! SQLite stores amounts as decimal text, which its SUM would read as
//! floating point, so there each distinct amount comes back with the number
//! of times it occurs and `billing::report` multiplies and adds in decimal.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{on_pool, Engine, Money, Store, StoreResult, Timestamp};

/// What a report is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Client,
    Service,
    AppServer,
    /// The UTC day (`YYYY-MM-DD`) a CDR ended or a charge was made.
    Day,
}

/// Part of a group's totals as a query returns it: `amount` counts `times`
/// times (PostgreSQL: the group's sum, once; SQLite: one distinct amount,
/// as often as it occurs).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Partial {
    pub key: Option<String>,
    pub currency: Option<String>,
    pub amount: Money,
    pub times: i64,
    /// Rows counted.
    pub count: i64,
    /// CDRs only; 0 for charges.
    pub answered: i64,
    pub duration_ms: i64,
    pub billed_seconds: i64,
}

/// The grouping column of a table whose instant column is `at`.
fn key_sql(engine: Engine, group_by: GroupBy, at: &str) -> String {
    match group_by {
        GroupBy::Client => "client_id".into(),
        GroupBy::Service => "service_id".into(),
        GroupBy::AppServer => "app_server_id".into(),
        GroupBy::Day => match engine {
            Engine::Postgres => format!("to_char({at} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
            // Milliseconds since the epoch; the day of an instant before
            // 1970 would round the wrong way, and there are none.
            Engine::Sqlite => format!("strftime('%Y-%m-%d', {at} / 1000, 'unixepoch')"),
        },
    }
}

/// `amount` and `times` of a partial row, and the extra GROUP BY column.
fn amount_sql(engine: Engine) -> (&'static str, &'static str) {
    match engine {
        Engine::Postgres => ("SUM(amount) AS amount, CAST(1 AS BIGINT) AS times", ""),
        Engine::Sqlite => ("amount, COUNT(*) AS times", ", amount"),
    }
}

impl Store {
    /// CDRs that ended in `[from, to)`, grouped.
    pub async fn report_cdrs(
        &self,
        group_by: GroupBy,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> StoreResult<Vec<Partial>> {
        let engine = self.engine();
        let key = key_sql(engine, group_by, "ended_at");
        let (amount, group_amount) = amount_sql(engine);
        let sql = format!(
            "SELECT {key} AS key, currency, {amount}, COUNT(*) AS count,
                CAST(SUM(CASE WHEN answered_at IS NULL THEN 0 ELSE 1 END) AS BIGINT) AS answered,
                CAST(SUM(duration_ms) AS BIGINT) AS duration_ms,
                CAST(SUM(billed_seconds) AS BIGINT) AS billed_seconds
             FROM cdrs
             WHERE ($1 IS NULL OR ended_at >= $1) AND ($2 IS NULL OR ended_at < $2)
             GROUP BY {key}, currency{group_amount}"
        );
        self.partials(&sql, from, to).await
    }

    /// Charges made in `[from, to)`, grouped.
    pub async fn report_charges(
        &self,
        group_by: GroupBy,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> StoreResult<Vec<Partial>> {
        let engine = self.engine();
        let key = key_sql(engine, group_by, "created_at");
        let (amount, group_amount) = amount_sql(engine);
        let sql = format!(
            "SELECT {key} AS key, currency, {amount}, COUNT(*) AS count,
                CAST(0 AS BIGINT) AS answered, CAST(0 AS BIGINT) AS duration_ms,
                CAST(0 AS BIGINT) AS billed_seconds
             FROM charges
             WHERE ($1 IS NULL OR created_at >= $1) AND ($2 IS NULL OR created_at < $2)
             GROUP BY {key}, currency{group_amount}"
        );
        self.partials(&sql, from, to).await
    }

    async fn partials(
        &self,
        sql: &str,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> StoreResult<Vec<Partial>> {
        Ok(on_pool!(self, |p| sqlx::query_as::<_, Partial>(sql)
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await)?)
    }
}
