//! `/v1/tokens` over HTTP on both engines.

mod common;

use common::{assert_problem, Engine, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    mint_each_role,
    mint_validation,
    list_hides_text_and_revoked,
    list_filters,
    revoke,
    app_server_deleted
);

async fn app_server(app: &TestApp, name: &str) -> String {
    let a = app
        .create(
            "/v1/app-servers",
            json!({"name": name, "uri": "sip:127.0.0.1:5080"}),
        )
        .await;
    a["id"].as_str().unwrap().to_string()
}

/// Ids of the items of a list answer.
fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

/// Milliseconds since the epoch of an RFC 3339 instant.
fn millis(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a date-time"))
        .expect("RFC 3339")
        .timestamp_millis()
}

/// Ids listed by `GET /v1/tokens{q}`.
async fn list_ids(app: &TestApp, q: &str) -> Vec<String> {
    let (s, list) = app
        .admin(Method::GET, &format!("/v1/tokens{q}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{q}: {list}");
    ids(&list)
}

async fn mint_each_role(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let as_id = app_server(&app, "as1").await;
    let billing = app
        .create(
            "/v1/tokens",
            json!({"name": "billing-export", "role": "billing"}),
        )
        .await;
    assert_eq!(billing["name"], "billing-export");
    assert_eq!(billing["role"], "billing");
    assert_eq!(billing["token_type"], "Bearer");
    assert_eq!(billing["app_server_id"], Value::Null);
    assert_eq!(billing["expires_at"], Value::Null, "no ttl: until revoked");
    assert_eq!(billing["revoked_at"], Value::Null);
    assert!(!billing["created_by"].as_str().unwrap().is_empty());
    let text = billing["access_token"].as_str().unwrap();
    assert_eq!(text.split('.').count(), 3, "a JWT: {text}");
    let (s, _) = app.call(Method::GET, "/v1/tariffs", Some(text), None).await;
    assert_eq!(s, StatusCode::OK, "the billing token works");

    let admin = app
        .create(
            "/v1/tokens",
            json!({"name": "ops", "role": "admin", "ttl_seconds": 86400}),
        )
        .await;
    assert_eq!(admin["role"], "admin");
    let lifetime = millis(&admin["expires_at"]) - millis(&admin["created_at"]);
    assert_eq!(lifetime, 86_400_000, "{admin}");
    let (s, _) = app
        .call(
            Method::GET,
            "/v1/clients",
            Some(admin["access_token"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "the admin token works");

    let as_token = app
        .create(
            "/v1/tokens",
            json!({"name": "as1", "role": "app_server", "app_server_id": as_id}),
        )
        .await;
    assert_eq!(as_token["role"], "app_server");
    assert_eq!(as_token["app_server_id"], as_id.as_str());
    assert_ne!(as_token["access_token"], billing["access_token"]);
    assert_ne!(as_token["id"], billing["id"]);
}

async fn mint_validation(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let as_id = app_server(&app, "as1").await;
    let cases = [
        (
            json!({"name": "a", "role": "app_server"}),
            "app_server_id: is required",
        ),
        (
            json!({"name": "a", "role": "app_server", "app_server_id": "nope"}),
            "app_server_id: no app server with id 'nope'",
        ),
        (
            json!({"name": "a", "role": "billing", "app_server_id": as_id}),
            "app_server_id: is only allowed for role app_server",
        ),
        (
            json!({"name": "a", "role": "admin", "app_server_id": as_id}),
            "app_server_id",
        ),
        (
            json!({"name": "a", "role": "billing", "ttl_seconds": 59}),
            "ttl_seconds",
        ),
        (
            json!({"name": "a", "role": "billing", "ttl_seconds": 10 * 365 * 86_400 + 1}),
            "ttl_seconds",
        ),
        (
            json!({"name": "a", "role": "billing", "ttl_seconds": 0}),
            "ttl_seconds",
        ),
        (
            json!({"name": "a", "role": "billing", "ttl_seconds": -60}),
            "ttl_seconds",
        ),
        (json!({"name": "a", "role": "root"}), "role"),
        (json!({"name": "", "role": "billing"}), "name"),
        (json!({"role": "billing"}), "missing field `name`"),
        (
            json!({"name": "a", "role": "billing", "scope": "all"}),
            "unknown field `scope`",
        ),
    ];
    for (body, needle) in cases {
        assert_problem(
            app.admin(Method::POST, "/v1/tokens", Some(body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            needle,
        );
    }
    // The bounds themselves are allowed.
    for ttl in [60, 10 * 365 * 86_400] {
        app.create(
            "/v1/tokens",
            json!({"name": "b", "role": "billing", "ttl_seconds": ttl}),
        )
        .await;
    }
    let (_, list) = app.admin(Method::GET, "/v1/tokens", None).await;
    assert_eq!(ids(&list).len(), 2, "failed mints left nothing behind");
}

async fn list_hides_text_and_revoked(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let a = app
        .create("/v1/tokens", json!({"name": "a", "role": "billing"}))
        .await;
    let b = app
        .create("/v1/tokens", json!({"name": "b", "role": "admin"}))
        .await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let (s, list) = app.admin(Method::GET, "/v1/tokens", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&list), [a_id, b_id]);
    for item in list["items"].as_array().unwrap() {
        assert!(item.get("access_token").is_none(), "token text: {item}");
        assert!(item.get("token_type").is_none(), "{item}");
    }
    let listed_a = &list["items"][0];
    assert_eq!(listed_a["name"], "a");
    assert_eq!(listed_a["created_at"], a["created_at"]);
    let text = a["access_token"].as_str().unwrap();
    assert!(!list.to_string().contains(text), "the text leaks: {list}");

    let (s, _) = app
        .admin(Method::DELETE, &format!("/v1/tokens/{a_id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list) = app.admin(Method::GET, "/v1/tokens", None).await;
    assert_eq!(ids(&list), [b_id], "revoked hidden by default");
    let (_, list) = app
        .admin(Method::GET, "/v1/tokens?include_revoked=false", None)
        .await;
    assert_eq!(ids(&list), [b_id]);
    let (_, list) = app
        .admin(Method::GET, "/v1/tokens?include_revoked=true", None)
        .await;
    assert_eq!(ids(&list), [a_id, b_id]);
    assert!(millis(&list["items"][0]["revoked_at"]) >= millis(&a["created_at"]));
    assert_eq!(list["items"][1]["revoked_at"], Value::Null);
    assert_problem(
        app.admin(Method::GET, "/v1/tokens?include_revoked=maybe", None)
            .await,
        StatusCode::BAD_REQUEST,
        "include_revoked",
    );
}

async fn list_filters(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let as1 = app_server(&app, "as1").await;
    let as2 = app_server(&app, "as2").await;
    let mut minted = Vec::new();
    for body in [
        json!({"name": "t0", "role": "billing"}),
        json!({"name": "t1", "role": "app_server", "app_server_id": as1}),
        json!({"name": "t2", "role": "app_server", "app_server_id": as2}),
        json!({"name": "t3", "role": "admin"}),
        json!({"name": "t4", "role": "app_server", "app_server_id": as1}),
    ] {
        let t = app.create("/v1/tokens", body).await;
        minted.push(t["id"].as_str().unwrap().to_string());
    }
    let app = &app;
    let get = |q: String| async move { list_ids(app, &q).await };
    assert_eq!(get("?role=billing".into()).await, [minted[0].as_str()]);
    assert_eq!(
        get("?role=app_server".into()).await,
        [minted[1].as_str(), minted[2].as_str(), minted[4].as_str()]
    );
    assert_eq!(
        get(format!("?app_server_id={as1}")).await,
        [minted[1].as_str(), minted[4].as_str()]
    );
    assert_eq!(
        get(format!("?role=app_server&app_server_id={as2}")).await,
        [minted[2].as_str()]
    );
    assert!(get(format!("?role=billing&app_server_id={as1}"))
        .await
        .is_empty());
    assert_eq!(
        get("?limit=2".into()).await,
        [minted[0].as_str(), minted[1].as_str()]
    );
    assert_problem(
        app.admin(Method::GET, "/v1/tokens?role=root", None).await,
        StatusCode::BAD_REQUEST,
        "role",
    );
}

async fn revoke(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    assert_problem(
        app.admin(Method::DELETE, "/v1/tokens/no-such-token", None)
            .await,
        StatusCode::NOT_FOUND,
        "no-such-token",
    );
    let t = app
        .create("/v1/tokens", json!({"name": "a", "role": "billing"}))
        .await;
    let id = t["id"].as_str().unwrap();
    let path = format!("/v1/tokens/{id}");
    let (s, body) = app.admin(Method::DELETE, &path, None).await;
    assert_eq!((s, body), (StatusCode::NO_CONTENT, Value::Null));
    let (_, list) = app
        .admin(Method::GET, "/v1/tokens?include_revoked=true", None)
        .await;
    let first = list["items"][0]["revoked_at"].clone();
    assert_ne!(first, Value::Null);
    let (s, _) = app.admin(Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "revoking twice is fine");
    let (_, list) = app
        .admin(Method::GET, "/v1/tokens?include_revoked=true", None)
        .await;
    assert_eq!(
        list["items"][0]["revoked_at"], first,
        "first revocation kept"
    );
    assert_problem(
        app.call(
            Method::GET,
            "/v1/tariffs",
            Some(t["access_token"].as_str().unwrap()),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "revoked",
    );
}

async fn app_server_deleted(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let as_id = app_server(&app, "as1").await;
    let t = app
        .create(
            "/v1/tokens",
            json!({"name": "as1", "role": "app_server", "app_server_id": as_id}),
        )
        .await;
    let text = t["access_token"].as_str().unwrap();
    assert_problem(
        app.call(Method::GET, "/v1/clients", Some(text), None).await,
        StatusCode::FORBIDDEN,
        "app_server",
    );
    let (s, _) = app
        .admin(Method::DELETE, &format!("/v1/app-servers/{as_id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Its tokens went with it.
    assert!(list_ids(&app, "?include_revoked=true").await.is_empty());
    assert_problem(
        app.call(Method::GET, "/v1/clients", Some(text), None).await,
        StatusCode::UNAUTHORIZED,
        "revoked",
    );
}
