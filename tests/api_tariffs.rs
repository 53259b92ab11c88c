//! `/v1/tariffs` over HTTP on both engines.

mod common;

use common::{assert_problem, Engine, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

both_engines!(
    tariff_crud,
    tariff_validation,
    tariff_in_use,
    tariff_pagination,
    bad_json_bodies
);

async fn tariff_crud(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let t = app
        .create(
            "/v1/tariffs",
            json!({"name": "std", "currency": "EUR", "setup_fee": "0.10", "price_per_minute": "0.0125",
                   "minimum_seconds": 60, "increment_seconds": 60}),
        )
        .await;
    assert_eq!(t["price_per_minute"], "0.0125");
    assert_eq!(t["setup_fee"], "0.1");
    assert_eq!(t["minimum_seconds"], 60);
    let id = t["id"].as_str().unwrap();

    let (s, got) = app
        .admin(Method::GET, &format!("/v1/tariffs/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, t);

    let (s, patched) = app
        .admin(
            Method::PATCH,
            &format!("/v1/tariffs/{id}"),
            Some(json!({"price_per_minute": "0.000001", "increment_seconds": 6})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["price_per_minute"], "0.000001");
    assert_eq!(patched["increment_seconds"], 6);
    assert_eq!(patched["name"], "std");

    let (s, _) = app
        .admin(Method::DELETE, &format!("/v1/tariffs/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_problem(
        app.admin(Method::GET, &format!("/v1/tariffs/{id}"), None)
            .await,
        StatusCode::NOT_FOUND,
        id,
    );
    assert_problem(
        app.admin(Method::DELETE, &format!("/v1/tariffs/{id}"), None)
            .await,
        StatusCode::NOT_FOUND,
        id,
    );
    assert_problem(
        app.admin(
            Method::PATCH,
            &format!("/v1/tariffs/{id}"),
            Some(json!({"name": "x"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        id,
    );
}

async fn tariff_validation(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let base = json!({"name": "t", "currency": "EUR", "price_per_minute": "1"});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("currency", json!("eur")), "currency"),
        (with("price_per_minute", json!(0.5)), "price_per_minute"),
        (
            with("price_per_minute", json!("1.1234567")),
            "more than 6 decimal places",
        ),
        (
            with("price_per_minute", json!("-1")),
            "price_per_minute: must not be negative",
        ),
        (with("price_per_minute", json!("1e3")), "price_per_minute"),
        (with("increment_seconds", json!(0)), "increment_seconds"),
        (with("minimum_seconds", json!("60")), "minimum_seconds"),
        (with("name", json!("")), "name"),
        (with("bogus", json!(1)), "unknown field `bogus`"),
        (
            json!({"name": "t", "currency": "EUR"}),
            "missing field `price_per_minute`",
        ),
    ];
    for (body, needle) in cases {
        assert_problem(
            app.admin(Method::POST, "/v1/tariffs", Some(body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            needle,
        );
    }
    app.create("/v1/tariffs", base.clone()).await;
    assert_problem(
        app.admin(Method::POST, "/v1/tariffs", Some(base)).await,
        StatusCode::CONFLICT,
        "name",
    );
    let (_, list) = app.admin(Method::GET, "/v1/tariffs", None).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "failed creates left nothing behind"
    );
}

async fn tariff_in_use(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let t = app
        .create(
            "/v1/tariffs",
            json!({"name": "t", "currency": "EUR", "price_per_minute": "1"}),
        )
        .await;
    let tid = t["id"].as_str().unwrap();
    let c = app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": "alice-pass", "tariff_id": tid}),
        )
        .await;
    assert_problem(
        app.admin(Method::DELETE, &format!("/v1/tariffs/{tid}"), None)
            .await,
        StatusCode::CONFLICT,
        "1 client",
    );
    let cid = c["id"].as_str().unwrap();
    let (s, _) = app
        .admin(
            Method::PATCH,
            &format!("/v1/clients/{cid}"),
            Some(json!({"tariff_id": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .admin(Method::DELETE, &format!("/v1/tariffs/{tid}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

async fn tariff_pagination(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    for i in 0..5 {
        let currency = if i % 2 == 0 { "EUR" } else { "USD" };
        app.create(
            "/v1/tariffs",
            json!({"name": format!("t{i}"), "currency": currency, "price_per_minute": "1"}),
        )
        .await;
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tariffs?limit=2&cursor={c}"),
            None => "/v1/tariffs?limit=2".to_string(),
        };
        let (s, page) = app.admin(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        names.extend(
            items
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(names, ["t0", "t1", "t2", "t3", "t4"]);
    let (_, usd) = app
        .admin(Method::GET, "/v1/tariffs?currency=USD", None)
        .await;
    let usd: Vec<_> = usd["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(usd, [json!("t1"), json!("t3")]);
    assert_problem(
        app.admin(Method::GET, "/v1/tariffs?limit=0", None).await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
    assert_problem(
        app.admin(Method::GET, "/v1/tariffs?limit=abc", None).await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
    assert_problem(
        app.admin(Method::GET, "/v1/tariffs?cursor=%%%", None).await,
        StatusCode::BAD_REQUEST,
        "cursor",
    );
    assert_problem(
        app.admin(Method::GET, "/v1/tariffs?colour=red", None).await,
        StatusCode::BAD_REQUEST,
        "colour",
    );
}

async fn bad_json_bodies(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let (s, body) = app
        .raw(
            Method::POST,
            "/v1/tariffs",
            "application/json",
            "{\"name\": ",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );
    let (s, body) = app
        .raw(
            Method::POST,
            "/v1/tariffs",
            "application/json",
            "{\"name\": 'x'}",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, body) = app
        .raw(Method::POST, "/v1/tariffs", "text/plain", "{}")
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (s, body) = app
        .raw(Method::POST, "/v1/tariffs", "application/json", "[1, 2]")
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_problem(
        app.admin(Method::GET, "/v1/nowhere", None).await,
        StatusCode::NOT_FOUND,
        "no such route",
    );
    let (s, _) = app.admin(Method::PUT, "/v1/tariffs", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}
