//! `/v1/services`

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::clients::tariff_exists;
use super::extract::{JsonBody, QueryParams};
use super::patch::{apply, apply_nullable, nullable, required};
use super::problem::docs::{CreateErrors, DeleteErrors, ListErrors, ReadErrors, UpdateErrors};
use super::problem::{ApiError, ApiResult};
use super::{page_request, validate, AppState, IdPath, List};
use crate::store::services::{Service, ServiceFields, ServiceFilter, Strategy};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewService {
    #[schema(example = "voicemail")]
    pub name: String,
    /// The pool: ids of existing app servers.
    pub app_server_ids: Vec<String>,
    /// Defaults to `failover`.
    #[serde(default = "failover")]
    pub strategy: Strategy,
    pub tariff_id: Option<String>,
    /// Give up on an unanswered inquiry after this many seconds (1 to 3600).
    #[schema(example = 30)]
    pub ring_timeout_seconds: Option<i32>,
}

fn failover() -> Strategy {
    Strategy::Failover
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServicePatch {
    #[serde(default, deserialize_with = "required")]
    pub name: Option<String>,
    /// Replaces the whole pool.
    #[serde(default, deserialize_with = "required")]
    pub app_server_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "required")]
    pub strategy: Option<Strategy>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub tariff_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    pub ring_timeout_seconds: Option<Option<i32>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ServiceQuery {
    /// Only the service with this name.
    pub name: Option<String>,
    /// Only services with this strategy.
    pub strategy: Option<Strategy>,
    /// Only services whose pool contains this app server.
    pub app_server_id: Option<String>,
    /// Only services with this tariff.
    pub tariff_id: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

async fn check(s: &AppState, f: &ServiceFields) -> ApiResult<()> {
    validate::name("name", &f.name)?;
    let mut seen = HashSet::new();
    for id in &f.app_server_ids {
        if !seen.insert(id) {
            return Err(validate::invalid(
                "app_server_ids",
                format!("'{id}' is listed twice"),
            ));
        }
    }
    if f.app_server_ids.len() > 64 {
        return Err(validate::invalid(
            "app_server_ids",
            "at most 64 app servers per service",
        ));
    }
    let unknown = s.store.unknown_app_servers(&f.app_server_ids).await?;
    if !unknown.is_empty() {
        return Err(validate::invalid(
            "app_server_ids",
            format!(
                "no app server with id {}",
                unknown
                    .iter()
                    .map(|u| format!("'{u}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if let Some(t) = &f.tariff_id {
        tariff_exists(s, "tariff_id", t).await?;
    }
    if let Some(r) = f.ring_timeout_seconds {
        if !(1..=3_600).contains(&r) {
            return Err(validate::invalid(
                "ring_timeout_seconds",
                "must be from 1 to 3600",
            ));
        }
    }
    Ok(())
}

/// Create a service.
#[utoipa::path(post, operation_id = "create_services", path = "/v1/services", tag = "services", request_body = NewService,
    responses((status = 201, description = "Created", body = Service), CreateErrors))]
async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<NewService>,
) -> ApiResult<(StatusCode, Json<Service>)> {
    caller.require_admin()?;
    let f = ServiceFields {
        name: req.name,
        strategy: req.strategy,
        app_server_ids: req.app_server_ids,
        tariff_id: req.tariff_id,
        ring_timeout_seconds: req.ring_timeout_seconds,
    };
    check(&s, &f).await?;
    let created = s.store.create_service(&f).await?;
    s.configuration_changed().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List services.
#[utoipa::path(get, operation_id = "list_services", path = "/v1/services", tag = "services", params(ServiceQuery),
    responses((status = 200, description = "A page of services", body = List<Service>), ListErrors))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ServiceQuery>,
) -> ApiResult<Json<List<Service>>> {
    caller.require_admin()?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = ServiceFilter {
        name: q.name,
        strategy: q.strategy,
        app_server_id: q.app_server_id,
        tariff_id: q.tariff_id,
    };
    Ok(Json(s.store.list_services(&filter, &page).await?.into()))
}

/// Get a service.
#[utoipa::path(get, operation_id = "get_services", path = "/v1/services/{id}", tag = "services", params(IdPath),
    responses((status = 200, description = "The service", body = Service), ReadErrors))]
async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Service>> {
    caller.require_admin()?;
    s.store
        .get_service(&id)
        .await
        .map(Json)
        .map_err(|e| ApiError::from_store("service", &id, e))
}

/// Change a service (merge patch).
#[utoipa::path(patch, operation_id = "update_services", path = "/v1/services/{id}", tag = "services", params(IdPath), request_body = ServicePatch,
    responses((status = 200, description = "The changed service", body = Service), UpdateErrors))]
async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<ServicePatch>,
) -> ApiResult<Json<Service>> {
    caller.require_admin()?;
    let current = s
        .store
        .get_service(&id)
        .await
        .map_err(|e| ApiError::from_store("service", &id, e))?;
    let mut f = ServiceFields::from(current);
    apply(&mut f.name, p.name);
    apply(&mut f.app_server_ids, p.app_server_ids);
    apply(&mut f.strategy, p.strategy);
    apply_nullable(&mut f.tariff_id, p.tariff_id);
    apply_nullable(&mut f.ring_timeout_seconds, p.ring_timeout_seconds);
    check(&s, &f).await?;
    let updated = s
        .store
        .update_service(&id, &f)
        .await
        .map_err(|e| ApiError::from_store("service", &id, e))?;
    s.configuration_changed().await?;
    Ok(Json(updated))
}

/// Delete a service that no rule points to.
#[utoipa::path(delete, operation_id = "delete_services", path = "/v1/services/{id}", tag = "services", params(IdPath),
    responses((status = 204, description = "Deleted"), DeleteErrors))]
async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    s.store
        .delete_service(&id)
        .await
        .map_err(|e| ApiError::from_store("service", &id, e))?;
    s.configuration_changed().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
}
