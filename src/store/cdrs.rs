//! Call detail records: one per session segment, written exactly once
//! (the id makes a replay harmless) and numbered by `seq` in the order they
//! reach the database; billing systems pull them with a cursor that never
//! skips one (see [`super::stream`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::bulk::insert_rows;
use super::stream::{Positioned, StreamPosition, StreamSql};
use super::{on_pool, Money, Store, StoreResult, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, Deserialize, ToSchema)]
pub struct CdrRecord {
    /// Assigned on insert, never reused; increases in the order CDRs are
    /// written (on PostgreSQL, the stream is ordered by writing transaction
    /// first, so seq may go back across transactions).
    pub seq: i64,
    pub id: String,
    pub session_id: String,
    pub request_id: String,
    /// 1 for the first app server of the session, then 2, 3 … on changes.
    pub segment: i32,
    pub client_id: Option<String>,
    pub service_id: Option<String>,
    pub app_server_id: Option<String>,
    pub caller_uri: String,
    pub callee_uri: String,
    pub client_call_id: String,
    pub as_call_id: Option<String>,
    pub created_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Timestamp,
    pub duration_ms: i64,
    pub billed_seconds: i64,
    pub tariff_id: Option<String>,
    /// Rounded half-up to 6 decimal places.
    pub amount: Money,
    pub currency: Option<String>,
    pub end_reason: String,
    pub final_status: Option<i32>,
    pub node: String,
}

#[derive(Debug, Clone, Default)]
pub struct CdrFilter {
    /// Ended at or after.
    pub from: Option<Timestamp>,
    /// Ended before.
    pub to: Option<Timestamp>,
    pub client_id: Option<String>,
    pub service_id: Option<String>,
    pub app_server_id: Option<String>,
    pub session_id: Option<String>,
}

const COLUMNS: &str = "id, session_id, request_id, segment, client_id, service_id, app_server_id, caller_uri, callee_uri, \
     client_call_id, as_call_id, created_at, answered_at, ended_at, duration_ms, billed_seconds, tariff_id, amount, currency, \
     end_reason, final_status, node";

impl Store {
    /// Inserts CDRs; one already stored (same id) is left as it is, so a
    /// batch can be written again after a failure without double counting.
    pub async fn insert_cdrs(&self, cdrs: &[CdrRecord]) -> StoreResult<()> {
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            // One multi-row statement per chunk (see `bulk`); rows of one
            // VALUES list are inserted in order, so `seq` follows the batch.
            // DO NOTHING also tolerates the same id twice in one statement.
            insert_rows!(
                self,
                tx,
                cdrs,
                "cdrs",
                COLUMNS,
                "ON CONFLICT DO NOTHING",
                |q, c| q
                    .bind(c.id.as_str())
                    .bind(c.session_id.as_str())
                    .bind(c.request_id.as_str())
                    .bind(c.segment)
                    .bind(c.client_id.as_deref())
                    .bind(c.service_id.as_deref())
                    .bind(c.app_server_id.as_deref())
                    .bind(c.caller_uri.as_str())
                    .bind(c.callee_uri.as_str())
                    .bind(c.client_call_id.as_str())
                    .bind(c.as_call_id.as_deref())
                    .bind(c.created_at)
                    .bind(c.answered_at)
                    .bind(c.ended_at)
                    .bind(c.duration_ms)
                    .bind(c.billed_seconds)
                    .bind(c.tariff_id.as_deref())
                    .bind(c.amount)
                    .bind(c.currency.as_deref())
                    .bind(c.end_reason.as_str())
                    .bind(c.final_status)
                    .bind(c.node.as_str())
            );
            tx.commit().await?;
        });
        Ok(())
    }

    /// CDRs after `after` in stream order (see [`super::stream`]), at most
    /// `limit`, each with its position.
    pub async fn list_cdrs(
        &self,
        filter: &CdrFilter,
        after: StreamPosition,
        limit: i64,
    ) -> StoreResult<Vec<Positioned<CdrRecord>>> {
        let StreamSql {
            position_columns,
            after: after_clause,
            order_by,
        } = StreamSql::for_engine(self.engine());
        let sql = format!(
            "SELECT {position_columns}, {COLUMNS} FROM cdrs
             WHERE {after_clause} AND ($3 IS NULL OR ended_at >= $3) AND ($4 IS NULL OR ended_at < $4)
               AND ($5 IS NULL OR client_id = $5) AND ($6 IS NULL OR service_id = $6)
               AND ($7 IS NULL OR app_server_id = $7) AND ($8 IS NULL OR session_id = $8)
             ORDER BY {order_by} LIMIT $9"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<
            _,
            Positioned<CdrRecord>,
        >(&sql)
        .bind(after.txid)
        .bind(after.seq)
        .bind(filter.from)
        .bind(filter.to)
        .bind(&filter.client_id)
        .bind(&filter.service_id)
        .bind(&filter.app_server_id)
        .bind(&filter.session_id)
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }
}
