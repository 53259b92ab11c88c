//! What the billing routes share: `from`/`to`, `limit` and `cursor` query
//! parameters, pages of the CDR and charge streams, and answering as JSON
//! or as CSV (`Accept: text/csv`).

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::problem::{ApiError, ApiResult};
use crate::billing::csv::write_row;
use crate::store::page::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::store::stream::{Positioned, StreamPosition};
use crate::store::Timestamp;

/// An RFC 3339 query parameter.
pub fn time_param(param: &str, v: Option<&str>) -> ApiResult<Option<Timestamp>> {
    v.map(|t| {
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

/// `from` and `to`, the first not after the second.
pub fn time_range(
    from: Option<&str>,
    to: Option<&str>,
) -> ApiResult<(Option<Timestamp>, Option<Timestamp>)> {
    let (from, to) = (time_param("from", from)?, time_param("to", to)?);
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(ApiError::BadRequest(
                "query parameter from: must not be after to".into(),
            ));
        }
    }
    Ok((from, to))
}

/// The page size asked for, 1 to [`MAX_LIMIT`].
pub fn limit_param(limit: Option<u32>) -> ApiResult<u32> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest(format!(
            "query parameter limit: must be from 1 to {MAX_LIMIT}"
        )))
    }
}

/// Where to continue a stream: the start, or a `next_cursor` we gave.
pub fn cursor_param(cursor: Option<&str>) -> ApiResult<StreamPosition> {
    match cursor {
        None => Ok(StreamPosition::default()),
        Some(c) => StreamPosition::decode(c).ok_or_else(|| {
            ApiError::BadRequest("query parameter cursor: not a cursor this API returned".into())
        }),
    }
}

/// One page of a stream, read with `limit + 1` rows to learn whether more
/// follow.
pub struct StreamPage<T> {
    pub items: Vec<T>,
    /// Always given: where the next pull starts (the position it started
    /// from when the page is empty).
    pub next_cursor: String,
    pub has_more: bool,
}

impl<T> StreamPage<T> {
    pub fn new(mut rows: Vec<Positioned<T>>, after: StreamPosition, limit: u32) -> Self {
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let last = rows.last().map_or(after, |r| r.position);
        Self {
            items: rows.into_iter().map(|r| r.record).collect(),
            next_cursor: last.encode(),
            has_more,
        }
    }
}

pub fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').any(|m| m.trim().starts_with("text/csv")))
}

/// An RFC 4180 document: the header row, then one row per item.
pub fn csv<T, const N: usize>(
    columns: [&str; N],
    items: &[T],
    fields: impl Fn(&T) -> [String; N],
) -> String {
    let mut out = String::new();
    write_row(&mut out, columns);
    for item in items {
        write_row(&mut out, fields(item));
    }
    out
}

pub fn csv_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response()
}

/// Adds the `X-Next-Cursor` header (for CSV, which has nowhere else to
/// carry it; JSON gets it too).
pub fn with_cursor_header(mut response: Response, cursor: &str) -> ApiResult<Response> {
    let value = HeaderValue::from_str(cursor).map_err(|e| ApiError::Internal(e.to_string()))?;
    response.headers_mut().insert("x-next-cursor", value);
    Ok(response)
}

/// Optional text as a CSV field (empty when absent).
pub fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}
