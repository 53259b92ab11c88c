//! `/v1/clients`: SIP client accounts. The password is write-only: it is
//! turned into digest HA1 values for the realm and then forgotten.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::{JsonBody, QueryParams};
use super::patch::{apply, apply_nullable, nullable, required};
use super::problem::docs::{CreateErrors, DeleteErrors, ListErrors, ReadErrors, UpdateErrors};
use super::problem::{ApiError, ApiResult};
use super::{page_request, validate, AppState, IdPath, List};
use crate::config::DigestAlgorithm;
use crate::relay::auth::ha1;
use crate::store::clients::{Client, ClientFields, ClientFilter};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// SIP user name (Request-URI and digest username).
    #[schema(example = "alice")]
    pub username: String,
    /// At least 8 characters; never stored or returned.
    #[schema(example = "s3cret-pass", write_only)]
    pub password: String,
    #[schema(example = "Alice")]
    pub display_name: Option<String>,
    /// Defaults to true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Overrides the service's tariff for this client.
    pub tariff_id: Option<String>,
    /// Concurrent sessions allowed; absent means unlimited.
    #[schema(example = 4)]
    pub max_sessions: Option<i32>,
}

fn yes() -> bool {
    true
}

/// Fields to change; `null` clears a nullable one. Changing `username`
/// needs `password` too, since the stored digests depend on both.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    #[serde(default, deserialize_with = "required")]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "required")]
    #[schema(write_only)]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "required")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub tariff_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    pub max_sessions: Option<Option<i32>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ClientQuery {
    /// Only the client with this user name.
    pub username: Option<String>,
    /// Only enabled (true) or disabled (false) clients.
    pub enabled: Option<bool>,
    /// Only clients with this tariff override.
    pub tariff_id: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Checks the fields and that the referenced tariff exists.
async fn check(s: &AppState, f: &ClientFields) -> ApiResult<()> {
    validate::sip_username("username", &f.username)?;
    if let Some(d) = &f.display_name {
        validate::name("display_name", d)?;
    }
    if let Some(m) = f.max_sessions {
        if !(0..=1_000_000).contains(&m) {
            return Err(validate::invalid(
                "max_sessions",
                "must be from 0 to 1000000",
            ));
        }
    }
    if let Some(t) = &f.tariff_id {
        tariff_exists(s, "tariff_id", t).await?;
    }
    Ok(())
}

/// 422 naming `field` when no tariff has id `id`.
pub async fn tariff_exists(s: &AppState, field: &str, id: &str) -> ApiResult<()> {
    match s.store.get_tariff(id).await {
        Ok(_) => Ok(()),
        Err(crate::store::StoreError::NotFound) => Err(validate::invalid(
            field,
            format!("no tariff with id '{id}'"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Digest HA1 for every algorithm we can offer, for the configured realm.
fn set_password(s: &AppState, f: &mut ClientFields, password: &str) -> ApiResult<()> {
    validate::sip_password("password", password)?;
    f.realm = s.settings.domain.clone();
    f.ha1_md5 = ha1(DigestAlgorithm::Md5, &f.username, &f.realm, password);
    f.ha1_sha256 = ha1(DigestAlgorithm::Sha256, &f.username, &f.realm, password);
    Ok(())
}

/// Create a client account.
#[utoipa::path(post, operation_id = "create_clients", path = "/v1/clients", tag = "clients", request_body = NewClient,
    responses((status = 201, description = "Created", body = Client), CreateErrors))]
async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<NewClient>,
) -> ApiResult<(StatusCode, Json<Client>)> {
    caller.require_admin()?;
    let mut f = ClientFields {
        username: req.username,
        realm: String::new(),
        ha1_md5: String::new(),
        ha1_sha256: String::new(),
        display_name: req.display_name,
        enabled: req.enabled,
        tariff_id: req.tariff_id,
        max_sessions: req.max_sessions,
    };
    check(&s, &f).await?;
    set_password(&s, &mut f, &req.password)?;
    let client = s.store.create_client(&f).await?;
    s.configuration_changed().await?;
    Ok((StatusCode::CREATED, Json(client)))
}

/// List client accounts.
#[utoipa::path(get, operation_id = "list_clients", path = "/v1/clients", tag = "clients", params(ClientQuery),
    responses((status = 200, description = "A page of clients", body = List<Client>), ListErrors))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ClientQuery>,
) -> ApiResult<Json<List<Client>>> {
    caller.require_admin()?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = ClientFilter {
        username: q.username,
        enabled: q.enabled,
        tariff_id: q.tariff_id,
    };
    Ok(Json(s.store.list_clients(&filter, &page).await?.into()))
}

/// Get a client account.
#[utoipa::path(get, operation_id = "get_clients", path = "/v1/clients/{id}", tag = "clients", params(IdPath),
    responses((status = 200, description = "The client", body = Client), ReadErrors))]
async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Client>> {
    caller.require_admin()?;
    s.store
        .get_client(&id)
        .await
        .map(Json)
        .map_err(|e| ApiError::from_store("client", &id, e))
}

/// Change a client account (merge patch).
#[utoipa::path(patch, operation_id = "update_clients", path = "/v1/clients/{id}", tag = "clients", params(IdPath), request_body = ClientPatch,
    responses((status = 200, description = "The changed client", body = Client), UpdateErrors))]
async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<ClientPatch>,
) -> ApiResult<Json<Client>> {
    caller.require_admin()?;
    let current = s
        .store
        .get_client(&id)
        .await
        .map_err(|e| ApiError::from_store("client", &id, e))?;
    let mut f = ClientFields::from(current);
    let renamed = p.username.as_ref().is_some_and(|u| *u != f.username);
    if renamed && p.password.is_none() {
        return Err(validate::invalid(
            "password",
            "is required when username changes (the stored digests are computed from both)",
        ));
    }
    apply(&mut f.username, p.username);
    apply_nullable(&mut f.display_name, p.display_name);
    apply(&mut f.enabled, p.enabled);
    apply_nullable(&mut f.tariff_id, p.tariff_id);
    apply_nullable(&mut f.max_sessions, p.max_sessions);
    check(&s, &f).await?;
    if let Some(password) = p.password {
        set_password(&s, &mut f, &password)?;
    }
    let client = s
        .store
        .update_client(&id, &f)
        .await
        .map_err(|e| ApiError::from_store("client", &id, e))?;
    s.configuration_changed().await?;
    Ok(Json(client))
}

/// Delete a client account. Its past sessions and CDRs keep its id.
#[utoipa::path(delete, operation_id = "delete_clients", path = "/v1/clients/{id}", tag = "clients", params(IdPath),
    responses((status = 204, description = "Deleted"), DeleteErrors))]
async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    s.store
        .delete_client(&id)
        .await
        .map_err(|e| ApiError::from_store("client", &id, e))?;
    s.configuration_changed().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
}
