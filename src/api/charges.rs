//! `/v1/charges`: application charges. App servers post them for the
//! sessions they serve (safely repeatable thanks to an idempotency key);
//! billing systems pull them like CDRs, as JSON or CSV with a cursor.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Role};
use super::extract::{JsonBody, QueryParams};
use super::problem::docs::{ListErrors, ReadErrors};
use super::problem::{ApiError, ApiResult, Problem};
use super::stream::{
    csv, csv_response, cursor_param, limit_param, opt, time_range, wants_csv, with_cursor_header,
    StreamPage,
};
use super::{AppState, IdPath};
use crate::billing::charges::{parse_rest_charge, ChargeRejection, ChargeSession, ChargeSource};
use crate::store::charges::{ChargeFilter, ChargeOutcome, ChargeRecord};
use crate::store::{Money, StoreError, Timestamp};

/// The body of `POST /v1/charges`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; it is checked by `billing::charges`.
pub struct ChargeBody {
    /// The session to charge; an app server may charge only the sessions it
    /// serves.
    pub session_id: String,
    /// Greater than 0, at most 6 decimal places, as a string: a JSON number
    /// is refused.
    pub amount: Money,
    /// ISO 4217 code.
    #[schema(example = "EUR")]
    pub currency: String,
    /// At most 256 characters, no control characters.
    #[schema(example = "Premium announcement")]
    pub description: Option<String>,
    /// Chosen by the sender, unique per session, 1 to 128 visible ASCII
    /// characters. Posting the same charge with the same key again returns
    /// the first one (200) instead of charging twice; the same key with a
    /// different amount, currency or description is refused (409).
    #[schema(example = "announcement-7f3a")]
    pub idempotency_key: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChargeQuery {
    /// Created at or after (RFC 3339).
    pub from: Option<String>,
    /// Created before (RFC 3339).
    pub to: Option<String>,
    pub client_id: Option<String>,
    pub service_id: Option<String>,
    /// An app server's token sees only its own charges whatever is given.
    pub app_server_id: Option<String>,
    pub session_id: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous answer: only later charges.
    pub cursor: Option<String>,
}

/// A page of the charge stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargePage {
    pub items: Vec<ChargeRecord>,
    /// Always given: pass it next time to get only charges written since
    /// (also in the `X-Next-Cursor` header, for CSV).
    pub next_cursor: String,
    /// More charges are already waiting after this page.
    pub has_more: bool,
}

/// Errors of the create route.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum ChargeErrors {
    #[response(
        status = 400,
        description = "Malformed JSON",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    #[response(
        status = 401,
        description = "No valid token (missing, bad signature, expired or revoked)",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "The token's role may not charge, or its app server does not serve the session",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    #[response(
        status = 409,
        description = "The idempotency key was used on this session for a different charge",
        content_type = "application/problem+json"
    )]
    Conflict(Problem),
    #[response(
        status = 415,
        description = "The body is not JSON",
        content_type = "application/problem+json"
    )]
    UnsupportedMediaType(Problem),
    #[response(
        status = 422,
        description = "A field is missing, mistyped, unknown or invalid (e.g. a JSON number as amount), or no session has this id; `detail` names the field",
        content_type = "application/problem+json"
    )]
    Unprocessable(Problem),
}

impl From<ChargeRejection> for ApiError {
    fn from(r: ChargeRejection) -> Self {
        match r {
            ChargeRejection::UnsupportedMediaType(m) => Self::UnsupportedMediaType(m),
            ChargeRejection::Malformed(m) => Self::BadRequest(m),
            ChargeRejection::Invalid(m) => Self::Unprocessable(m),
        }
    }
}

/// An app server's token acts for that app server only.
fn own_app_server(caller: &Caller) -> ApiResult<Option<&str>> {
    match caller.role {
        Role::AppServer => {
            caller.app_server_id.as_deref().map(Some).ok_or_else(|| {
                ApiError::Forbidden("this app_server token names no app server".into())
            })
        }
        _ => Ok(None),
    }
}

/// Charge a session. 201 with the new charge; 200 with the first charge
/// when the same charge (same key, amount, currency and description) was
/// posted before.
#[utoipa::path(post, operation_id = "create_charges", path = "/v1/charges", tag = "billing", request_body = ChargeBody,
    responses(
        (status = 201, description = "Charged", body = ChargeRecord),
        (status = 200, description = "Posted before with the same key and content: the first charge, unchanged", body = ChargeRecord),
        ChargeErrors,
    ))]
