//! `/v1/tariffs`

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
use crate::store::tariffs::{Tariff, TariffFields, TariffFilter};
use crate::store::Money;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTariff {
    #[schema(example = "standard-eur")]
    pub name: String,
    #[schema(example = "EUR")]
    pub currency: String,
    /// Defaults to "0".
    #[serde(default)]
    pub setup_fee: Money,
    pub price_per_minute: Money,
    /// Defaults to 0.
    #[serde(default)]
    #[schema(example = 60)]
    pub minimum_seconds: i32,
    /// Defaults to 1 (per-second billing).
    #[serde(default = "one")]
    #[schema(example = 60)]
    pub increment_seconds: i32,
}

fn one() -> i32 {
    1
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TariffPatch {
    #[serde(default, deserialize_with = "required")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "required")]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "required")]
    pub setup_fee: Option<Money>,
    #[serde(default, deserialize_with = "required")]
    pub price_per_minute: Option<Money>,
    #[serde(default, deserialize_with = "required")]
    pub minimum_seconds: Option<i32>,
    #[serde(default, deserialize_with = "required")]
    pub increment_seconds: Option<i32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TariffQuery {
    /// Only tariffs in this currency.
    pub currency: Option<String>,
    /// Only the tariff with this name.
    pub name: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn check(f: &TariffFields) -> ApiResult<()> {
    validate::name("name", &f.name)?;
    validate::currency("currency", &f.currency)?;
    if f.setup_fee.0.is_sign_negative() && !f.setup_fee.0.is_zero() {
        return Err(validate::invalid("setup_fee", "must not be negative"));
    }
    if f.price_per_minute.0.is_sign_negative() && !f.price_per_minute.0.is_zero() {
        return Err(validate::invalid(
            "price_per_minute",
            "must not be negative",
        ));
    }
    if !(0..=86_400).contains(&f.minimum_seconds) {
        return Err(validate::invalid(
            "minimum_seconds",
            "must be from 0 to 86400",
        ));
    }
    if !(1..=3_600).contains(&f.increment_seconds) {
        return Err(validate::invalid(
            "increment_seconds",
            "must be from 1 to 3600",
        ));
    }
    Ok(())
}

/// Create a tariff.
#[utoipa::path(post, operation_id = "create_tariffs", path = "/v1/tariffs", tag = "tariffs", request_body = NewTariff,
    responses(
        (status = 201, description = "Created", body = Tariff),
        CreateErrors,
    ))]
async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<NewTariff>,
) -> ApiResult<(StatusCode, Json<Tariff>)> {
    caller.require_admin()?;
    let fields = TariffFields {
        name: req.name,
        currency: req.currency,
        setup_fee: req.setup_fee,
        price_per_minute: req.price_per_minute,
        minimum_seconds: req.minimum_seconds,
        increment_seconds: req.increment_seconds,
    };
    check(&fields)?;
    let created = s.store.create_tariff(&fields).await?;
    // The relay bills with the tariffs it holds in memory.
    s.configuration_changed().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List tariffs.
#[utoipa::path(get, operation_id = "list_tariffs", path = "/v1/tariffs", tag = "tariffs", params(TariffQuery),
    responses(
        (status = 200, description = "A page of tariffs", body = List<Tariff>),
        ListErrors,
    ))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<TariffQuery>,
) -> ApiResult<Json<List<Tariff>>> {
    caller.require(&[super::auth::Role::Admin, super::auth::Role::Billing])?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = TariffFilter {
        currency: q.currency,
        name: q.name,
    };
    Ok(Json(s.store.list_tariffs(&filter, &page).await?.into()))
}

/// Get a tariff.
#[utoipa::path(get, operation_id = "get_tariffs", path = "/v1/tariffs/{id}", tag = "tariffs", params(IdPath),
    responses(
        (status = 200, description = "The tariff", body = Tariff),
        ReadErrors,
    ))]
async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Tariff>> {
    caller.require(&[super::auth::Role::Admin, super::auth::Role::Billing])?;
    s.store
        .get_tariff(&id)
        .await
        .map(Json)
        .map_err(|e| ApiError::from_store("tariff", &id, e))
}

/// Change a tariff (merge patch). Existing CDRs keep the amounts they were billed with.
#[utoipa::path(patch, operation_id = "update_tariffs", path = "/v1/tariffs/{id}", tag = "tariffs", params(IdPath), request_body = TariffPatch,
    responses(
        (status = 200, description = "The changed tariff", body = Tariff),
        UpdateErrors,
    ))]
async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<TariffPatch>,
) -> ApiResult<Json<Tariff>> {
    caller.require_admin()?;
    let current = s
        .store
        .get_tariff(&id)
        .await
        .map_err(|e| ApiError::from_store("tariff", &id, e))?;
    let mut f = TariffFields {
        name: current.name,
        currency: current.currency,
        setup_fee: current.setup_fee,
        price_per_minute: current.price_per_minute,
        minimum_seconds: current.minimum_seconds,
        increment_seconds: current.increment_seconds,
    };
    apply(&mut f.name, p.name);
    apply(&mut f.currency, p.currency);
    apply(&mut f.setup_fee, p.setup_fee);
    apply(&mut f.price_per_minute, p.price_per_minute);
    apply(&mut f.minimum_seconds, p.minimum_seconds);
    apply(&mut f.increment_seconds, p.increment_seconds);
    check(&f)?;
    let updated = s
        .store
        .update_tariff(&id, &f)
        .await
        .map_err(|e| ApiError::from_store("tariff", &id, e))?;
    s.configuration_changed().await?;
    Ok(Json(updated))
}

/// Delete a tariff that no client or service uses.
#[utoipa::path(delete, operation_id = "delete_tariffs", path = "/v1/tariffs/{id}", tag = "tariffs", params(IdPath),
    responses(
        (status = 204, description = "Deleted"),
        DeleteErrors,
    ))]
async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    s.store
        .delete_tariff(&id)
        .await
        .map_err(|e| ApiError::from_store("tariff", &id, e))?;
    s.configuration_changed().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
}
