//! The REST control plane (`/v1`): axum handlers, each resource module
//! registering its routes and their OpenAPI description together.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Settings;
use crate::relay::catalog::CatalogHandle;
use crate::relay::registrar::Registrar;
use crate::store::signals::Signal;
use crate::store::{Page, PageRequest, Store};

pub mod app_servers;
pub mod auth;
pub mod cdrs;
pub mod charges;
pub mod clients;
pub mod extract;
pub mod health;
pub mod passwords;
pub mod patch;
pub mod problem;
pub mod registrations;
pub mod reports;
pub mod rules;
pub mod rules_evaluate;
pub mod services;
pub mod sessions;
pub mod stream;
pub mod tariffs;
pub mod tokens;
pub mod validate;

use problem::{problem_response, ApiError, ApiResult};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub catalog: CatalogHandle,
    pub settings: Arc<Settings>,
    pub jwt: Arc<auth::JwtKeys>,
    /// The signing secret, from which other node-shared keys are derived.
    pub jwt_secret: Arc<str>,
    /// This node's registrar, when the SIP engine runs in this process.
    pub registrar: Option<Arc<Registrar>>,
    /// This node's relay core, when the SIP engine runs in this process.
    pub relay: Option<crate::relay::RelayHandle>,
}

impl AppState {
    /// Rebuilds the routing snapshot after a configuration change, so the
    /// relay sees it at once.
    /// Other nodes sharing the database are told too.
    pub async fn configuration_changed(&self) -> ApiResult<()> {
        self.catalog
            .reload(&self.store)
            .await
            .map_err(ApiError::from)?;
        let signal = Signal::CatalogChanged {
            from: self.settings.node_name.clone(),
        };
        if let Err(e) = self.store.signal(&signal).await {
            // The change is stored; the other nodes catch up when their
            // signal connection comes back.
            tracing::warn!(error = %e, "other nodes not told of a configuration change");
        }
        Ok(())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "REST control plane of the Switchboard SIP relay. Errors are RFC 9457 problem documents. Money is an exact decimal string; computed amounts are rounded half-up to 6 decimal places.",
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "auth", description = "Admin log-in"),
        (name = "tokens", description = "Scoped, revocable tokens for billing systems and app servers"),
        (name = "clients", description = "SIP client accounts"),
        (name = "app-servers", description = "Application servers"),
        (name = "services", description = "Services and their app server pools"),
        (name = "rules", description = "Routing rules and their dry run"),
        (name = "tariffs", description = "Time tariffs"),
        (name = "registrations", description = "Live SIP registrations"),
        (name = "billing", description = "CDRs, charges and reports for billing systems"),
        (name = "sessions", description = "Sessions, their legs and events; termination"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A token from POST /v1/auth/token, or a scoped token minted over /v1/tokens."))
                    .build(),
            ),
        );
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(tokens::router())
        .merge(clients::router())
        .merge(app_servers::router())
        .merge(services::router())
        .merge(rules::router())
        .merge(rules_evaluate::router())
        .merge(tariffs::router())
        .merge(registrations::router())
        .merge(cdrs::router())
        .merge(charges::router())
        .merge(reports::router())
        .merge(sessions::router())
        .merge(health::router())
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (router, doc) = api_router().split_for_parts();
    router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> Response {
    problem_response(StatusCode::NOT_FOUND, "no such route".into())
}

async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed("this route does not accept that method".into()).into_response()
}

/// A page of a list: `next_cursor` is given while more items follow.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> From<Page<T>> for List<T> {
    fn from(p: Page<T>) -> Self {
        Self {
            items: p.items,
            next_cursor: p.next_cursor,
        }
    }
}

/// Turns `limit` and `cursor` query parameters into a page request.
pub fn page_request(limit: Option<u32>, cursor: Option<&str>) -> ApiResult<PageRequest> {
    let limit = limit.unwrap_or(crate::store::page::DEFAULT_LIMIT);
    if !(1..=crate::store::page::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "query parameter limit: must be from 1 to {}",
            crate::store::page::MAX_LIMIT
        )));
    }
    let after = match cursor {
        None => None,
        Some(c) => Some(PageRequest::decode_cursor(c).ok_or_else(|| {
            ApiError::BadRequest("query parameter cursor: not a cursor this API returned".into())
        })?),
    };
    Ok(PageRequest { limit, after })
}

/// `{"id": …}` path parameter documentation helper.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    /// Resource id.
    pub id: String,
}

/// The OpenAPI document as pretty JSON, exactly as committed in
/// `openapi/openapi.json`.
pub fn openapi_json() -> String {
    openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
