//! Sessions as the relay publishes them: one row per session (rewritten as
//! its state changes), its legs, and an append-only trail of events.

use serde::Serialize;
use utoipa::ToSchema;

use super::{on_pool, Page, PageRequest, Store, StoreError, StoreResult, Timestamp};

/// Session states: `proceeding` (inquiring), `answered` (2xx relayed,
/// waiting for the ACK), `established`, `ended`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct SessionRecord {
    pub id: String,
    /// Shared by the sessions that one client request created (fan-out).
    pub request_id: String,
    #[schema(example = "established")]
    pub state: String,
    pub client_id: Option<String>,
    pub service_id: Option<String>,
    pub rule_id: Option<String>,
    pub app_server_id: Option<String>,
    #[schema(example = "sip:alice@sip.example.com")]
    pub caller_uri: String,
    #[schema(example = "sip:voicemail@sip.example.com")]
    pub callee_uri: String,
    pub client_call_id: String,
    pub as_call_id: Option<String>,
    pub node: String,
    pub created_at: Timestamp,
    /// When the client's ACK confirmed the session (billing starts).
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// From answer to end, in milliseconds.
    pub duration_ms: Option<i64>,
    /// `client_bye`, `as_bye`, `cancel`, `rejected`, `no_ack`, `as_failure`,
    /// `session_timer`, `admin`, `restart`, …
    pub end_reason: Option<String>,
    /// The final SIP status the client received.
    pub final_status: Option<i32>,
}

/// One dialog of a session: the client leg, or an AS leg.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct LegRecord {
    pub id: String,
    pub session_id: String,
    /// `client` or `as`.
    #[schema(example = "as")]
    pub kind: String,
    pub app_server_id: Option<String>,
    pub call_id: String,
    pub local_tag: Option<String>,
    pub remote_tag: Option<String>,
    pub remote_uri: Option<String>,
    pub created_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

/// Something that happened to a session.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct SessionEventRecord {
    /// Order of events across the whole database.
    pub seq: i64,
    pub session_id: String,
    pub at: Timestamp,
    #[schema(example = "established")]
    pub kind: String,
    pub detail: Option<String>,
}

/// One billing segment of a session: the stretch of time one app server
/// delivered one service (SPEC §4). A session that moves to another AS
/// (session change, transfer) gets a new segment; each is billed on its
/// own CDR.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct SegmentRecord {
    pub session_id: String,
    /// 1 for the first app server, then 2, 3, …
    pub segment: i32,
    pub service_id: Option<String>,
    pub app_server_id: Option<String>,
    /// When this app server's part began (the client's ACK, or the moment
    /// the session moved to it).
    pub started_at: Timestamp,
    /// When it ended (the session ended or moved on); open while it lasts.
    pub ended_at: Option<Timestamp>,
}

impl SegmentRecord {
    /// From start to end, in milliseconds (none while open).
    pub fn duration_ms(&self) -> Option<i64> {
        self.ended_at
            .map(|e| (e.millis() - self.started_at.millis()).max(0))
    }
}

/// One change to publish; applied in order.
#[derive(Debug, Clone)]
pub enum SessionChange {
    Session(Box<SessionRecord>),
    Leg(Box<LegRecord>),
    Segment(Box<SegmentRecord>),
    Event {
        session_id: String,
        at: Timestamp,
        kind: String,
        detail: Option<String>,
    },
}

#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub state: Option<String>,
    pub client_id: Option<String>,
    pub service_id: Option<String>,
    pub app_server_id: Option<String>,
    pub request_id: Option<String>,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created before.
    pub to: Option<Timestamp>,
}

pub(super) const SESSION_COLUMNS: &str = "id, request_id, state, client_id, service_id, rule_id, app_server_id, caller_uri, callee_uri, \
     client_call_id, as_call_id, node, created_at, answered_at, ended_at, duration_ms, end_reason, final_status";
const LEG_COLUMNS: &str = "id, session_id, kind, app_server_id, call_id, local_tag, remote_tag, remote_uri, created_at, ended_at";
const SEGMENT_COLUMNS: &str =
    "session_id, segment, service_id, app_server_id, started_at, ended_at";

