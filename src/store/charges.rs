//! Application charges: amounts an app server bills on a session on top of
//! its time (SPEC §4, §5), posted over REST or in a SIP INFO. Each is
//! written once per `(session_id, idempotency_key)`, so a client that is
//! unsure whether its post arrived can simply send it again.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::stream::{Positioned, StreamPosition, StreamSql};
use super::{on_pool, Money, Store, StoreError, StoreResult, Timestamp};

/// A stored charge.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct ChargeRecord {
    /// Assigned on insert, never reused; increases in the order charges are
    /// written (on PostgreSQL, the stream is ordered by writing transaction
    /// first, so seq may go back across transactions).
    pub seq: i64,
    pub id: String,
    pub session_id: String,
    /// The app server serving the session when the charge was made.
    pub app_server_id: Option<String>,
    pub client_id: Option<String>,
    pub service_id: Option<String>,
    /// Greater than 0, at most 6 decimal places.
    pub amount: Money,
    #[schema(example = "EUR")]
    pub currency: String,
    pub description: Option<String>,
    /// The key the app server chose; unique per session.
    pub idempotency_key: String,
    /// `rest` or `sip` (a SIP INFO from the app server).
    #[schema(example = "rest")]
    pub source: String,
    pub created_at: Timestamp,
    /// Digest of what was charged, to tell a replay from a conflicting reuse
    /// of the key; internal.
    #[serde(skip)]
    #[schema(ignore)]
    pub request_hash: String,
}

/// A charge to record, built by `billing::charges` from a validated request
/// and the session it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCharge {
    pub id: String,
    pub session_id: String,
    pub app_server_id: Option<String>,
    pub client_id: Option<String>,
    pub service_id: Option<String>,
    pub amount: Money,
    pub currency: String,
    pub description: Option<String>,
    pub idempotency_key: String,
    pub request_hash: String,
    pub source: String,
    pub created_at: Timestamp,
}

/// What [`Store::record_charge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// The charge is new and now stored.
    Created(ChargeRecord),
    /// The same charge (same key, same content) was stored before; this is
    /// that first charge, unchanged.
    Replayed(ChargeRecord),
    /// The key was used before on this session for a different charge
    /// (amount, currency or description); this is the stored one. Nothing
    /// was written.
    Conflict(ChargeRecord),
}

#[derive(Debug, Clone, Default)]
pub struct ChargeFilter {
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created before.
    pub to: Option<Timestamp>,
    pub client_id: Option<String>,
    pub service_id: Option<String>,
    pub app_server_id: Option<String>,
    pub session_id: Option<String>,
}

const COLUMNS: &str =
    "id, session_id, app_server_id, client_id, service_id, amount, currency, description, \
     idempotency_key, request_hash, source, created_at";

/// Attempts at insert-then-read before giving up (see `record_charge`).
const ATTEMPTS: usize = 3;

impl Store {
    /// Records charges that were accepted in SIP (the ledger's batch
    /// write): each once, whatever happens. A key already used for a
    /// different charge cannot be undone here (the INFO was answered); it is
    /// logged and nothing is written.
    pub async fn record_accepted_charges(&self, charges: &[NewCharge]) -> StoreResult<()> {
        for c in charges {
            if let ChargeOutcome::Conflict(first) = self.record_charge(c).await? {
                tracing::warn!(session = %c.session_id, key = %c.idempotency_key, stored = %first.id,
                    "charge key already used for a different charge; the new one is not recorded");
            }
        }
        Ok(())
    }

    /// Records a charge once per `(session_id, idempotency_key)`.
    ///
    /// Safe under concurrent identical posts on both engines: the insert
    /// does nothing when the key exists (on PostgreSQL it first waits for a
    /// concurrent insert of the same key to commit or roll back), and the
    /// row that won is then read in a new statement, which sees it. A
    /// loser that finds no row (the winner rolled back between the two
    /// statements) tries again.
    pub async fn record_charge(&self, c: &NewCharge) -> StoreResult<ChargeOutcome> {
        let insert = format!(
            "INSERT INTO charges ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (session_id, idempotency_key) DO NOTHING
             RETURNING seq, {COLUMNS}"
        );
        let existing = format!(
            "SELECT seq, {COLUMNS} FROM charges WHERE session_id = $1 AND idempotency_key = $2"
        );
        for _ in 0..ATTEMPTS {
            let inserted = on_pool!(self, |p| sqlx::query_as::<_, ChargeRecord>(&insert)
                .bind(&c.id)
                .bind(&c.session_id)
                .bind(&c.app_server_id)
                .bind(&c.client_id)
                .bind(&c.service_id)
                .bind(c.amount)
                .bind(&c.currency)
                .bind(&c.description)
                .bind(&c.idempotency_key)
                .bind(&c.request_hash)
                .bind(&c.source)
                .bind(c.created_at)
                .fetch_optional(p)
                .await)
            .map_err(StoreError::classify)?;
            if let Some(row) = inserted {
                return Ok(ChargeOutcome::Created(row));
            }
            let first = on_pool!(self, |p| sqlx::query_as::<_, ChargeRecord>(&existing)
                .bind(&c.session_id)
                .bind(&c.idempotency_key)
                .fetch_optional(p)
                .await)?;
            if let Some(first) = first {
                return Ok(if first.request_hash == c.request_hash {
                    ChargeOutcome::Replayed(first)
                } else {
                    ChargeOutcome::Conflict(first)
                });
            }
        }
        Err(StoreError::Conflict(format!(
            "charge {}/{}: the key kept clashing with a write that did not last",
            c.session_id, c.idempotency_key
        )))
    }

    pub async fn get_charge(&self, id: &str) -> StoreResult<ChargeRecord> {
        let sql = format!("SELECT seq, {COLUMNS} FROM charges WHERE id = $1");
        on_pool!(self, |p| sqlx::query_as::<_, ChargeRecord>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?
        .ok_or(StoreError::NotFound)
    }

    /// Charges after `after` in stream order (see [`super::stream`]), at
    /// most `limit`, each with its position.
    pub async fn list_charges(
        &self,
        filter: &ChargeFilter,
        after: StreamPosition,
        limit: i64,
    ) -> StoreResult<Vec<Positioned<ChargeRecord>>> {
        let StreamSql {
            position_columns,
            after: after_clause,
            order_by,
        } = StreamSql::for_engine(self.engine());
        let sql = format!(
            "SELECT {position_columns}, {COLUMNS} FROM charges
             WHERE {after_clause} AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4)
               AND ($5 IS NULL OR client_id = $5) AND ($6 IS NULL OR service_id = $6)
               AND ($7 IS NULL OR app_server_id = $7) AND ($8 IS NULL OR session_id = $8)
             ORDER BY {order_by} LIMIT $9"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<
            _,
            Positioned<ChargeRecord>,
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
