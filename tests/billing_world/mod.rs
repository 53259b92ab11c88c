//! A world for the charge and report tests: two app servers with their
//! tokens, a billing token, and sessions written through the store as the
//! relay would publish them.

#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::store::sessions::{SessionChange, SessionRecord};
use switchboard::store::{Money, Store, Timestamp};

use crate::common::{Engine, TestApp};

pub struct World {
    pub app: TestApp,
    pub store: Store,
    pub as1: String,
    pub as2: String,
    pub as1_token: String,
    pub as2_token: String,
    pub billing_token: String,
}

async fn token(app: &TestApp, body: Value) -> String {
    app.create("/v1/tokens", body).await["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

async fn app_server(app: &TestApp, name: &str) -> String {
    app.create(
        "/v1/app-servers",
        json!({"name": name, "uri": "sip:127.0.0.1:5080"}),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_string()
}

pub async fn world(engine: Engine) -> Option<World> {
    let app = TestApp::spawn(engine).await?;
    let as1 = app_server(&app, "as1").await;
    let as2 = app_server(&app, "as2").await;
    let as1_token = token(
        &app,
        json!({"name": "as1", "role": "app_server", "app_server_id": as1}),
    )
    .await;
    let as2_token = token(
        &app,
        json!({"name": "as2", "role": "app_server", "app_server_id": as2}),
    )
    .await;
    let billing_token = token(&app, json!({"name": "billing", "role": "billing"})).await;
    let store = app.store().await;
    Some(World {
        app,
        store,
        as1,
        as2,
        as1_token,
        as2_token,
        billing_token,
    })
}

/// An established session of `client` on `service`, served by `app_server`.
pub fn session(id: &str, client: &str, service: &str, app_server: &str) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        request_id: format!("{id}-request"),
        state: "established".into(),
        client_id: Some(client.into()),
        service_id: Some(service.into()),
        rule_id: None,
        app_server_id: Some(app_server.into()),
        caller_uri: format!("sip:{client}@test.example"),
        callee_uri: "sip:svc@test.example".into(),
        client_call_id: format!("{id}-client@host"),
        as_call_id: Some(format!("{id}-as@switchboard")),
        node: "test-node".into(),
        created_at: Timestamp::now(),
        answered_at: Some(Timestamp::now()),
        ended_at: None,
        duration_ms: None,
        end_reason: None,
        final_status: Some(200),
    }
}

impl World {
    pub async fn add_session(&self, id: &str, client: &str, service: &str, app_server: &str) {
        self.store
            .apply_session_changes(&[SessionChange::Session(Box::new(session(
                id, client, service, app_server,
            )))])
            .await
            .expect("publish a session");
    }

    /// POST /v1/charges with `token`.
    pub async fn charge(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.app
            .call(Method::POST, "/v1/charges", Some(token), Some(body))
            .await
    }

    /// GET `path` with `token`, asserting 200.
    pub async fn get(&self, token: &str, path: &str) -> Value {
        let (s, body) = self.app.call(Method::GET, path, Some(token), None).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// The ids of `GET /v1/charges{query}` with `token`.
    pub async fn charge_ids(&self, token: &str, query: &str) -> Vec<String> {
        ids(&self.get(token, &format!("/v1/charges{query}")).await)
    }

    /// Waits until `GET /v1/charges` lists `n` charges. On PostgreSQL a
    /// charge joins the stream once every transaction older than it has
    /// ended, which other tests sharing the server may delay a little.
    pub async fn settled(&self, n: usize) {
        for _ in 0..250 {
            let (_, page) = self
                .app
                .admin(Method::GET, "/v1/charges?limit=500", None)
                .await;
            if page["items"].as_array().map(Vec::len) == Some(n) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("never {n} charges in the stream");
    }

    /// GET `path` as CSV with `token`: the response's `X-Next-Cursor` and
    /// its lines.
    pub async fn get_csv(&self, token: &str, path: &str) -> (Option<String>, Vec<String>) {
        let resp = self
            .app
            .http
            .get(format!("{}{path}", self.app.base))
            .bearer_auth(token)
            .header("accept", "text/csv")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"].to_str().ok(),
            Some("text/csv; charset=utf-8")
        );
        let cursor = resp
            .headers()
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = resp.text().await.expect("body");
        assert!(text.ends_with("\r\n"), "RFC 4180 line ends: {text:?}");
        let lines = text
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        (cursor, lines)
    }
}

/// An exact decimal from a JSON string.
pub fn money(v: &Value) -> Money {
    Money::parse(
        v.as_str()
            .unwrap_or_else(|| panic!("not a decimal string: {v}")),
    )
    .expect("decimal")
}

/// The ids of a list answer, in order.
pub fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}
