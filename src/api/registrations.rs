//! `/v1/registrations`: live bindings as published by the registrars.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::QueryParams;
use super::problem::docs::{DeleteErrors, ListErrors, ReadErrors};
use super::problem::{ApiError, ApiResult};
use super::{page_request, AppState, IdPath, List};
use crate::store::registrations::{Registration, RegistrationFilter};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RegistrationQuery {
    /// Only the bindings of this client.
    pub client_id: Option<String>,
    /// Only the bindings of this address of record.
    pub aor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List live registrations (unexpired bindings).
#[utoipa::path(get, operation_id = "list_registrations", path = "/v1/registrations", tag = "registrations", params(RegistrationQuery),
    responses((status = 200, description = "A page of bindings", body = List<Registration>), ListErrors))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<RegistrationQuery>,
) -> ApiResult<Json<List<Registration>>> {
    caller.require_admin()?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = RegistrationFilter {
        client_id: q.client_id,
        aor: q.aor,
    };
    Ok(Json(
        s.store.list_registrations(&filter, &page).await?.into(),
    ))
}

/// Get one binding.
#[utoipa::path(get, operation_id = "get_registrations", path = "/v1/registrations/{id}", tag = "registrations", params(IdPath),
    responses((status = 200, description = "The binding", body = Registration), ReadErrors))]
async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Registration>> {
    caller.require_admin()?;
    s.store
        .get_registration(&id)
        .await
        .map(Json)
        .map_err(|e| ApiError::from_store("registration", &id, e))
}

/// Remove a binding: the client is no longer reachable at that contact.
#[utoipa::path(delete, operation_id = "delete_registrations", path = "/v1/registrations/{id}", tag = "registrations", params(IdPath),
    responses((status = 204, description = "Removed"), DeleteErrors))]
async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let held_here = s.registrar.as_ref().is_some_and(|r| r.remove(&id));
    let deleted = s.store.delete_registration(&id).await?;
    if !deleted && !held_here {
        return Err(ApiError::NotFound(format!(
            "no registration with id '{id}'"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get, delete))
}
