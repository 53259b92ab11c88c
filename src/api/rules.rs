//! `/v1/rules`; the dry run `POST /v1/rules/evaluate` is in
//! `rules_evaluate`.

use std::collections::BTreeMap;

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
use crate::relay::rules::validate_match;
use crate::store::rules::{Rule, RuleFields, RuleFilter, RuleMatch};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    #[schema(example = "voicemail by number")]
    pub name: Option<String>,
    /// Lower is evaluated first; defaults to 100.
    #[serde(default = "default_priority")]
    #[schema(example = 100)]
    pub priority: i32,
    /// Defaults to true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Conditions; absent or `{}` matches every request.
    #[serde(default, rename = "match")]
    pub match_: RuleMatch,
    pub service_id: String,
    /// Headers added to the inquiry sent to the app server.
    #[serde(default)]
    #[schema(example = json!({"X-Tier": "gold"}))]
    pub set: BTreeMap<String, String>,
}

fn default_priority() -> i32 {
    100
}
fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulePatch {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "required")]
    pub priority: Option<i32>,
    #[serde(default, deserialize_with = "required")]
    pub enabled: Option<bool>,
    /// Replaces all conditions.
    #[serde(default, rename = "match", deserialize_with = "required")]
    pub match_: Option<RuleMatch>,
    #[serde(default, deserialize_with = "required")]
    pub service_id: Option<String>,
    /// Replaces all attributes.
    #[serde(default, deserialize_with = "required")]
    pub set: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RuleQuery {
    /// Only rules choosing this service.
    pub service_id: Option<String>,
    /// Only enabled (true) or disabled (false) rules.
    pub enabled: Option<bool>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Headers the relay itself owns and a rule may not set.
const RESERVED_HEADERS: &[&str] = &[
    "via",
    "v",
    "from",
    "f",
    "to",
    "t",
    "call-id",
    "i",
    "cseq",
    "max-forwards",
    "contact",
    "m",
    "content-length",
    "l",
    "content-type",
    "c",
    "route",
    "record-route",
    "p-asserted-identity",
    "x-switchboard-session",
];

async fn check(s: &AppState, f: &RuleFields) -> ApiResult<()> {
    if let Some(n) = &f.name {
        validate::name("name", n)?;
    }
    if !(0..=1_000_000).contains(&f.priority) {
        return Err(validate::invalid("priority", "must be from 0 to 1000000"));
    }
    validate_match(&f.match_).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    for (name, value) in &f.set {
        let field = format!("set.{name}");
        validate::header_name(&field, name)?;
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(validate::invalid(
                &field,
                "this header is managed by the relay and cannot be set",
            ));
        }
        validate::header_value(&field, value)?;
    }
    match s.store.get_service(&f.service_id).await {
        Ok(_) => Ok(()),
        Err(crate::store::StoreError::NotFound) => Err(validate::invalid(
            "service_id",
            format!("no service with id '{}'", f.service_id),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Create a rule.
#[utoipa::path(post, operation_id = "create_rules", path = "/v1/rules", tag = "rules", request_body = NewRule,
    responses((status = 201, description = "Created", body = Rule), CreateErrors))]
async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<NewRule>,
) -> ApiResult<(StatusCode, Json<Rule>)> {
    caller.require_admin()?;
    let f = RuleFields {
        name: req.name,
        priority: req.priority,
        enabled: req.enabled,
        match_: req.match_,
        service_id: req.service_id,
        set: req.set,
    };
    check(&s, &f).await?;
    let created = s.store.create_rule(&f).await?;
    s.configuration_changed().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List rules (in creation order; evaluation order is by `priority`).
#[utoipa::path(get, operation_id = "list_rules", path = "/v1/rules", tag = "rules", params(RuleQuery),
    responses((status = 200, description = "A page of rules", body = List<Rule>), ListErrors))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<RuleQuery>,
) -> ApiResult<Json<List<Rule>>> {
    caller.require_admin()?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = RuleFilter {
        service_id: q.service_id,
        enabled: q.enabled,
    };
    Ok(Json(s.store.list_rules(&filter, &page).await?.into()))
}

/// Get a rule.
#[utoipa::path(get, operation_id = "get_rules", path = "/v1/rules/{id}", tag = "rules", params(IdPath),
    responses((status = 200, description = "The rule", body = Rule), ReadErrors))]
async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Rule>> {
    caller.require_admin()?;
    s.store
        .get_rule(&id)
        .await
        .map(Json)
        .map_err(|e| ApiError::from_store("rule", &id, e))
}

/// Change a rule (merge patch; `match` and `set` are replaced whole).
#[utoipa::path(patch, operation_id = "update_rules", path = "/v1/rules/{id}", tag = "rules", params(IdPath), request_body = RulePatch,
    responses((status = 200, description = "The changed rule", body = Rule), UpdateErrors))]
async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<RulePatch>,
) -> ApiResult<Json<Rule>> {
    caller.require_admin()?;
    let current = s
        .store
        .get_rule(&id)
        .await
        .map_err(|e| ApiError::from_store("rule", &id, e))?;
    let mut f = RuleFields::from(current);
    apply_nullable(&mut f.name, p.name);
    apply(&mut f.priority, p.priority);
    apply(&mut f.enabled, p.enabled);
    apply(&mut f.match_, p.match_);
    apply(&mut f.service_id, p.service_id);
    apply(&mut f.set, p.set);
    check(&s, &f).await?;
    let updated = s
        .store
        .update_rule(&id, &f)
        .await
        .map_err(|e| ApiError::from_store("rule", &id, e))?;
    s.configuration_changed().await?;
    Ok(Json(updated))
}

/// Delete a rule.
#[utoipa::path(delete, operation_id = "delete_rules", path = "/v1/rules/{id}", tag = "rules", params(IdPath),
    responses((status = 204, description = "Deleted"), DeleteErrors))]
async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    s.store
        .delete_rule(&id)
        .await
        .map_err(|e| ApiError::from_store("rule", &id, e))?;
    s.configuration_changed().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
}
