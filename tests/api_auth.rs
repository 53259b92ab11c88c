//! Authentication and roles over HTTP on both engines: log-in, bearer
//! token checks (missing, malformed, forged, expired, revoked), role
//! checks, and tokens surviving a restart.

mod common;

use common::{assert_problem, Engine, TestApp, TestDb};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    login,
    missing_and_malformed_header,
    forged_and_expired_tokens,
    revoked_scoped_token,
    roles,
    survives_restart,
    generated_secret_survives_restart
);

/// GET `path` with an exact `Authorization` header (or none); returns the
/// status, the `WWW-Authenticate` header and the body.
async fn get_with(app: &TestApp, path: &str, auth: Option<&str>) -> (StatusCode, String, Value) {
    let mut req = app.http.get(format!("{}{}", app.base, path));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let www = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, www, body)
}

/// Now, in seconds since the epoch.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An admin session token signed with `secret`, expiring at `exp`.
fn sign(secret: &str, exp: i64) -> String {
    let claims = json!({
        "iss": "switchboard", "sub": "someone", "role": "admin", "kind": "session",
        "jti": "0193-test", "iat": now() - 10, "exp": exp,
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Mints a scoped token as admin; returns (id, access_token).
async fn mint(app: &TestApp, body: Value) -> (String, String) {
    let t = app.create("/v1/tokens", body).await;
    (
        t["id"].as_str().unwrap().to_string(),
        t["access_token"].as_str().unwrap().to_string(),
    )
}

async fn login(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (s, body) = app
        .call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"username": common::ADMIN_USER, "password": common::ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let (s, _) = app
        .call(Method::GET, "/v1/clients", Some(token), None)
        .await;
    assert_eq!(s, StatusCode::OK);

    let wrong = app
        .call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"username": common::ADMIN_USER, "password": "not-the-password"})),
        )
        .await;
    let unknown = app
        .call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"username": "nobody", "password": common::ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(wrong.1["detail"], unknown.1["detail"], "indistinguishable");
    assert_problem(
        wrong,
        StatusCode::UNAUTHORIZED,
        "invalid username or password",
    );
    assert_problem(
        unknown,
        StatusCode::UNAUTHORIZED,
        "invalid username or password",
    );
    assert_problem(
        app.call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"username": "admin"})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing field `password`",
    );
}

