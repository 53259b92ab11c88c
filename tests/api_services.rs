//! `/v1/services` over HTTP on both engines.

mod common;

use common::{assert_problem, Engine, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    service_crud,
    strategies,
    strategy_of_wrong_type,
    pool_validation,
    pool_order_and_replace,
    tariff_reference,
    list_filters,
    targeted_by_a_rule
);

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

/// DELETE `path` as admin; returns the status.
async fn delete(app: &TestApp, path: &str) -> StatusCode {
    app.admin(Method::DELETE, path, None).await.0
}

/// Asserts that `POST /v1/services` with `body` is 422 naming `needle`.
async fn refused(app: &TestApp, body: Value, needle: &str) {
    let got = app.admin(Method::POST, "/v1/services", Some(body)).await;
    assert_problem(got, StatusCode::UNPROCESSABLE_ENTITY, needle);
}

/// Creates `n` app servers; returns their ids in creation order.
async fn app_servers(app: &TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let a = app
            .create(
                "/v1/app-servers",
                json!({"name": format!("as{i}"), "uri": format!("sip:10.0.0.{i}")}),
            )
            .await;
        ids.push(a["id"].as_str().unwrap().to_string());
    }
    ids
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

fn names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

async fn service_crud(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let ids = app_servers(&app, 2).await;
    let s = app
        .create(
            "/v1/services",
            json!({"name": "voicemail", "app_server_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(s["name"], "voicemail");
    assert_eq!(s["strategy"], "failover", "the default");
    assert_eq!(s["app_server_ids"], json!([ids[0]]));
    assert_eq!(s["tariff_id"], Value::Null);
    assert_eq!(s["ring_timeout_seconds"], Value::Null);
    let id = s["id"].as_str().unwrap();
    let path = format!("/v1/services/{id}");
    assert_eq!(get(&app, &path).await, s);

    let p = patch(
        &app,
        &path,
        json!({"name": "vm", "strategy": "round_robin", "ring_timeout_seconds": 30}),
    )
    .await;
    assert_eq!(
        (&p["name"], &p["strategy"], &p["ring_timeout_seconds"]),
        (&json!("vm"), &json!("round_robin"), &json!(30))
    );
    assert_eq!(p["app_server_ids"], json!([ids[0]]), "pool kept");
    assert_eq!(p["created_at"], s["created_at"]);
    let got = get(&app, &path).await;
    assert_eq!(got, p);
    let p = patch(&app, &path, json!({"ring_timeout_seconds": null})).await;
    assert_eq!(p["ring_timeout_seconds"], Value::Null);

    app.create(
        "/v1/services",
        json!({"name": "other", "app_server_ids": []}),
    )
    .await;
    assert_problem(
        app.admin(Method::PATCH, &path, Some(json!({"name": "other"})))
            .await,
        StatusCode::CONFLICT,
        "name: already taken",
    );
    assert_problem(
        app.admin(
            Method::POST,
            "/v1/services",
            Some(json!({"name": "vm", "app_server_ids": []})),
        )
        .await,
        StatusCode::CONFLICT,
        "name: already taken",
    );

    assert_eq!(delete(&app, &path).await, StatusCode::NO_CONTENT);
    for method in [Method::GET, Method::DELETE] {
        assert_problem(
            app.admin(method, &path, None).await,
            StatusCode::NOT_FOUND,
            id,
        );
    }
    // Its pool went with it: the app server may be deleted now.
    let as0 = format!("/v1/app-servers/{}", ids[0]);
    assert_eq!(delete(&app, &as0).await, StatusCode::NO_CONTENT);
}

async fn strategies(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let ids = app_servers(&app, 1).await;
    for strategy in ["failover", "round_robin", "weighted", "parallel"] {
        let s = app
            .create(
                "/v1/services",
                json!({"name": strategy, "app_server_ids": ids, "strategy": strategy}),
            )
            .await;
        assert_eq!(s["strategy"], strategy);
        let got = get(&app, &format!("/v1/services/{}", s["id"].as_str().unwrap())).await;
        assert_eq!(got["strategy"], strategy, "read back");
    }
    for bad in ["random", "RoundRobin", "Failover", ""] {
        let body = json!({"name": "x", "app_server_ids": [], "strategy": bad});
        refused(&app, body, "strategy").await;
    }
    assert_problem(
        app.admin(
            Method::PATCH,
            &format!("/v1/services/{}", "unknown-id"),
            Some(json!({"strategy": "parallel"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "unknown-id",
    );
}

/// A strategy that is not a string is a body of the wrong shape: 422
/// naming the field, as for every other mistyped field (not 400 "not valid
/// JSON", which the body is).
async fn strategy_of_wrong_type(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    for bad in [json!(1), json!(true), json!(["failover"]), json!(null)] {
        let body = json!({"name": "x", "app_server_ids": [], "strategy": bad});
        refused(&app, body, "strategy").await;
    }
}

async fn pool_validation(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let ids = app_servers(&app, 2).await;
    let cases = [
        (
            json!({"name": "s", "app_server_ids": [ids[0], "ghost"]}),
            "app_server_ids: no app server with id 'ghost'",
        ),
        (
            json!({"name": "s", "app_server_ids": [ids[0], ids[1], ids[0]]}),
            &*format!("app_server_ids: '{}' is listed twice", ids[0]),
        ),
        (json!({"name": "s"}), "missing field `app_server_ids`"),
        (
            json!({"name": "s", "app_server_ids": ids[0]}),
            "app_server_ids: invalid type",
        ),
        (
            json!({"name": "s", "app_server_ids": [], "ring_timeout_seconds": 0}),
            "ring_timeout_seconds",
        ),
        (
            json!({"name": "s", "app_server_ids": [], "ring_timeout_seconds": 3601}),
            "ring_timeout_seconds",
        ),
        (json!({"name": "", "app_server_ids": []}), "name"),
        (
            json!({"name": "s", "app_server_ids": [], "pool": []}),
            "unknown field `pool`",
        ),
    ];
    for (body, needle) in cases {
        refused(&app, body, needle).await;
    }
    let list = get(&app, "/v1/services").await;
    assert_eq!(
        names(&list),
        Vec::<&str>::new(),
        "failed creates left nothing"
    );
}

async fn pool_order_and_replace(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let ids = app_servers(&app, 4).await;
    let order = json!([ids[2], ids[0], ids[3]]);
    let s = app
        .create(
            "/v1/services",
            json!({"name": "s", "app_server_ids": order, "strategy": "weighted"}),
        )
        .await;
    assert_eq!(s["app_server_ids"], order, "order as given, not by id");
    let path = format!("/v1/services/{}", s["id"].as_str().unwrap());
    let got = get(&app, &path).await;
    assert_eq!(got["app_server_ids"], order);
    let list = get(&app, "/v1/services").await;
    assert_eq!(list["items"][0]["app_server_ids"], order);

    let replaced = json!([ids[1], ids[2]]);
    let p = patch(&app, &path, json!({"app_server_ids": replaced})).await;
    assert_eq!(p["app_server_ids"], replaced, "the pool is replaced whole");
    assert_eq!(p["strategy"], "weighted");
    let got = get(&app, &path).await;
    assert_eq!(got["app_server_ids"], replaced);
    // A failed PATCH leaves the pool alone.
    assert_problem(
        app.admin(
            Method::PATCH,
            &path,
            Some(json!({"app_server_ids": [ids[0], "ghost"]})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ghost",
    );
    assert_problem(
        app.admin(Method::PATCH, &path, Some(json!({"app_server_ids": null})))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "app_server_ids: may not be null",
    );
    let got = get(&app, &path).await;
    assert_eq!(got["app_server_ids"], replaced);
    let p = patch(&app, &path, json!({"app_server_ids": []})).await;
    assert_eq!(p["app_server_ids"], json!([]));
}

async fn tariff_reference(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let t = tariff(&app, "std").await;
    assert_problem(
        app.admin(
            Method::POST,
            "/v1/services",
            Some(json!({"name": "s", "app_server_ids": [], "tariff_id": "nope"})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "tariff_id: no tariff with id 'nope'",
    );
    let s = app
        .create(
            "/v1/services",
            json!({"name": "s", "app_server_ids": [], "tariff_id": t}),
        )
        .await;
    assert_eq!(s["tariff_id"], t.as_str());
    let path = format!("/v1/services/{}", s["id"].as_str().unwrap());
    assert_problem(
        app.admin(Method::DELETE, &format!("/v1/tariffs/{t}"), None)
            .await,
        StatusCode::CONFLICT,
        "0 client(s) and 1 service(s)",
    );
    assert_problem(
        app.admin(Method::PATCH, &path, Some(json!({"tariff_id": "nope"})))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "tariff_id",
    );
    let p = patch(&app, &path, json!({"tariff_id": null})).await;
    assert_eq!(p["tariff_id"], Value::Null);
    let got = get(&app, &path).await;
    assert_eq!(got["tariff_id"], Value::Null);
    let tariff_path = format!("/v1/tariffs/{t}");
    assert_eq!(delete(&app, &tariff_path).await, StatusCode::NO_CONTENT);
}

async fn list_filters(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let ids = app_servers(&app, 3).await;
    let t = tariff(&app, "std").await;
    for (name, strategy, pool) in [
        ("s0", "failover", vec![&ids[0], &ids[1]]),
        ("s1", "parallel", vec![&ids[1]]),
        ("s2", "failover", vec![&ids[2]]),
        ("s3", "weighted", vec![]),
    ] {
        let mut body = json!({"name": name, "strategy": strategy, "app_server_ids": pool});
        if name == "s2" {
            body["tariff_id"] = json!(t);
        }
        app.create("/v1/services", body).await;
    }
    let app = &app;
    let get = |q: String| async move { get(app, &format!("/v1/services{q}")).await };
    assert_eq!(names(&get("?strategy=failover".into()).await), ["s0", "s2"]);
    assert_eq!(names(&get("?strategy=parallel".into()).await), ["s1"]);
    assert_eq!(
        names(&get("?strategy=round_robin".into()).await),
        Vec::<&str>::new()
    );
    let by_as1 = get(format!("?app_server_id={}", ids[1])).await;
    assert_eq!(names(&by_as1), ["s0", "s1"]);
    assert_eq!(
        by_as1["items"][0]["app_server_ids"],
        json!([ids[0], ids[1]]),
        "the whole pool, not only the filtered member"
    );
    assert_eq!(
        names(&get(format!("?app_server_id={}", ids[2])).await),
        ["s2"]
    );
    assert_eq!(
        names(&get(format!("?strategy=parallel&app_server_id={}", ids[0])).await),
        Vec::<&str>::new()
    );
    assert_eq!(names(&get(format!("?tariff_id={t}")).await), ["s2"]);
    assert_eq!(names(&get("?name=s3".into()).await), ["s3"]);
    // Pools are right on every page.
    let page = get("?limit=1".into()).await;
    assert_eq!(page["items"][0]["app_server_ids"], json!([ids[0], ids[1]]));
    let cursor = page["next_cursor"].as_str().unwrap();
    let page = get(format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(names(&page), ["s1", "s2"]);
    assert_eq!(page["items"][0]["app_server_ids"], json!([ids[1]]));
    assert_eq!(page["items"][1]["app_server_ids"], json!([ids[2]]));
    assert_problem(
        app.admin(Method::GET, "/v1/services?strategy=random", None)
            .await,
        StatusCode::BAD_REQUEST,
        "strategy",
    );
}

async fn targeted_by_a_rule(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let s = app
        .create("/v1/services", json!({"name": "s", "app_server_ids": []}))
        .await;
    let sid = s["id"].as_str().unwrap();
    let r = app.create("/v1/rules", json!({"service_id": sid})).await;
    let path = format!("/v1/services/{sid}");
    assert_problem(
        app.admin(Method::DELETE, &path, None).await,
        StatusCode::CONFLICT,
        "1 rule",
    );
    get(&app, &path).await;
    let rule_path = format!("/v1/rules/{}", r["id"].as_str().unwrap());
    assert_eq!(delete(&app, &rule_path).await, StatusCode::NO_CONTENT);
    assert_eq!(delete(&app, &path).await, StatusCode::NO_CONTENT);
}