impl Store {
    /// Applies a batch of changes in one transaction.
    pub async fn apply_session_changes(&self, changes: &[SessionChange]) -> StoreResult<()> {
        let upsert_session = format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             ON CONFLICT (id) DO UPDATE SET state = $3, service_id = $5, rule_id = $6, app_server_id = $7,
                client_call_id = $10, as_call_id = $11, answered_at = $14,
                ended_at = $15, duration_ms = $16, end_reason = $17, final_status = $18"
        );
        let upsert_leg = format!(
            "INSERT INTO session_legs ({LEG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET local_tag = $6, remote_tag = $7, remote_uri = $8, ended_at = $10"
        );
        let upsert_segment = format!(
            "INSERT INTO session_segments ({SEGMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (session_id, segment) DO UPDATE SET ended_at = $6"
        );
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for change in changes {
                match change {
                    SessionChange::Session(s) => {
                        sqlx::query(&upsert_session)
                            .bind(&s.id)
                            .bind(&s.request_id)
                            .bind(&s.state)
                            .bind(&s.client_id)
                            .bind(&s.service_id)
                            .bind(&s.rule_id)
                            .bind(&s.app_server_id)
                            .bind(&s.caller_uri)
                            .bind(&s.callee_uri)
                            .bind(&s.client_call_id)
                            .bind(&s.as_call_id)
                            .bind(&s.node)
                            .bind(s.created_at)
                            .bind(s.answered_at)
                            .bind(s.ended_at)
                            .bind(s.duration_ms)
                            .bind(&s.end_reason)
                            .bind(s.final_status)
                            .execute(&mut *tx)
                            .await?;
                    }
                    SessionChange::Leg(l) => {
                        sqlx::query(&upsert_leg)
                            .bind(&l.id)
                            .bind(&l.session_id)
                            .bind(&l.kind)
                            .bind(&l.app_server_id)
                            .bind(&l.call_id)
                            .bind(&l.local_tag)
                            .bind(&l.remote_tag)
                            .bind(&l.remote_uri)
                            .bind(l.created_at)
                            .bind(l.ended_at)
                            .execute(&mut *tx)
                            .await?;
                    }
                    SessionChange::Segment(g) => {
                        sqlx::query(&upsert_segment)
                            .bind(&g.session_id)
                            .bind(g.segment)
                            .bind(&g.service_id)
                            .bind(&g.app_server_id)
                            .bind(g.started_at)
                            .bind(g.ended_at)
                            .execute(&mut *tx)
                            .await?;
                    }
                    SessionChange::Event {
                        session_id,
                        at,
                        kind,
                        detail,
                    } => {
                        sqlx::query("INSERT INTO session_events (session_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
                            .bind(session_id)
                            .bind(*at)
                            .bind(kind)
                            .bind(detail)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn get_session(&self, id: &str) -> StoreResult<SessionRecord> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        on_pool!(self, |p| sqlx::query_as::<_, SessionRecord>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?
        .ok_or(StoreError::NotFound)
    }

    pub async fn session_legs(&self, session_id: &str) -> StoreResult<Vec<LegRecord>> {
        let sql = format!(
            "SELECT {LEG_COLUMNS} FROM session_legs WHERE session_id = $1 ORDER BY created_at, id"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<_, LegRecord>(&sql)
            .bind(session_id)
            .fetch_all(p)
            .await)?)
    }

    /// The billing segments of a session, in order.
    pub async fn session_segments(&self, session_id: &str) -> StoreResult<Vec<SegmentRecord>> {
        let sql = format!(
            "SELECT {SEGMENT_COLUMNS} FROM session_segments WHERE session_id = $1 ORDER BY segment"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<_, SegmentRecord>(
            &sql
        )
        .bind(session_id)
        .fetch_all(p)
        .await)?)
    }

    pub async fn session_events(&self, session_id: &str) -> StoreResult<Vec<SessionEventRecord>> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as::<_, SessionEventRecord>(
            "SELECT seq, session_id, at, kind, detail FROM session_events WHERE session_id = $1 ORDER BY seq"
        )
        .bind(session_id)
        .fetch_all(p)
        .await
        })?)
    }

    pub async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<SessionRecord>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions
             WHERE ($1 IS NULL OR state = $1 OR ($1 = 'active' AND state <> 'ended')) AND ($2 IS NULL OR client_id = $2) AND ($3 IS NULL OR service_id = $3)
               AND ($4 IS NULL OR app_server_id = $4) AND ($5 IS NULL OR request_id = $5)
               AND ($6 IS NULL OR created_at >= $6) AND ($7 IS NULL OR created_at < $7) AND ($8 IS NULL OR id > $8)
             ORDER BY id LIMIT $9"
        );
        let rows = on_pool!(self, |p| sqlx::query_as::<_, SessionRecord>(&sql)
            .bind(&filter.state)
            .bind(&filter.client_id)
            .bind(&filter.service_id)
            .bind(&filter.app_server_id)
            .bind(&filter.request_id)
            .bind(filter.from)
            .bind(filter.to)
            .bind(&page.after)
            .bind(page.fetch_limit())
            .fetch_all(p)
            .await)?;
        Ok(Page::from_rows(rows, page, |s| &s.id))
    }
}
