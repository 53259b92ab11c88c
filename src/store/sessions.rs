//! Sessions as the relay publishes them: one row per session (rewritten as
//! its state changes), its legs, and an append-only trail of events.

use std::collections::hash_map::Entry;

use ahash::HashMap;
use serde::Serialize;
use utoipa::ToSchema;

use super::bulk::insert_rows;
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
    // The relay does not write a leg again when it ends with its session
    // (three rows fewer per call, with the segment); reads fill in the
    // session's end for it (`Store::session_legs`).
    /// When the leg's dialog ended; a leg still open when its session ended
    /// ended with it.
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
    // Like a leg's, the end of a segment that ends with its session is not
    // written; reads fill it in (`Store::session_segments`).
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

/// Rewrites the mutable columns of a session already published.
const SESSION_UPSERT: &str = "ON CONFLICT (id) DO UPDATE SET state = excluded.state, service_id = excluded.service_id, \
     rule_id = excluded.rule_id, app_server_id = excluded.app_server_id, client_call_id = excluded.client_call_id, \
     as_call_id = excluded.as_call_id, answered_at = excluded.answered_at, ended_at = excluded.ended_at, \
     duration_ms = excluded.duration_ms, end_reason = excluded.end_reason, final_status = excluded.final_status";
const SEGMENT_UPSERT: &str =
    "ON CONFLICT (session_id, segment) DO UPDATE SET ended_at = excluded.ended_at";
const LEG_UPSERT: &str = "ON CONFLICT (id) DO UPDATE SET local_tag = excluded.local_tag, remote_tag = excluded.remote_tag, \
     remote_uri = excluded.remote_uri, ended_at = excluded.ended_at";

/// A batch reduced to what has to be written. A session (or leg) changes
/// several times within one batch (created, answered, established, ended
/// within a second); each change carries the whole record, so only its
/// latest version needs writing. Events are an append-only trail: all of
/// them, in order. (One multi-row upsert may not touch a row twice on
/// PostgreSQL either, so this is also what makes the upserts legal.)
struct Coalesced<'a> {
    sessions: Vec<&'a SessionRecord>,
    legs: Vec<&'a LegRecord>,
    segments: Vec<&'a SegmentRecord>,
    events: Vec<(&'a str, Timestamp, &'a str, Option<&'a str>)>,
}

impl<'a> Coalesced<'a> {
    fn of(changes: &'a [SessionChange]) -> Self {
        let mut c = Coalesced {
            sessions: Vec::new(),
            legs: Vec::new(),
            segments: Vec::new(),
            events: Vec::new(),
        };
        let mut session_at = HashMap::default();
        let mut leg_at = HashMap::default();
        let mut segment_at = HashMap::default();
        for change in changes {
            match change {
                SessionChange::Session(s) => {
                    latest(&mut c.sessions, &mut session_at, s.id.as_str(), s)
                }
                SessionChange::Leg(l) => latest(&mut c.legs, &mut leg_at, l.id.as_str(), l),
                SessionChange::Segment(g) => latest(
                    &mut c.segments,
                    &mut segment_at,
                    (g.session_id.as_str(), g.segment),
                    g,
                ),
                SessionChange::Event {
                    session_id,
                    at,
                    kind,
                    detail,
                } => c.events.push((session_id, *at, kind, detail.as_deref())),
            }
        }
        c
    }
}

/// Keeps `record` as the version of `id` in `out`, in place of an earlier
/// one, so rows keep the order of their first change.
fn latest<'a, T, K: std::hash::Hash + Eq>(
    out: &mut Vec<&'a T>,
    index: &mut HashMap<K, usize>,
    id: K,
    record: &'a T,
) {
    match index.entry(id) {
        Entry::Occupied(e) => out[*e.get()] = record,
        Entry::Vacant(e) => {
            e.insert(out.len());
            out.push(record);
        }
    }
}

