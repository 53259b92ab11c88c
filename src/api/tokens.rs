//! `/v1/tokens`: scoped, revocable tokens for billing systems and app
//! servers. The token text is returned once, at creation.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{scoped_token, Caller, Role};
use super::extract::{JsonBody, QueryParams};
use super::problem::docs::{CreateErrors, DeleteErrors, ListErrors};
use super::problem::{ApiError, ApiResult};
use super::{page_request, validate, AppState, IdPath, List};
use crate::store::tokens::{ApiToken, TokenFilter};
use crate::store::{new_id, StoreError, Timestamp};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[schema(example = "billing-export")]
    pub name: String,
    pub role: Role,
    /// Required for role `app_server`, refused otherwise.
    pub app_server_id: Option<String>,
    /// Lifetime in seconds (60 to 10 years); absent means until revoked.
    #[schema(example = 86400)]
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: ApiToken,
    /// The bearer token. Shown only in this answer.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Only tokens with this role.
    pub role: Option<Role>,
    /// Only tokens of this app server.
    pub app_server_id: Option<String>,
    /// Include revoked tokens (default false).
    pub include_revoked: Option<bool>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

const MAX_TTL: u64 = 10 * 365 * 86_400;

/// Mint a scoped token.
#[utoipa::path(post, operation_id = "create_tokens", path = "/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, description = "Created; `access_token` is shown only now", body = CreatedToken), CreateErrors))]
async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    caller.require_admin()?;
    validate::name("name", &req.name)?;
    match (req.role, &req.app_server_id) {
        (Role::AppServer, None) => {
            return Err(validate::invalid(
                "app_server_id",
                "is required for role app_server",
            ))
        }
        (Role::AppServer, Some(id)) => match s.store.get_app_server(id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                return Err(validate::invalid(
                    "app_server_id",
                    format!("no app server with id '{id}'"),
                ))
            }
            Err(e) => return Err(e.into()),
        },
        (_, Some(_)) => {
            return Err(validate::invalid(
                "app_server_id",
                "is only allowed for role app_server",
            ))
        }
        (_, None) => {}
    }
    let now = Timestamp::now();
    let expires_at = match req.ttl_seconds {
        None => None,
        Some(ttl) if (60..=MAX_TTL).contains(&ttl) => {
            Some(Timestamp::from_millis(now.millis() + ttl as i64 * 1000))
        }
        Some(_) => {
            return Err(validate::invalid(
                "ttl_seconds",
                format!("must be from 60 to {MAX_TTL}"),
            ))
        }
    };
    let row = ApiToken {
        id: new_id(),
        name: req.name,
        role: req.role.as_str().into(),
        app_server_id: req.app_server_id,
        created_by: caller.subject.clone(),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    let access_token = scoped_token(&s, &row.id, req.role, row.app_server_id.clone(), expires_at)?;
    let token = s.store.create_token(&row).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token,
            access_token,
            token_type: "Bearer",
        }),
    ))
}

/// List scoped tokens (never their text).
#[utoipa::path(get, operation_id = "list_tokens", path = "/v1/tokens", tag = "tokens", params(TokenQuery),
    responses((status = 200, description = "A page of tokens", body = List<ApiToken>), ListErrors))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<TokenQuery>,
) -> ApiResult<Json<List<ApiToken>>> {
    caller.require_admin()?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = TokenFilter {
        role: q.role.map(|r| r.as_str().to_string()),
        app_server_id: q.app_server_id,
        include_revoked: q.include_revoked.unwrap_or(false),
    };
    Ok(Json(s.store.list_tokens(&filter, &page).await?.into()))
}

/// Revoke a scoped token; it is refused from then on.
#[utoipa::path(delete, operation_id = "revoke_tokens", path = "/v1/tokens/{id}", tag = "tokens", params(IdPath),
    responses((status = 204, description = "Revoked"), DeleteErrors))]
async fn revoke(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    s.store
        .revoke_token(&id)
        .await
        .map_err(|e| ApiError::from_store("token", &id, e))?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}
