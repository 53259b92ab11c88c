//! `/v1/clients` over HTTP on both engines.

mod common;

use common::{assert_problem, Engine, TestApp};
use md5::Md5;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

both_engines!(
    client_crud,
    stored_digests,
    list_filters_and_pages,
    patch_fields,
    patch_username_needs_password,
    client_validation
);

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Asserts that no answer carries a password or digest.
#[track_caller]
fn assert_no_secrets(client: &Value, password: &str) {
    for key in ["password", "ha1_md5", "ha1_sha256"] {
        assert!(client.get(key).is_none(), "{key} in {client}");
    }
    assert!(!client.to_string().contains(password), "{client}");
}

/// GET `path` as admin, asserting 200; returns the body.
async fn get(app: &TestApp, path: &str) -> Value {
    let (s, body) = app.admin(Method::GET, path, None).await;
    assert_eq!(s, StatusCode::OK, "GET {path}: {body}");
    body
}

/// PATCH `path` as admin, asserting 200; returns the body.
async fn patch(app: &TestApp, path: &str, body: Value) -> Value {
    let (s, body) = app.admin(Method::PATCH, path, Some(body)).await;
    assert_eq!(s, StatusCode::OK, "PATCH {path}: {body}");
    body
}

async fn tariff(app: &TestApp, name: &str) -> String {
    let t = app
        .create(
            "/v1/tariffs",
            json!({"name": name, "currency": "EUR", "price_per_minute": "0.01"}),
        )
        .await;
    t["id"].as_str().unwrap().to_string()
}

fn usernames(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["username"].as_str().unwrap())
        .collect()
}

