//! Wiring: opens the store, prepares state and runs the servers on
//! listeners that the caller has already bound (so tests bind port 0).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, auth::JwtKeys, AppState};
use crate::config::Settings;
use crate::relay::catalog::CatalogHandle;
use crate::store::Store;

/// Opens the database and applies migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database_url)
        .await
        .with_context(|| format!("opening database {}", redact_url(&settings.database_url)))?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// Everything the servers share, ready to serve: first admin ensured,
/// signing key loaded, routing catalog built.
pub async fn prepare(settings: Settings, store: Store) -> anyhow::Result<AppState> {
    ensure_first_admin(&settings, &store).await?;
    let secret = match &settings.jwt_secret {
        Some(s) => s.clone(),
        None => store
            .setting_or_insert("jwt_secret", || hex::encode(rand::random::<[u8; 32]>()))
            .await
            .context("loading the token signing secret")?,
    };
    let catalog = CatalogHandle::default();
    catalog
        .reload(&store)
        .await
        .context("loading the routing configuration")?;
    Ok(AppState {
        store,
        catalog,
        settings: Arc::new(settings),
        jwt: Arc::new(JwtKeys::new(secret.as_bytes())),
    })
}

/// Serves the HTTP API on `listener` until `shutdown` completes.
pub async fn serve_http(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = api::router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server")
}

/// Creates the first admin when there is none: from the configured
/// credentials, or with a generated password logged once.
async fn ensure_first_admin(settings: &Settings, store: &Store) -> anyhow::Result<()> {
    if store.count_admins().await? > 0 {
        return Ok(());
    }
    let username = settings
        .admin_user
        .clone()
        .unwrap_or_else(|| "admin".into());
    let (password, generated) = match &settings.admin_password {
        Some(p) => (p.clone(), false),
        None => (hex::encode(rand::random::<[u8; 12]>()), true),
    };
    let hash = tokio::task::spawn_blocking(move || {
        api::passwords::hash_blocking(&password).map(|h| (h, password))
    })
    .await
    .context("hashing the admin password")?
    .map_err(|e| anyhow::anyhow!("hashing the admin password: {e}"))?;
    match store.create_admin(&username, &hash.0).await {
        Ok(_) => {}
        // Another node created it at the same moment.
        Err(crate::store::StoreError::Conflict(_)) => return Ok(()),
        Err(e) => return Err(e).context("creating the first admin"),
    }
    if generated {
        tracing::warn!(
            username = %username,
            password = %hash.1,
            "created the first admin with a generated password; it is shown only this once"
        );
    } else {
        tracing::info!(username = %username, "created the first admin");
    }
    Ok(())
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
