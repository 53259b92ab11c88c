//! `/v1/cdrs`: call detail records for billing systems, as JSON or CSV,
//! pulled incrementally with a cursor that never skips or repeats a record.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Role};
use super::extract::QueryParams;
use super::problem::docs::ListErrors;
use super::problem::ApiResult;
use super::stream::{
    csv, csv_response, cursor_param, limit_param, opt, time_range, wants_csv, with_cursor_header,
    StreamPage,
};
use super::AppState;
use crate::store::cdrs::{CdrFilter, CdrRecord};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CdrQuery {
    /// Ended at or after (RFC 3339).
    pub from: Option<String>,
    /// Ended before (RFC 3339).
    pub to: Option<String>,
    pub client_id: Option<String>,
    pub service_id: Option<String>,
    pub app_server_id: Option<String>,
    pub session_id: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous answer: only later CDRs.
    pub cursor: Option<String>,
}

/// A page of the CDR stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct CdrPage {
    pub items: Vec<CdrRecord>,
    /// Always given: pass it next time to get only CDRs written since
    /// (also in the `X-Next-Cursor` header, for CSV).
    pub next_cursor: String,
    /// More CDRs are already waiting after this page.
    pub has_more: bool,
}

const CSV_COLUMNS: [&str; 23] = [
    "seq",
    "id",
    "session_id",
    "request_id",
    "segment",
    "client_id",
    "service_id",
    "app_server_id",
    "caller_uri",
    "callee_uri",
    "client_call_id",
    "as_call_id",
    "created_at",
    "answered_at",
    "ended_at",
    "duration_ms",
    "billed_seconds",
    "tariff_id",
    "amount",
    "currency",
    "end_reason",
    "final_status",
    "node",
];

fn csv_fields(c: &CdrRecord) -> [String; 23] {
    [
        c.seq.to_string(),
        c.id.clone(),
        c.session_id.clone(),
        c.request_id.clone(),
        c.segment.to_string(),
        opt(&c.client_id),
        opt(&c.service_id),
        opt(&c.app_server_id),
        c.caller_uri.clone(),
        c.callee_uri.clone(),
        c.client_call_id.clone(),
        opt(&c.as_call_id),
        c.created_at.rfc3339(),
        c.answered_at.map(|t| t.rfc3339()).unwrap_or_default(),
        c.ended_at.rfc3339(),
        c.duration_ms.to_string(),
        c.billed_seconds.to_string(),
        opt(&c.tariff_id),
        c.amount.0.normalize().to_string(),
        opt(&c.currency),
        c.end_reason.clone(),
        c.final_status.map(|s| s.to_string()).unwrap_or_default(),
        c.node.clone(),
    ]
}

/// Pull CDRs (JSON, or CSV with `Accept: text/csv`).
///
/// The cursor never skips or repeats a record, even when writers commit out
/// of order. On PostgreSQL a record joins the stream once every transaction
/// that was running when it was written has ended (normally milliseconds),
/// and pages are ordered by writing transaction, then `seq`.
#[utoipa::path(get, path = "/v1/cdrs", operation_id = "list_cdrs", tag = "billing", params(CdrQuery),
    responses(
        (status = 200, description = "CDRs in stream order; the `X-Next-Cursor` header carries the next cursor",
         content((CdrPage = "application/json"), (String = "text/csv"))),
        ListErrors))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(q): QueryParams<CdrQuery>,
) -> ApiResult<Response> {
    caller.require(&[Role::Admin, Role::Billing])?;
    let limit = limit_param(q.limit)?;
    let after = cursor_param(q.cursor.as_deref())?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref())?;
    let filter = CdrFilter {
        from,
        to,
        client_id: q.client_id,
        service_id: q.service_id,
        app_server_id: q.app_server_id,
        session_id: q.session_id,
    };
    let rows = s
        .store
        .list_cdrs(&filter, after, i64::from(limit) + 1)
        .await?;
    let page = StreamPage::new(rows, after, limit);
    let cursor = page.next_cursor.clone();
    let response = if wants_csv(&headers) {
        csv_response(csv(CSV_COLUMNS, &page.items, csv_fields))
    } else {
        Json(CdrPage {
            items: page.items,
            next_cursor: page.next_cursor,
            has_more: page.has_more,
        })
        .into_response()
    };
    with_cursor_header(response, &cursor)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}
