//! Request extractors whose rejections are problem documents that say
//! precisely what was wrong (axum's own answer in plain text otherwise).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// A JSON request body. Syntax errors are 400; a body of the wrong shape
/// (type, missing or unknown field) is 422; the detail names the field.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "the body must be JSON, sent with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("the body is larger than the API accepts".into())
            } else {
                ApiError::BadRequest(format!("could not read the body: {e}"))
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON with the path of the failing field in the error. Syntax is
/// checked first on its own, so that valid JSON of the wrong shape (an enum
/// field given a number, say) is a 422 that names the field, not a 400.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Eof => {
                ApiError::BadRequest(format!("the body is not valid JSON: it ends early ({e})"))
            }
            _ => ApiError::BadRequest(format!("the body is not valid JSON: {e}")),
        })?;
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let path = err.path().to_string();
        ApiError::Unprocessable(with_path(
            &path,
            &strip_position(&err.into_inner().to_string()),
        ))
    })
}

fn with_path(path: &str, message: &str) -> String {
    if path.is_empty() || path == "." {
        message.to_string()
    } else {
        format!("{path}: {message}")
    }
}

/// serde_json appends " at line L column C" to data errors; for a field
/// error the path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_string(),
        _ => message.to_string(),
    }
}

/// Query parameters; an unknown or malformed parameter is a 400 naming it.
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::BadRequest(format!(
                    "query parameter {}",
                    with_path(&path, &e.into_inner().to_string())
                ))
            })
    }
}
