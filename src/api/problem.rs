//! Errors as RFC 9457 problem details (`application/problem+json`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "about:blank",
    "title": "Unprocessable Content",
    "status": 422,
    "detail": "tariff_id: no tariff with id '0193…'"
}))]
pub struct Problem {
    /// Always `about:blank`: the status code says what kind of problem it is.
    #[serde(rename = "type")]
    pub type_: String,
    /// The status code's reason phrase.
    pub title: String,
    pub status: u16,
    /// What was wrong, naming the field where there is one.
    pub detail: String,
}

/// Every error a handler can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    /// Details are logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Maps a store error for a resource named `what` (e.g. "tariff").
    pub fn from_store(what: &str, id: &str, e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound(format!("no {what} with id '{id}'")),
            other => other.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("not found".into()),
            StoreError::Conflict(m) => Self::Conflict(conflict_detail(&m)),
            StoreError::InUse(m) => Self::Conflict(m),
            StoreError::UnknownReference(m) => {
                Self::Unprocessable(format!("a referenced resource does not exist ({m})"))
            }
            StoreError::Database(e) if is_unavailable(&e) => {
                Self::Unavailable("the database is unreachable".into())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
    )
}

/// Turns an engine's unique-violation text into the field that clashed.
fn conflict_detail(message: &str) -> String {
    for field in ["username", "name"] {
        if message.contains(&format!(".{field}")) || message.contains(&format!("_{field}_key")) {
            return format!("{field}: already taken");
        }
    }
    format!("already exists ({message})")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            Self::Internal(m) => {
                tracing::error!(error = %m, "request failed");
                "internal error; see the server log".to_string()
            }
            other => other.to_string(),
        };
        problem_response(status, detail)
    }
}

pub fn problem_response(status: StatusCode, detail: String) -> Response {
    let body = Problem {
        type_: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").into(),
        status: status.as_u16(),
        detail,
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// Documented error answers, grouped by the kind of operation so each
/// route lists exactly what it can answer.
pub mod docs {
    use super::Problem;

    macro_rules! error_set {
        ($(#[$doc:meta])* $name:ident { $($variant:ident = $status:literal, $desc:literal;)+ }) => {
            $(#[$doc])*
            #[derive(utoipa::IntoResponses)]
            #[allow(dead_code)]
            pub enum $name {
                $(
                    #[response(status = $status, description = $desc, content_type = "application/problem+json")]
                    $variant(Problem),
                )+
            }
        };
    }

    error_set!(
        /// Errors of a create (POST) route.
        CreateErrors {
            BadRequest = 400, "Malformed JSON";
            Unauthorized = 401, "No valid token (missing, bad signature, expired or revoked)";
            Forbidden = 403, "The token's role may not do this";
            Conflict = 409, "A unique field is already taken";
            UnsupportedMediaType = 415, "The body is not JSON";
            Unprocessable = 422, "A field is missing, mistyped, unknown or invalid; `detail` names it";
        }
    );
    error_set!(
        /// Errors of a list (GET collection) route.
        ListErrors {
            BadRequest = 400, "A query parameter is unknown or malformed";
            Unauthorized = 401, "No valid token (missing, bad signature, expired or revoked)";
            Forbidden = 403, "The token's role may not do this";
        }
    );
    error_set!(
        /// Errors of a read (GET item) route.
        ReadErrors {
            Unauthorized = 401, "No valid token (missing, bad signature, expired or revoked)";
            Forbidden = 403, "The token's role may not do this";
            NotFound = 404, "No resource with this id";
        }
    );
    error_set!(
        /// Errors of an update (PATCH) route.
        UpdateErrors {
            BadRequest = 400, "Malformed JSON";
            Unauthorized = 401, "No valid token (missing, bad signature, expired or revoked)";
            Forbidden = 403, "The token's role may not do this";
            NotFound = 404, "No resource with this id";
            Conflict = 409, "A unique field is already taken";
            UnsupportedMediaType = 415, "The body is not JSON";
            Unprocessable = 422, "A field is mistyped, unknown or invalid; `detail` names it";
        }
    );
    error_set!(
        /// Errors of a delete route.
        DeleteErrors {
            Unauthorized = 401, "No valid token (missing, bad signature, expired or revoked)";
            Forbidden = 403, "The token's role may not do this";
            NotFound = 404, "No resource with this id";
            Conflict = 409, "Still referenced by another resource; `detail` says by what";
        }
    );
}