impl Store {
    /// Applies a batch of changes in one transaction, as if one by one in
    /// order: sessions first, then legs, segments and events (which refer
    /// to them),
    /// each table with multi-row statements.
    pub async fn apply_session_changes(&self, changes: &[SessionChange]) -> StoreResult<()> {
        let batch = Coalesced::of(changes);
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            insert_rows!(
                self,
                tx,
                batch.sessions,
                "sessions",
                SESSION_COLUMNS,
                SESSION_UPSERT,
                |q, s| q
                    .bind(s.id.as_str())
                    .bind(s.request_id.as_str())
                    .bind(s.state.as_str())
                    .bind(s.client_id.as_deref())
                    .bind(s.service_id.as_deref())
                    .bind(s.rule_id.as_deref())
                    .bind(s.app_server_id.as_deref())
                    .bind(s.caller_uri.as_str())
                    .bind(s.callee_uri.as_str())
                    .bind(s.client_call_id.as_str())
                    .bind(s.as_call_id.as_deref())
                    .bind(s.node.as_str())
                    .bind(s.created_at)
                    .bind(s.answered_at)
                    .bind(s.ended_at)
                    .bind(s.duration_ms)
                    .bind(s.end_reason.as_deref())
                    .bind(s.final_status)
            );
            insert_rows!(
                self,
                tx,
                batch.legs,
                "session_legs",
                LEG_COLUMNS,
                LEG_UPSERT,
                |q, l| q
                    .bind(l.id.as_str())
                    .bind(l.session_id.as_str())
                    .bind(l.kind.as_str())
                    .bind(l.app_server_id.as_deref())
                    .bind(l.call_id.as_str())
                    .bind(l.local_tag.as_deref())
                    .bind(l.remote_tag.as_deref())
                    .bind(l.remote_uri.as_deref())
                    .bind(l.created_at)
                    .bind(l.ended_at)
            );
            insert_rows!(
                self,
                tx,
                batch.segments,
                "session_segments",
                SEGMENT_COLUMNS,
                SEGMENT_UPSERT,
                |q, g| q
                    .bind(g.session_id.as_str())
                    .bind(g.segment)
                    .bind(g.service_id.as_deref())
                    .bind(g.app_server_id.as_deref())
                    .bind(g.started_at)
                    .bind(g.ended_at)
            );
            // Rows of one VALUES list are inserted in list order, so `seq`
            // follows the order the events were sent in.
            insert_rows!(
                self,
                tx,
                batch.events,
                "session_events",
                "session_id, at, kind, detail",
                "",
                |q, e| q.bind(e.0).bind(e.1).bind(e.2).bind(e.3)
            );
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

    /// The legs of a session; one still open when the session ended ended
    /// with it (see [`LegRecord::ended_at`]).
    pub async fn session_legs(&self, session_id: &str) -> StoreResult<Vec<LegRecord>> {
        let sql = "SELECT l.id, l.session_id, l.kind, l.app_server_id, l.call_id, l.local_tag, l.remote_tag, \
             l.remote_uri, l.created_at, COALESCE(l.ended_at, s.ended_at) AS ended_at \
             FROM session_legs l JOIN sessions s ON s.id = l.session_id \
             WHERE l.session_id = $1 ORDER BY l.created_at, l.id";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, LegRecord>(sql)
            .bind(session_id)
            .fetch_all(p)
            .await)?)
    }

    /// The billing segments of a session, in order; one still open when
    /// the session ended ended with it (see [`SegmentRecord::ended_at`]).
    pub async fn session_segments(&self, session_id: &str) -> StoreResult<Vec<SegmentRecord>> {
        let sql = "SELECT g.session_id, g.segment, g.service_id, g.app_server_id, g.started_at, \
             COALESCE(g.ended_at, s.ended_at) AS ended_at \
             FROM session_segments g JOIN sessions s ON s.id = g.session_id \
             WHERE g.session_id = $1 ORDER BY g.segment";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, SegmentRecord>(sql)
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