async fn missing_and_malformed_header(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (s, www, body) = get_with(&app, "/v1/clients", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(www, "Bearer");
    assert!(
        body["detail"].as_str().unwrap().contains("missing"),
        "{body}"
    );
    assert_eq!(body["status"], 401);

    let basic = format!("Basic {}", "YWRtaW46YWRtaW4=");
    let bare = app.admin_token.clone();
    for header in [basic.as_str(), "Bearer", "Bearer    ", bare.as_str()] {
        let (s, www, body) = get_with(&app, "/v1/clients", Some(header)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{header:?}: {body}");
        assert_eq!(www, "Bearer");
        assert!(
            body["detail"].as_str().unwrap().contains("Bearer <token>"),
            "{header:?}: {body}"
        );
    }
    let (s, _, body) = get_with(&app, "/v1/clients", Some("Bearer not.a.jwt")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["detail"], "the token is not valid");
    // The scheme is case-insensitive (RFC 7235).
    let (s, _, body) = get_with(
        &app,
        "/v1/clients",
        Some(&format!("bearer {}", app.admin_token)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

async fn forged_and_expired_tokens(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let forged = sign("another-secret-another-secret-000000", now() + 600);
    assert_problem(
        app.call(Method::GET, "/v1/clients", Some(&forged), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "signature",
    );
    let expired = sign(common::JWT_SECRET, now() - 60);
    assert_problem(
        app.call(Method::GET, "/v1/clients", Some(&expired), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "expired",
    );
    // The same claims, still valid, are accepted: the failures above are
    // about the signature and the expiry only.
    let good = sign(common::JWT_SECRET, now() + 600);
    let (s, body) = app
        .call(Method::GET, "/v1/clients", Some(&good), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // A token of another issuer is refused.
    let claims = json!({"iss": "elsewhere", "sub": "x", "role": "admin", "kind": "session",
                        "jti": "j", "iat": now(), "exp": now() + 600});
    let other = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(common::JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_problem(
        app.call(Method::GET, "/v1/clients", Some(&other), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "not valid",
    );
}

async fn revoked_scoped_token(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (id, token) = mint(&app, json!({"name": "ops", "role": "admin"})).await;
    let (s, body) = app
        .call(Method::GET, "/v1/tokens", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["items"][0]["id"], id.as_str());
    let (s, _) = app
        .admin(Method::DELETE, &format!("/v1/tokens/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_problem(
        app.call(Method::GET, "/v1/tokens", Some(&token), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "revoked",
    );
    // A scoped token whose row does not exist counts as revoked too.
    let claims = json!({"iss": "switchboard", "sub": "ghost", "role": "admin", "kind": "scoped",
                        "jti": "ghost", "iat": now(), "exp": now() + 600});
    let ghost = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(common::JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_problem(
        app.call(Method::GET, "/v1/tokens", Some(&ghost), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "revoked",
    );
}

async fn roles(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let t = app
        .create(
            "/v1/tariffs",
            json!({"name": "std", "currency": "EUR", "price_per_minute": "0.01"}),
        )
        .await;
    let (_, billing) = mint(&app, json!({"name": "billing", "role": "billing"})).await;
    let (s, list) = app
        .call(Method::GET, "/v1/tariffs", Some(&billing), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["items"][0]["id"], t["id"]);
    let (s, one) = app
        .call(
            Method::GET,
            &format!("/v1/tariffs/{}", t["id"].as_str().unwrap()),
            Some(&billing),
            None,
        )
        .await;
    assert_eq!((s, &one["name"]), (StatusCode::OK, &json!("std")));
    let tariff = json!({"name": "x", "currency": "EUR", "price_per_minute": "1"});
    for (method, path, body) in [
        (Method::POST, "/v1/tariffs", Some(tariff)),
        (Method::GET, "/v1/clients", None),
        (
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "n", "role": "admin"})),
        ),
    ] {
        assert_problem(
            app.call(method, path, Some(&billing), body).await,
            StatusCode::FORBIDDEN,
            "the token has role billing",
        );
    }
    let (_, list) = app.admin(Method::GET, "/v1/tariffs", None).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "nothing created"
    );
    let (_, tokens) = app.admin(Method::GET, "/v1/tokens", None).await;
    assert_eq!(
        tokens["items"].as_array().unwrap().len(),
        1,
        "nothing minted"
    );

    let as_ = app
        .create(
            "/v1/app-servers",
            json!({"name": "as1", "uri": "sip:127.0.0.1:5080"}),
        )
        .await;
    let (_, app_server) = mint(
        &app,
        json!({"name": "as1", "role": "app_server", "app_server_id": as_["id"]}),
    )
    .await;
    for path in ["/v1/tariffs", "/v1/clients"] {
        assert_problem(
            app.call(Method::GET, path, Some(&app_server), None).await,
            StatusCode::FORBIDDEN,
            "the token has role app_server",
        );
    }
}

async fn survives_restart(engine: Engine) {
    let Some(mut app) = TestApp::spawn(engine).await else {
        return;
    };
    let c = app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": "alice-pass"}),
        )
        .await;
    let (_, scoped) = mint(&app, json!({"name": "ops", "role": "admin"})).await;
    app.restart().await;
    let path = format!("/v1/clients/{}", c["id"].as_str().unwrap());
    let (s, got) = app.call(Method::GET, &path, Some(&scoped), None).await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got, c);
    let (s, got) = app.admin(Method::GET, &path, None).await;
    assert_eq!((s, &got["username"]), (StatusCode::OK, &json!("alice")));
    let fresh = app.login(common::ADMIN_USER, common::ADMIN_PASSWORD).await;
    let (s, list) = app
        .call(Method::GET, "/v1/clients", Some(&fresh), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "the client survived"
    );
}

async fn generated_secret_survives_restart(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let mut settings = common::test_settings(&db.url);
    settings.jwt_secret = None;
    let mut app = TestApp::spawn_with(db, settings).await;
    let session = app.admin_token.clone();
    let (_, scoped) = mint(&app, json!({"name": "ops", "role": "billing"})).await;
    // The configured test secret is not the one in use.
    let foreign = sign(common::JWT_SECRET, now() + 600);
    assert_problem(
        app.call(Method::GET, "/v1/clients", Some(&foreign), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "signature",
    );
    app.restart().await;
    let (s, body) = app
        .call(Method::GET, "/v1/clients", Some(&session), None)
        .await;
    assert_eq!(s, StatusCode::OK, "session token after restart: {body}");
    let (s, body) = app
        .call(Method::GET, "/v1/tariffs", Some(&scoped), None)
        .await;
    assert_eq!(s, StatusCode::OK, "scoped token after restart: {body}");
}
