//! Test harness: a Switchboard app on an ephemeral port with a fresh
//! database per test, on SQLite always and on PostgreSQL when
//! `TEST_DATABASE_URL` is set (mandatory when `CI` is set).

#![allow(dead_code)]

pub mod process;
pub mod relay;
pub mod sip_digest;
pub mod sip_ua;
pub mod sipp;

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::app;
use switchboard::config::Settings;
use switchboard::store::Store;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const DOMAIN: &str = "test.example";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Runs a test body on both engines: `both_engines!(name, name2, …)` wants
/// `async fn name(engine: Engine)` in scope.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::common::Engine::Sqlite).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::common::Engine::Postgres).await
                }
            }
        )*
    };
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    /// The test's own spool directory (inside its temporary directory).
    pub spool_dir: std::path::PathBuf,
    dir: tempfile::TempDir,
    pg_drop: Option<(String, String)>,
}

impl TestDb {
    /// `None` when PostgreSQL is asked for but not configured (outside CI).
    pub async fn new(engine: Engine) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool_dir = dir.path().join("spool");
        match engine {
            Engine::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("switchboard.db").display());
                Some(TestDb {
                    url,
                    spool_dir,
                    dir,
                    pg_drop: None,
                })
            }
            Engine::Postgres => {
                let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
                    if std::env::var_os("CI").is_some() {
                        panic!("TEST_DATABASE_URL must be set in CI: PostgreSQL tests may not be skipped");
                    }
                    eprintln!("SKIPPED (PostgreSQL): set TEST_DATABASE_URL=postgres://… to run this test on PostgreSQL");
                    return None;
                };
                let name = format!("sbtest_{}", uuid::Uuid::new_v4().simple());
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let url = with_database(&admin_url, &name);
                Some(TestDb {
                    url,
                    spool_dir,
                    dir,
                    pg_drop: Some((admin_url, name)),
                })
            }
        }
    }
}

impl TestDb {
    /// The same database for a second node: its own spool directory; the
    /// database is dropped with the first handle only.
    pub fn second_node(&self) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        TestDb {
            url: self.url.clone(),
            spool_dir: dir.path().join("spool"),
            dir,
            pg_drop: None,
        }
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg_drop.take() {
            // Drop runs inside the test's runtime; use a thread of our own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
                        .await
                        .ok()?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

pub fn test_settings(database_url: &str) -> Settings {
    Settings {
        http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        sip_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: database_url.to_string(),
        domain: DOMAIN.into(),
        jwt_secret: Some(JWT_SECRET.into()),
        admin_user: Some(ADMIN_USER.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        node_name: "test-node".into(),
        // Tests that want probes set their own interval; others must not
        // see OPTIONS arrive at their app servers.
        as_probe_interval_seconds: 3600,
        ..Settings::default()
    }
}

/// A running app and an HTTP client for it.
pub struct TestApp {
    pub base: String,
    /// The SIP port (UDP and TCP).
    pub sip: SocketAddr,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub settings: Settings,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    // Last: dropped after the server stopped.
    pub db: TestDb,
}

impl TestApp {
    /// Starts the app on `engine` with the default test settings.
    pub async fn spawn(engine: Engine) -> Option<TestApp> {
        let db = TestDb::new(engine).await?;
        let settings = test_settings(&db.url);
        Some(Self::spawn_with(db, settings).await)
    }

    /// Starts the app on `db` with `settings`; a relative (default) spool
    /// directory is replaced by the test's own.
    pub async fn spawn_with(db: TestDb, mut settings: Settings) -> TestApp {
        if settings.spool_dir.is_relative() {
            settings.spool_dir = db.spool_dir.clone();
        }
        let (base, sip, shutdown, server) = start(settings.clone()).await;
        let mut app = TestApp {
            base,
            sip,
            http: reqwest::Client::new(),
            admin_token: String::new(),
            settings,
            shutdown: Some(shutdown),
            server: Some(server),
            db,
        };
        app.admin_token = app.login(ADMIN_USER, ADMIN_PASSWORD).await;
        app
    }

    /// A handle on a Switchboard that runs elsewhere (a child process) at
    /// `base` and `sip`, logged in as the test admin.
    pub async fn attach(db: TestDb, settings: Settings, base: String, sip: SocketAddr) -> TestApp {
        let mut app = TestApp {
            base,
            sip,
            http: reqwest::Client::new(),
            admin_token: String::new(),
            settings,
            shutdown: None,
            server: None,
            db,
        };
        app.admin_token = app.login(ADMIN_USER, ADMIN_PASSWORD).await;
        app
    }

    /// Stops the server and starts a new one on the same database.
    pub async fn restart(&mut self) {
        self.stop().await;
        let (base, sip, shutdown, server) = start(self.settings.clone()).await;
        self.base = base;
        self.sip = sip;
        self.shutdown = Some(shutdown);
        self.server = Some(server);
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/auth/token",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login failed: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// Sends a request; returns the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = resp.text().await.expect("body");
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                ct, "application/problem+json",
                "error without problem+json: {status} {text}"
            );
        }
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// As admin.
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(method, path, Some(&self.admin_token.clone()), body)
            .await
    }

    /// Sends a raw body with a given content type, as admin.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let resp = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.admin_token)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Creates a resource as admin, asserting 201; returns the body.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let (status, value) = self.admin(Method::POST, path, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "POST {path}: {value}");
        value
    }

    /// A tariff of 0.6 per minute billed by the second: one cent a second.
    pub async fn per_second_tariff(&self) -> Value {
        self.create(
            "/v1/tariffs",
            json!({"name": "per-second", "currency": "EUR", "price_per_minute": "0.6",
                   "minimum_seconds": 0, "increment_seconds": 1}),
        )
        .await
    }

    /// An app server at `as_uri`, a service `svc` on it billed with
    /// `tariff`, and a rule that sends every request there. Returns the app
    /// server and the service.
    pub async fn catch_all_service(&self, as_uri: &str, tariff: &Value) -> (Value, Value) {
        let app_server = self
            .create("/v1/app-servers", json!({"name": "as", "uri": as_uri}))
            .await;
        let service = self
            .create(
                "/v1/services",
                json!({"name": "svc", "app_server_ids": [app_server["id"]], "tariff_id": tariff["id"]}),
            )
            .await;
        self.create("/v1/rules", json!({"service_id": service["id"]}))
            .await;
        (app_server, service)
    }

    /// A second handle on the app's database.
    pub async fn store(&self) -> Store {
        Store::connect(&self.db.url).await.expect("store")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn start(settings: Settings) -> (String, SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let store = app::open_store(&settings).await.expect("open store");
    let listeners = app::Listeners::bind(settings.http_listen, settings.sip_listen)
        .await
        .expect("bind");
    let http = listeners.http_addr().expect("http addr");
    let sip = listeners.sip_addr().expect("sip addr");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app::run(settings, store, listeners, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    (format!("http://{http}"), sip, tx, server)
}

/// Asserts a problem answer: status, and a detail containing `needle`.
#[track_caller]
pub fn assert_problem(got: (StatusCode, Value), status: StatusCode, needle: &str) {
    let (s, body) = got;
    assert_eq!(s, status, "unexpected status, body: {body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(needle),
        "detail {detail:?} does not mention {needle:?}"
    );
    assert_eq!(body["status"], status.as_u16(), "problem status field");
}
