//! `/v1/cdrs`: call detail records for billing systems, as JSON or CSV,
//! pulled incrementally with a cursor that never skips or repeats a record.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Role};
use super::extract::QueryParams;
use super::problem::docs::ListErrors;
use super::problem::{ApiError, ApiResult};
use super::AppState;
use crate::billing::csv::write_row;
use crate::store::cdrs::{CdrFilter, CdrRecord};
use crate::store::page::{encode_cursor, PageRequest, DEFAULT_LIMIT, MAX_LIMIT};
use crate::store::Timestamp;

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

fn time(param: &str, v: &Option<String>) -> ApiResult<Option<Timestamp>> {
    v.as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| Timestamp::from_millis(d.timestamp_millis()))
                .map_err(|_| {
                    ApiError::BadRequest(format!(
                        "query parameter {param}: '{t}' is not an RFC 3339 date-time"
                    ))
                })
        })
        .transpose()
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
    let ts = |t: &Timestamp| {
        serde_json::to_value(t)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
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
        ts(&c.created_at),
        c.answered_at.as_ref().map(ts).unwrap_or_default(),
        ts(&c.ended_at),
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

pub fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').any(|m| m.trim().starts_with("text/csv")))
}

/// Pull CDRs (JSON, or CSV with `Accept: text/csv`).
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
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "query parameter limit: must be from 1 to {MAX_LIMIT}"
        )));
    }
    let after: i64 = match &q.cursor {
        None => 0,
        Some(c) => PageRequest::decode_cursor(c)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "query parameter cursor: not a cursor this API returned".into(),
                )
            })?,
    };
    let filter = CdrFilter {
        from: time("from", &q.from)?,
        to: time("to", &q.to)?,
        client_id: q.client_id,
        service_id: q.service_id,
        app_server_id: q.app_server_id,
        session_id: q.session_id,
    };
    let mut items = s
        .store
        .list_cdrs(&filter, after, i64::from(limit) + 1)
        .await?;
    let has_more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let last = items.last().map_or(after, |c| c.seq);
    let next_cursor = encode_cursor(&last.to_string());
    let cursor_header =
        HeaderValue::from_str(&next_cursor).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = if wants_csv(&headers) {
        let mut out = String::new();
        write_row(&mut out, CSV_COLUMNS);
        for c in &items {
            write_row(&mut out, csv_fields(c));
        }
        ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response()
    } else {
        Json(CdrPage {
            items,
            next_cursor,
            has_more,
        })
        .into_response()
    };
    response
        .headers_mut()
        .insert("x-next-cursor", cursor_header);
    Ok(response)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}
