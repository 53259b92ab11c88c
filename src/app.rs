//! Wiring: opens the store, prepares state and runs the servers on
//! listeners that the caller has already bound (so tests bind port 0).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};

use crate::api::{self, auth::JwtKeys, AppState};
use crate::config::Settings;
use crate::relay::auth::DigestAuth;
use crate::relay::catalog::CatalogHandle;
use crate::relay::core::{Core, CoreDeps, HealthConfig, RelayConfig};
use crate::relay::registrar::{Registrar, RegistrarConfig};
use crate::sip::engine::{Engine, EngineConfig};
use crate::sip::transaction::{LayerConfig, TransactionLayer};
use crate::sip::transport::{Outbound, TcpConfig, Transports};
use crate::sip_threads::SipThreads;
use crate::store::Store;

/// The sockets a node serves on, bound before it starts (tests bind port 0).
pub struct Listeners {
    pub http: TcpListener,
    pub sip_udp: UdpSocket,
    pub sip_tcp: TcpListener,
}

impl Listeners {
    /// Binds HTTP and SIP (UDP and TCP on the same port).
    pub async fn bind(http: SocketAddr, sip: SocketAddr) -> anyhow::Result<Self> {
        let http = TcpListener::bind(http)
            .await
            .with_context(|| format!("binding HTTP on {http}"))?;
        // With port 0 the UDP port is chosen first and TCP takes the same;
        // another process may hold it on TCP, so try a few times.
        let mut last_error = None;
        for _ in 0..20 {
            let udp = UdpSocket::bind(sip)
                .await
                .with_context(|| format!("binding SIP UDP on {sip}"))?;
            let port = udp.local_addr()?.port();
            match TcpListener::bind(SocketAddr::new(sip.ip(), port)).await {
                Ok(tcp) => {
                    return Ok(Self {
                        http,
                        sip_udp: udp,
                        sip_tcp: tcp,
                    })
                }
                Err(e) if sip.port() == 0 => last_error = Some(e),
                Err(e) => return Err(e).with_context(|| format!("binding SIP TCP on {sip}")),
            }
        }
        Err(anyhow::anyhow!("binding SIP TCP on {sip}: {last_error:?}"))
    }

    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }

    pub fn sip_addr(&self) -> std::io::Result<SocketAddr> {
        self.sip_udp.local_addr()
    }
}

