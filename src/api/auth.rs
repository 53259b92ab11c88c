//! Bearer-token authentication and roles.
//!
//! Tokens are HS256 JWTs. Admin log-ins get short-lived session tokens;
//! admins mint scoped tokens for billing systems and app servers, which
//! live in `api_tokens` so they can be revoked.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::Json;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::JsonBody;
use super::problem::{ApiError, ApiResult, Problem};
use super::AppState;
use crate::store::Timestamp;

const ISSUER: &str = "switchboard";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Billing,
    AppServer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Billing => "billing",
            Self::AppServer => "app_server",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TokenKind {
    /// From `POST /v1/auth/token`; expires, is not stored.
    Session,
    /// Minted over `/v1/tokens`; checked against its row on every use.
    Scoped,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    role: Role,
    kind: TokenKind,
    jti: String,
    iat: i64,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_server_id: Option<String>,
}

/// Signing keys, derived from the configured or stored secret.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

/// Who is calling, established from the bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    /// Admin id, or the scoped token's id.
    pub subject: String,
    pub app_server_id: Option<String>,
}

impl Caller {
    /// Refuses callers whose role is not among `roles`.
    pub fn require(&self, roles: &[Role]) -> ApiResult<()> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            let wanted: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden(format!(
                "this operation needs role {}; the token has role {}",
                wanted.join(" or "),
                self.role.as_str()
            )))
        }
    }

    pub fn require_admin(&self) -> ApiResult<()> {
        self.require(&[Role::Admin])
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized("missing Authorization: Bearer <token> header".into())
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be 'Bearer <token>'".into())
            })?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &state.jwt.decoding, &validation)
            .map_err(|e| {
                ApiError::Unauthorized(match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired".into(),
                    ErrorKind::InvalidSignature => "the token's signature is not valid".into(),
                    _ => "the token is not valid".into(),
                })
            })?
            .claims;
        if claims.kind == TokenKind::Scoped {
            let row = state
                .store
                .get_token(&claims.jti)
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::NotFound => {
                        ApiError::Unauthorized("the token has been revoked".into())
                    }
                    other => other.into(),
                })?;
            if row.revoked_at.is_some() {
                return Err(ApiError::Unauthorized("the token has been revoked".into()));
            }
        }
        Ok(Caller {
            role: claims.role,
            subject: claims.sub,
            app_server_id: claims.app_server_id,
        })
    }
}

/// Signs a session token for an admin.
fn session_token(state: &AppState, admin_id: &str) -> ApiResult<(String, u64)> {
    let ttl = state.settings.token_ttl_seconds;
    let now = Timestamp::now().millis() / 1000;
    let claims = Claims {
        iss: ISSUER.into(),
        sub: admin_id.into(),
        role: Role::Admin,
        kind: TokenKind::Session,
        jti: crate::store::new_id(),
        iat: now,
        exp: now + ttl as i64,
        app_server_id: None,
    };
    let token = sign(state, &claims)?;
    Ok((token, ttl))
}

/// Signs a scoped token; `expires_at` none means it lives until revoked.
pub fn scoped_token(
    state: &AppState,
    token_id: &str,
    role: Role,
    app_server_id: Option<String>,
    expires_at: Option<Timestamp>,
) -> ApiResult<String> {
    let now = Timestamp::now().millis() / 1000;
    // A JWT must expire; "until revoked" is a hundred years.
    let exp = expires_at.map_or(now + 100 * 365 * 86_400, |t| t.millis() / 1000);
    let claims = Claims {
        iss: ISSUER.into(),
        sub: token_id.into(),
        role,
        kind: TokenKind::Scoped,
        jti: token_id.into(),
        iat: now,
        exp,
        app_server_id,
    };
    sign(state, &claims)
}

fn sign(state: &AppState, claims: &Claims) -> ApiResult<String> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &state.jwt.encoding)
        .map_err(|e| ApiError::Internal(format!("signing a token: {e}")))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "admin")]
    pub username: String,
    #[schema(example = "correct horse battery staple")]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the token expires.
    #[schema(example = 3600)]
    pub expires_in: u64,
}

/// Log in as an admin and get a bearer token.
#[utoipa::path(
    post, operation_id = "login",
    path = "/v1/auth/token",
    tag = "auth",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A bearer token", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown user or wrong password (indistinguishable)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or mistyped field", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn login(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let admin = state.store.find_admin(&req.username).await?;
    // Verify against a fixed hash when the user is unknown, so the answer
    // takes as long and says the same as a wrong password.
    let (hash, admin_id) = match &admin {
        Some(a) => (a.password_hash.clone(), Some(a.id.clone())),
        None => (super::passwords::dummy_hash().await?, None),
    };
    let ok = super::passwords::verify(req.password, hash).await?;
    match (ok, admin_id) {
        (true, Some(id)) => {
            let (access_token, expires_in) = session_token(&state, &id)?;
            Ok(Json(TokenResponse {
                access_token,
                token_type: "Bearer".into(),
                expires_in,
            }))
        }
        _ => Err(ApiError::Unauthorized(
            "invalid username or password".into(),
        )),
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login))
}