async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<(StatusCode, Json<ChargeRecord>)> {
    caller.require(&[Role::Admin, Role::AppServer])?;
    let (session_id, request) = parse_rest_charge(&body)?;
    let session = s
        .store
        .get_session(&session_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                ApiError::Unprocessable(format!("session_id: no session with id '{session_id}'"))
            }
            other => other.into(),
        })?;
    if let Some(own) = own_app_server(&caller)? {
        if session.app_server_id.as_deref() != Some(own) {
            return Err(ApiError::Forbidden(format!(
                "session '{session_id}' is not served by this token's app server"
            )));
        }
    }
    let charge = request.to_charge(
        &ChargeSession::from(&session),
        ChargeSource::Rest,
        Timestamp::now(),
    );
    match s.store.record_charge(&charge).await? {
        ChargeOutcome::Created(c) => {
            tracing::info!(charge = %c.id, session = %c.session_id, amount = %c.amount.0, currency = %c.currency, "charge recorded");
            Ok((StatusCode::CREATED, Json(c)))
        }
        ChargeOutcome::Replayed(c) => Ok((StatusCode::OK, Json(c))),
        ChargeOutcome::Conflict(c) => Err(ApiError::Conflict(format!(
            "idempotency_key: '{}' was already used on session '{}' for a different charge ('{}': {} {}); use a new key for a new charge",
            c.idempotency_key, c.session_id, c.id, c.amount.0, c.currency
        ))),
    }
}

const CSV_COLUMNS: [&str; 12] = [
    "seq",
    "id",
    "session_id",
    "app_server_id",
    "client_id",
    "service_id",
    "amount",
    "currency",
    "description",
    "idempotency_key",
    "source",
    "created_at",
];

fn csv_fields(c: &ChargeRecord) -> [String; 12] {
    [
        c.seq.to_string(),
        c.id.clone(),
        c.session_id.clone(),
        opt(&c.app_server_id),
        opt(&c.client_id),
        opt(&c.service_id),
        c.amount.0.normalize().to_string(),
        c.currency.clone(),
        opt(&c.description),
        c.idempotency_key.clone(),
        c.source.clone(),
        c.created_at.rfc3339(),
    ]
}

/// Pull charges (JSON, or CSV with `Accept: text/csv`), in the order they
/// were written.
///
/// The cursor never skips or repeats a record, even when writers commit out
/// of order. On PostgreSQL a record joins the stream once every transaction
/// that was running when it was written has ended (normally milliseconds),
/// and pages are ordered by writing transaction, then `seq`.
#[utoipa::path(get, path = "/v1/charges", operation_id = "list_charges", tag = "billing", params(ChargeQuery),
    responses(
        (status = 200, description = "Charges in stream order; the `X-Next-Cursor` header carries the next cursor",
         content((ChargePage = "application/json"), (String = "text/csv"))),
        ListErrors))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(q): QueryParams<ChargeQuery>,
) -> ApiResult<Response> {
    caller.require(&[Role::Admin, Role::Billing, Role::AppServer])?;
    let limit = limit_param(q.limit)?;
    let after = cursor_param(q.cursor.as_deref())?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref())?;
    let app_server_id = match own_app_server(&caller)? {
        Some(own) => Some(own.to_string()),
        None => q.app_server_id,
    };
    let filter = ChargeFilter {
        from,
        to,
        client_id: q.client_id,
        service_id: q.service_id,
        app_server_id,
        session_id: q.session_id,
    };
    let rows = s
        .store
        .list_charges(&filter, after, i64::from(limit) + 1)
        .await?;
    let page = StreamPage::new(rows, after, limit);
    let cursor = page.next_cursor.clone();
    let response = if wants_csv(&headers) {
        csv_response(csv(CSV_COLUMNS, &page.items, csv_fields))
    } else {
        Json(ChargePage {
            items: page.items,
            next_cursor: page.next_cursor,
            has_more: page.has_more,
        })
        .into_response()
    };
    with_cursor_header(response, &cursor)
}

/// Get one charge.
#[utoipa::path(get, operation_id = "get_charges", path = "/v1/charges/{id}", tag = "billing", params(IdPath),
    responses((status = 200, description = "The charge", body = ChargeRecord), ReadErrors))]
async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ChargeRecord>> {
    caller.require(&[Role::Admin, Role::Billing, Role::AppServer])?;
    let charge = s
        .store
        .get_charge(&id)
        .await
        .map_err(|e| ApiError::from_store("charge", &id, e))?;
    if let Some(own) = own_app_server(&caller)? {
        if charge.app_server_id.as_deref() != Some(own) {
            return Err(ApiError::Forbidden(format!(
                "charge '{id}' was not made by this token's app server"
            )));
        }
    }
    Ok(Json(charge))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get))
}