/// Runs a whole node (SIP engine and HTTP API) until `shutdown` completes.
pub async fn run(
    settings: Settings,
    store: Store,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut state = prepare(settings, store.clone()).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let settings = state.settings.clone();

    // SIP: transports → engine → transaction layer → relay core, all on the
    // SIP threads: its sockets registered with, and its tasks spawned on, their
    // runtime (see `sip_threads`).
    let sip = SipThreads::start("sip", settings.sip_threads as usize)
        .context("starting the SIP threads")?;
    let (transports, layer, tu_events) = {
        let _on_sip = sip.handle().enter();
        let udp = listeners
            .sip_udp
            .into_std()
            .and_then(UdpSocket::from_std)
            .context("moving the SIP UDP socket to the SIP threads")?;
        let tcp = listeners
            .sip_tcp
            .into_std()
            .and_then(TcpListener::from_std)
            .context("moving the SIP TCP listener to the SIP threads")?;
        let transports = Transports::new(
            udp,
            tcp,
            TcpConfig::default(),
            EngineConfig::default().limits,
            stop_rx.clone(),
        )
        .context("SIP transports")?;
        let outbound: Arc<dyn Outbound> = transports.clone();
        let layer_config = LayerConfig {
            // The setting is at most 100,000,000, which fits any usize of
            // 32 bits or more; the fallback only keeps the conversion total.
            max_server_transactions: usize::try_from(settings.max_server_transactions)
                .unwrap_or(usize::MAX),
            ..LayerConfig::default()
        };
        let (layer, tu_events) = TransactionLayer::start(outbound, layer_config);
        (transports, layer, tu_events)
    };
    let outbound: Arc<dyn Outbound> = transports.clone();
    let engine_config = EngineConfig::default();
    let product = engine_config.product.clone();
    let engine = Arc::new(Engine::new(engine_config, outbound, layer.clone()));
    let (publish_tx, publish_rx) = mpsc::unbounded_channel();
    let registrar = Arc::new(Registrar::new(
        RegistrarConfig {
            node: settings.node_name.clone(),
            ..RegistrarConfig::default()
        },
        publish_tx,
    ));
    registrar.restore(
        store
            .node_registrations(&settings.node_name)
            .await
            .context("loading registrations")?,
        transports.udp_addr(),
    );
    let publisher = tokio::spawn(crate::relay::publisher::publish_registrations(
        store.clone(),
        publish_rx,
        stop_rx.clone(),
    ));
    let nonce_key: [u8; 32] = Sha256::new()
        .chain_update(b"switchboard sip nonce key:")
        .chain_update(state.jwt_secret.as_bytes())
        .finalize()
        .into();
    let (session_tx, session_rx) = mpsc::unbounded_channel();
    let session_publisher = tokio::spawn(crate::relay::publisher::publish_sessions(
        store.clone(),
        session_rx,
        stop_rx.clone(),
    ));
    // Billing: close what a dead previous run left open, then write CDRs
    // through the ledger (database, else the spool) and keep the heartbeat.
    let catalog = state.catalog.snapshot();
    let clients: std::collections::HashMap<&str, _> = catalog
        .clients_by_username
        .values()
        .map(|c| (c.id.as_str(), &**c))
        .collect();
    crate::billing::restart::close_orphans(&store, &settings.node_name, |s, service| {
        let client = s
            .client_id
            .as_deref()
            .and_then(|id| clients.get(id).copied());
        catalog.tariff_for(client, service)
    })
    .await
    .context("closing the sessions left open by the previous run")?;
    drop(clients);
    let cdr_store = store.clone();
    let (cdr_tx, cdr_publisher) =
        crate::billing::ledger::start("cdrs", &settings.spool_dir, stop_rx.clone(), move |batch| {
            let store = cdr_store.clone();
            Box::pin(async move { store.insert_cdrs(batch).await })
        })
        .context("opening the CDR spool (setting spool_dir)")?;
    let charge_store = store.clone();
    let (charge_tx, charge_publisher) = crate::billing::ledger::start(
        "charges",
        &settings.spool_dir,
        stop_rx.clone(),
        move |batch| {
            let store = charge_store.clone();
            Box::pin(async move { store.record_accepted_charges(batch).await })
        },
    )
    .context("opening the charge spool (setting spool_dir)")?;
    let heartbeat = tokio::spawn(crate::billing::restart::heartbeat(
        store.clone(),
        settings.node_name.clone(),
        stop_rx.clone(),
    ));
    let core = Core::new(CoreDeps {
        layer,
        auth: Arc::new(DigestAuth::new(
            settings.domain.clone(),
            settings.digest_algorithms.clone(),
            settings.digest_challenges,
            nonce_key,
            std::time::Duration::from_secs(settings.nonce_ttl_seconds),
        )),
        registrar: registrar.clone(),
        catalog: state.catalog.clone(),
        product,
        listen: transports.udp_addr(),
        node: settings.node_name.clone(),
        publish: session_tx,
        cdrs: cdr_tx,
        charges: charge_tx,
        config: RelayConfig {
            response_timeout: std::time::Duration::from_millis(settings.as_response_timeout_ms),
            min_session_expires: u32::try_from(settings.session_min_se_seconds).unwrap_or(90),
            ..RelayConfig::default()
        },
        health: HealthConfig {
            interval: std::time::Duration::from_secs(settings.as_probe_interval_seconds),
            failures: settings.as_probe_failures,
        },
        store: store.clone(),
        background: tokio::runtime::Handle::current(),
    });
    let (command_tx, command_rx) = mpsc::channel(64);
    sip.handle()
        .spawn(core.run(tu_events, command_rx, stop_rx.clone()));
    let relay = crate::relay::RelayHandle::new(command_tx);
    tokio::spawn(crate::relay::cluster::follow(
        store.clone(),
        state.catalog.clone(),
        relay.clone(),
        settings.node_name.clone(),
        stop_rx.clone(),
    ));
    state.relay = Some(relay);
    tokio::spawn(expire_bindings(registrar.clone(), stop_rx.clone()));
    {
        let _on_sip = sip.handle().enter();
        transports.run(engine);
    }
    tracing::info!(sip = %transports.udp_addr(), "SIP listening on UDP and TCP");

    state.registrar = Some(registrar);
    let result = serve_http(listeners.http, state, shutdown).await;
    let _ = stop_tx.send(true);
    let _ = publisher.await;
    let _ = session_publisher.await;
    let _ = cdr_publisher.await;
    let _ = charge_publisher.await;
    let _ = heartbeat.await;
    sip.stop();
    result
}

/// Removes expired bindings once a second.
async fn expire_bindings(registrar: Arc<Registrar>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => { registrar.expire(); }
            _ = shutdown.changed() => return,
        }
    }
}

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
        jwt_secret: Arc::from(secret.as_str()),
        registrar: None,
        relay: None,
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
