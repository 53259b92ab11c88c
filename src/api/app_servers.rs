//! `/v1/app-servers`

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::{JsonBody, QueryParams};
use super::patch::{apply, required};
use super::problem::docs::{CreateErrors, DeleteErrors, ListErrors, ReadErrors, UpdateErrors};
use super::problem::{ApiError, ApiResult};
use super::{page_request, validate, AppState, IdPath, List};
use crate::store::app_servers::{AppServer, AppServerFields, AppServerFilter};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAppServer {
    #[schema(example = "voicemail-1")]
    pub name: String,
    /// SIP URI inquiries are sent to.
    #[schema(example = "sip:127.0.0.1:5080;transport=udp")]
    pub uri: String,
    /// Lower is tried first; defaults to 100.
    #[serde(default = "default_priority")]
    #[schema(example = 10)]
    pub priority: i32,
    /// Share under the `weighted` strategy; defaults to 1.
    #[serde(default = "default_weight")]
    #[schema(example = 1)]
    pub weight: i32,
    /// Defaults to true.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn default_priority() -> i32 {
    100
}
fn default_weight() -> i32 {
    1
}
fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppServerPatch {
    #[serde(default, deserialize_with = "required")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "required")]
    pub uri: Option<String>,
    #[serde(default, deserialize_with = "required")]
    pub priority: Option<i32>,
    #[serde(default, deserialize_with = "required")]
    pub weight: Option<i32>,
    #[serde(default, deserialize_with = "required")]
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AppServerQuery {
    /// Only the app server with this name.
    pub name: Option<String>,
    /// Only enabled (true) or disabled (false) app servers.
    pub enabled: Option<bool>,
    /// Only app servers in this health state: `unknown`, `up` or `down`.
    pub health: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn check(f: &AppServerFields) -> ApiResult<()> {
    validate::name("name", &f.name)?;
    validate::sip_uri("uri", &f.uri)?;
    if !(0..=65_535).contains(&f.priority) {
        return Err(validate::invalid("priority", "must be from 0 to 65535"));
    }
    if !(0..=65_535).contains(&f.weight) {
        return Err(validate::invalid("weight", "must be from 0 to 65535"));
    }
    Ok(())
}

/// Register an application server.
#[utoipa::path(post, operation_id = "create_app_servers", path = "/v1/app-servers", tag = "app-servers", request_body = NewAppServer,
    responses((status = 201, description = "Created", body = AppServer), CreateErrors))]
async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<NewAppServer>,
) -> ApiResult<(StatusCode, Json<AppServer>)> {
    caller.require_admin()?;
    let f = AppServerFields {
        name: req.name,
        uri: req.uri,
        priority: req.priority,
        weight: req.weight,
        enabled: req.enabled,
    };
    check(&f)?;
    let created = s.store.create_app_server(&f).await?;
    s.configuration_changed().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List application servers.
#[utoipa::path(get, operation_id = "list_app_servers", path = "/v1/app-servers", tag = "app-servers", params(AppServerQuery),
    responses((status = 200, description = "A page of app servers", body = List<AppServer>), ListErrors))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<AppServerQuery>,
) -> ApiResult<Json<List<AppServer>>> {
    caller.require_admin()?;
    if let Some(h) = &q.health {
        if !["unknown", "up", "down"].contains(&h.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "query parameter health: '{h}' is not one of unknown, up, down"
            )));
        }
    }
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = AppServerFilter {
        name: q.name,
        enabled: q.enabled,
        health: q.health,
    };
    Ok(Json(s.store.list_app_servers(&filter, &page).await?.into()))
}

/// Get an application server.
#[utoipa::path(get, operation_id = "get_app_servers", path = "/v1/app-servers/{id}", tag = "app-servers", params(IdPath),
    responses((status = 200, description = "The app server", body = AppServer), ReadErrors))]
async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AppServer>> {
    caller.require_admin()?;
    s.store
        .get_app_server(&id)
        .await
        .map(Json)
        .map_err(|e| ApiError::from_store("app server", &id, e))
}

/// Change an application server (merge patch); `health` is read-only.
#[utoipa::path(patch, operation_id = "update_app_servers", path = "/v1/app-servers/{id}", tag = "app-servers", params(IdPath), request_body = AppServerPatch,
    responses((status = 200, description = "The changed app server", body = AppServer), UpdateErrors))]
async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<AppServerPatch>,
) -> ApiResult<Json<AppServer>> {
    caller.require_admin()?;
    let current = s
        .store
        .get_app_server(&id)
        .await
        .map_err(|e| ApiError::from_store("app server", &id, e))?;
    let mut f = AppServerFields::from(current);
    apply(&mut f.name, p.name);
    apply(&mut f.uri, p.uri);
    apply(&mut f.priority, p.priority);
    apply(&mut f.weight, p.weight);
    apply(&mut f.enabled, p.enabled);
    check(&f)?;
    let updated = s
        .store
        .update_app_server(&id, &f)
        .await
        .map_err(|e| ApiError::from_store("app server", &id, e))?;
    s.configuration_changed().await?;
    Ok(Json(updated))
}

/// Delete an application server that no service pool contains.
#[utoipa::path(delete, operation_id = "delete_app_servers", path = "/v1/app-servers/{id}", tag = "app-servers", params(IdPath),
    responses((status = 204, description = "Deleted"), DeleteErrors))]
async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    s.store
        .delete_app_server(&id)
        .await
        .map_err(|e| ApiError::from_store("app server", &id, e))?;
    s.configuration_changed().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
}