async fn client_crud(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let c = app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": "alice-pass"}),
        )
        .await;
    assert_no_secrets(&c, "alice-pass");
    assert_eq!(c["username"], "alice");
    assert_eq!(c["realm"], common::DOMAIN);
    assert_eq!(c["enabled"], true);
    assert_eq!(c["display_name"], Value::Null);
    assert_eq!(c["tariff_id"], Value::Null);
    assert_eq!(c["max_sessions"], Value::Null);
    assert_eq!(c["created_at"], c["updated_at"]);
    let id = c["id"].as_str().unwrap();
    let path = format!("/v1/clients/{id}");

    let got = get(&app, &path).await;
    assert_eq!(got, c);
    let list = get(&app, "/v1/clients").await;
    assert_eq!(list["items"], json!([c]));
    assert_no_secrets(&list, "alice-pass");

    let (s, body) = app.admin(Method::DELETE, &path, None).await;
    assert_eq!((s, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_problem(
        app.admin(Method::GET, &path, None).await,
        StatusCode::NOT_FOUND,
        id,
    );
    assert_problem(
        app.admin(Method::DELETE, &path, None).await,
        StatusCode::NOT_FOUND,
        id,
    );
    assert_problem(
        app.admin(Method::PATCH, &path, Some(json!({"enabled": false})))
            .await,
        StatusCode::NOT_FOUND,
        id,
    );
    // The username is free again.
    app.create(
        "/v1/clients",
        json!({"username": "alice", "password": "other-pass"}),
    )
    .await;
}

async fn stored_digests(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let c = app
        .create(
            "/v1/clients",
            json!({"username": "bob.smith", "password": "p@ss word:1"}),
        )
        .await;
    let id = c["id"].as_str().unwrap();
    let stored = app.store().await.get_client(id).await.unwrap();
    let a1 = format!("bob.smith:{}:p@ss word:1", common::DOMAIN);
    assert_eq!(stored.realm, common::DOMAIN);
    assert_eq!(stored.ha1_md5, md5_hex(&a1));
    assert_eq!(stored.ha1_sha256, sha256_hex(&a1));
    assert_eq!(stored.ha1_md5.len(), 32);
    assert_eq!(stored.ha1_sha256.len(), 64);

    // A password change recomputes both.
    let patched = patch(
        &app,
        &format!("/v1/clients/{id}"),
        json!({"password": "new-password"}),
    )
    .await;
    assert_no_secrets(&patched, "new-password");
    let stored = app.store().await.get_client(id).await.unwrap();
    let a1 = format!("bob.smith:{}:new-password", common::DOMAIN);
    assert_eq!(stored.ha1_md5, md5_hex(&a1));
    assert_eq!(stored.ha1_sha256, sha256_hex(&a1));
}

async fn list_filters_and_pages(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let gold = tariff(&app, "gold").await;
    for i in 0..5 {
        let mut body = json!({"username": format!("u{i}"), "password": "password-1",
                              "enabled": i % 2 == 0});
        if i >= 3 {
            body["tariff_id"] = json!(gold);
        }
        app.create("/v1/clients", body).await;
    }
    let app = &app;
    let list = |q: String| async move { get(app, &format!("/v1/clients{q}")).await };
    assert_eq!(usernames(&list("?username=u3".into()).await), ["u3"]);
    assert!(usernames(&list("?username=u9".into()).await).is_empty());
    assert_eq!(
        usernames(&list("?enabled=true".into()).await),
        ["u0", "u2", "u4"]
    );
    assert_eq!(
        usernames(&list("?enabled=false".into()).await),
        ["u1", "u3"]
    );
    let by_tariff = list(format!("?tariff_id={gold}")).await;
    assert_eq!(usernames(&by_tariff), ["u3", "u4"]);
    let both = list(format!("?tariff_id={gold}&enabled=false")).await;
    assert_eq!(usernames(&both), ["u3"]);

    let mut seen = Vec::new();
    let mut query = "?limit=2".to_string();
    loop {
        let page = list(query.clone()).await;
        assert!(page["items"].as_array().unwrap().len() <= 2);
        seen.extend(usernames(&page).into_iter().map(String::from));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["u0", "u1", "u2", "u3", "u4"]);
    let page = list("?limit=5".into()).await;
    assert_eq!(page["next_cursor"], Value::Null, "no page after the last");
    for (q, needle) in [
        ("?enabled=yes", "enabled"),
        ("?limit=501", "limit"),
        ("?password=x", "password"),
    ] {
        assert_problem(
            app.admin(Method::GET, &format!("/v1/clients{q}"), None)
                .await,
            StatusCode::BAD_REQUEST,
            needle,
        );
    }
}

async fn patch_fields(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let gold = tariff(&app, "gold").await;
    let c = app
        .create(
            "/v1/clients",
            json!({"username": "carol", "password": "carol-pass", "display_name": "Carol",
                   "max_sessions": 4, "tariff_id": gold}),
        )
        .await;
    assert_eq!(c["display_name"], "Carol");
    assert_eq!(c["max_sessions"], 4);
    assert_eq!(c["tariff_id"], gold.as_str());
    let path = format!("/v1/clients/{}", c["id"].as_str().unwrap());
    let before = app
        .store()
        .await
        .get_client(c["id"].as_str().unwrap())
        .await
        .unwrap();

    let p = patch(
        &app,
        &path,
        json!({"display_name": null, "enabled": false, "max_sessions": null}),
    )
    .await;
    assert_eq!(p["display_name"], Value::Null);
    assert_eq!(p["enabled"], false);
    assert_eq!(p["max_sessions"], Value::Null);
    assert_eq!(p["tariff_id"], gold.as_str(), "absent fields are kept");
    assert_eq!(p["username"], "carol");
    assert_eq!(p["created_at"], c["created_at"]);
    let got = get(&app, &path).await;
    assert_eq!(got, p, "the change is stored");
    let after = app
        .store()
        .await
        .get_client(c["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(after.ha1_md5, before.ha1_md5, "digests untouched");

    let p = patch(
        &app,
        &path,
        json!({"tariff_id": null, "max_sessions": 0, "display_name": "C."}),
    )
    .await;
    assert_eq!(
        (&p["tariff_id"], &p["max_sessions"], &p["display_name"]),
        (&Value::Null, &json!(0), &json!("C."))
    );
    let (s, p) = app.admin(Method::PATCH, &path, Some(json!({}))).await;
    assert_eq!((s, &p["display_name"]), (StatusCode::OK, &json!("C.")));
    for (body, needle) in [
        (json!({"enabled": null}), "enabled: may not be null"),
        (json!({"username": null}), "username: may not be null"),
        (json!({"max_sessions": -1}), "max_sessions"),
        (
            json!({"tariff_id": "nope"}),
            "tariff_id: no tariff with id 'nope'",
        ),
        (json!({"password": "short"}), "password"),
        (json!({"realm": "other"}), "unknown field `realm`"),
    ] {
        assert_problem(
            app.admin(Method::PATCH, &path, Some(body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            needle,
        );
    }
}

async fn patch_username_needs_password(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let c = app
        .create(
            "/v1/clients",
            json!({"username": "dave", "password": "dave-pass"}),
        )
        .await;
    app.create(
        "/v1/clients",
        json!({"username": "erin", "password": "erin-pass"}),
    )
    .await;
    let id = c["id"].as_str().unwrap();
    let path = format!("/v1/clients/{id}");
    assert_problem(
        app.admin(Method::PATCH, &path, Some(json!({"username": "david"})))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password",
    );
    let got = get(&app, &path).await;
    assert_eq!(got["username"], "dave", "unchanged");
    // The same username is no change.
    let _ = patch(&app, &path, json!({"username": "dave"})).await;
    let p = patch(
        &app,
        &path,
        json!({"username": "david", "password": "david-pass"}),
    )
    .await;
    assert_eq!(p["username"], "david");
    assert_no_secrets(&p, "david-pass");
    let stored = app.store().await.get_client(id).await.unwrap();
    let a1 = format!("david:{}:david-pass", common::DOMAIN);
    assert_eq!(stored.ha1_md5, md5_hex(&a1));
    assert_eq!(stored.ha1_sha256, sha256_hex(&a1));
    assert_problem(
        app.admin(
            Method::PATCH,
            &path,
            Some(json!({"username": "erin", "password": "erin-pass2"})),
        )
        .await,
        StatusCode::CONFLICT,
        "username",
    );
}

async fn client_validation(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let base = json!({"username": "frank", "password": "frank-pass"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("username", json!("fr ank")), "username"),
        (with("username", json!("frank@example")), "username"),
        (with("username", json!("fr:ank")), "username"),
        (with("username", json!("")), "username"),
        (with("username", json!("a".repeat(65))), "username"),
        (
            with("password", json!("short12")),
            "password: must be at least 8",
        ),
        (with("password", json!("pass\r\nword")), "password"),
        (
            with("tariff_id", json!("nope")),
            "tariff_id: no tariff with id 'nope'",
        ),
        (with("display_name", json!("")), "display_name"),
        (with("max_sessions", json!(-1)), "max_sessions"),
        (with("enabled", json!("yes")), "enabled: invalid type"),
        (
            with("max_sessions", json!("4")),
            "max_sessions: invalid type",
        ),
        (with("username", json!(42)), "username: invalid type"),
        (with("ha1_md5", json!("00")), "unknown field `ha1_md5`"),
        (json!({"username": "frank"}), "missing field `password`"),
    ];
    for (body, needle) in cases {
        assert_problem(
            app.admin(Method::POST, "/v1/clients", Some(body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            needle,
        );
    }
    // Every character RFC 3261 allows unescaped in a user part.
    app.create(
        "/v1/clients",
        json!({"username": "+49-30_1.!~*'()&=$,;?/", "password": "12345678"}),
    )
    .await;
    app.create("/v1/clients", base.clone()).await;
    assert_problem(
        app.admin(Method::POST, "/v1/clients", Some(base)).await,
        StatusCode::CONFLICT,
        "username: already taken",
    );
    let list = get(&app, "/v1/clients").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "failed creates left nothing"
    );
}
