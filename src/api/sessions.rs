//! `/v1/sessions`: sessions as the relays publish them, with their legs and
//! events, and their termination by an admin.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Role};
use super::extract::QueryParams;
use super::problem::docs::{ListErrors, ReadErrors};
use super::problem::{ApiError, ApiResult, Problem};
use super::{page_request, AppState, IdPath, List};
use crate::store::sessions::{
    LegRecord, SegmentRecord, SessionEventRecord, SessionFilter, SessionRecord,
};
use crate::store::signals::Signal;
use crate::store::Timestamp;

/// Who may read sessions.
const READERS: &[Role] = &[Role::Admin, Role::Billing];

/// The state of a session that is over.
const ENDED: &str = "ended";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// Only sessions in this state: `proceeding`, `answered`, `established`
    /// or `ended`; `active` is every state but `ended`.
    pub state: Option<String>,
    /// Only the sessions of this client.
    pub client_id: Option<String>,
    /// Only the sessions of this service.
    pub service_id: Option<String>,
    /// Only the sessions served by this app server.
    pub app_server_id: Option<String>,
    /// Only the sessions created by this client request (fan-out).
    pub request_id: Option<String>,
    /// Only sessions created at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// Only sessions created before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A session with its legs (in creation order), its billing segments (one
/// per app server that served it, in order: a session change or transfer
/// to another app server opens the next) and its events (in the order they
/// happened).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: SessionRecord,
    pub legs: Vec<LegRecord>,
    pub segments: Vec<SegmentRecord>,
    pub events: Vec<SessionEventRecord>,
}

/// Errors of the terminate route.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum TerminateErrors {
    #[response(
        status = 401,
        description = "No valid token (missing, bad signature, expired or revoked)",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "The token's role may not do this",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    #[response(
        status = 404,
        description = "No session with this id",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
    #[response(
        status = 409,
        description = "The session has already ended, or another node holds it; `detail` says which",
        content_type = "application/problem+json"
    )]
    Conflict(Problem),
}

/// List sessions, oldest first.
#[utoipa::path(get, operation_id = "list_sessions", path = "/v1/sessions", tag = "sessions", params(SessionQuery),
    responses((status = 200, description = "A page of sessions", body = List<SessionRecord>), ListErrors))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<SessionQuery>,
) -> ApiResult<Json<List<SessionRecord>>> {
    caller.require(READERS)?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if from > to {
            return Err(ApiError::BadRequest(
                "query parameter from: must not be after to".into(),
            ));
        }
    }
    if let Some(state) = q.state.as_deref() {
        if !STATES.contains(&state) {
            return Err(ApiError::BadRequest(format!(
                "query parameter state: '{state}' is not one of {}",
                STATES.join(", ")
            )));
        }
    }
    let filter = SessionFilter {
        state: q.state,
        client_id: q.client_id,
        service_id: q.service_id,
        app_server_id: q.app_server_id,
        request_id: q.request_id,
        from: q.from,
        to: q.to,
    };
    Ok(Json(s.store.list_sessions(&filter, &page).await?.into()))
}

/// Get one session with its legs, segments and events.
#[utoipa::path(get, operation_id = "get_sessions", path = "/v1/sessions/{id}", tag = "sessions", params(IdPath),
    responses((status = 200, description = "The session", body = SessionDetail), ReadErrors))]
async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionDetail>> {
    caller.require(READERS)?;
    // The events first, the session last: each read sees at least what the
    // one before did (the relay publishes a session with its events in one
    // transaction), so the session is never older than the story told.
    let events = s.store.session_events(&id).await?;
    let segments = s.store.session_segments(&id).await?;
    let legs = s.store.session_legs(&id).await?;
    let session = s
        .store
        .get_session(&id)
        .await
        .map_err(|e| ApiError::from_store("session", &id, e))?;
    Ok(Json(SessionDetail {
        session,
        legs,
        segments,
        events,
    }))
}

/// Terminate a live session: BYE on both legs. The session ends shortly
/// after, with end reason `admin`. Any node sharing the database can be
/// asked; it passes the request on to the node that holds the session
/// (409 when that node is not running).
#[utoipa::path(delete, operation_id = "terminate_sessions", path = "/v1/sessions/{id}", tag = "sessions", params(IdPath),
    responses((status = 202, description = "Termination under way: the BYEs are sent"), TerminateErrors))]
async fn terminate(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    // The relay is asked first: a session just created may not be
    // published yet.
    if let Some(relay) = &s.relay {
        if relay.terminate(&id).await {
            tracing::info!(session = %id, admin = %caller.subject, "session terminated by an admin");
            return Ok(StatusCode::ACCEPTED);
        }
    }
    let session = s
        .store
        .get_session(&id)
        .await
        .map_err(|e| ApiError::from_store("session", &id, e))?;
    if session.state == ENDED {
        return Err(ApiError::Conflict(format!("session '{id}' already ended")));
    }
    if session.node == s.settings.node_name {
        // Published as live by this node, yet its relay no longer holds it:
        // it ended a moment ago (not yet published) or the node restarted.
        return Err(ApiError::Conflict(format!(
            "session '{id}' is not live on this node (node '{}'); it has ended or is ending",
            session.node
        )));
    }
    // Held by another node: ask it, if it is alive (its sessions are
    // closed when it starts again otherwise).
    let alive = s
        .store
        .node_last_seen(&session.node)
        .await
        .map_err(ApiError::from)?
        .is_some_and(|seen| Timestamp::now().millis() - seen.millis() <= NODE_ALIVE_MS);
    if !alive {
        return Err(ApiError::Conflict(format!(
            "session '{id}' is held by node '{}', which is not running; it is closed when that node starts again",
            session.node
        )));
    }
    s.store
        .signal(&Signal::Terminate {
            node: session.node.clone(),
            session: id.clone(),
        })
        .await
        .map_err(ApiError::from)?;
    tracing::info!(session = %id, node = %session.node, admin = %caller.subject,
        "termination asked of the node holding the session");
    Ok(StatusCode::ACCEPTED)
}

/// The values of the `state` filter.
const STATES: [&str; 5] = ["proceeding", "answered", "established", "ended", "active"];

/// A node whose heartbeat is older than this is taken for dead.
const NODE_ALIVE_MS: i64 = 5_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get, terminate))
}
