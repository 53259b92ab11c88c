//! `/v1/app-servers` over HTTP on both engines.

mod common;

use common::{assert_problem, Engine, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    app_server_crud,
    uri_validation,
    field_validation,
    health_is_read_only,
    list_filters,
    in_a_pool
);

fn names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect()
}

async fn app_server_crud(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let a = app
        .create(
            "/v1/app-servers",
            json!({"name": "vm-1", "uri": "sip:127.0.0.1:5080;transport=udp"}),
        )
        .await;
    assert_eq!(a["name"], "vm-1");
    assert_eq!(a["uri"], "sip:127.0.0.1:5080;transport=udp");
    assert_eq!(a["priority"], 100);
    assert_eq!(a["weight"], 1);
    assert_eq!(a["enabled"], true);
    assert_eq!(a["health"], "unknown");
    assert_eq!(a["health_changed_at"], Value::Null);
    let id = a["id"].as_str().unwrap();
    let path = format!("/v1/app-servers/{id}");
    let (s, got) = app.admin(Method::GET, &path, None).await;
    assert_eq!((s, &got), (StatusCode::OK, &a));

    let b = app
        .create(
            "/v1/app-servers",
            json!({"name": "vm-2", "uri": "sips:as.example.com", "priority": 0,
                   "weight": 65535, "enabled": false}),
        )
        .await;
    assert_eq!(
        (&b["priority"], &b["weight"], &b["enabled"]),
        (&json!(0), &json!(65535), &json!(false))
    );

    let (s, p) = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"uri": "sip:10.0.0.5:5070", "priority": 5, "weight": 3, "enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["uri"], "sip:10.0.0.5:5070");
    assert_eq!(
        (&p["priority"], &p["weight"], &p["enabled"]),
        (&json!(5), &json!(3), &json!(false))
    );
    assert_eq!(p["name"], "vm-1", "absent fields are kept");
    assert_eq!(p["health"], "unknown");
    assert_eq!(p["created_at"], a["created_at"]);
    let (_, got) = app.admin(Method::GET, &path, None).await;
    assert_eq!(got, p);
    assert_problem(
        app.admin(Method::PATCH, &path, Some(json!({"name": "vm-2"})))
            .await,
        StatusCode::CONFLICT,
        "name: already taken",
    );
    assert_problem(
        app.admin(
            Method::POST,
            "/v1/app-servers",
            Some(json!({"name": "vm-2", "uri": "sip:h"})),
        )
        .await,
        StatusCode::CONFLICT,
        "name: already taken",
    );

    let (s, _) = app.admin(Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for method in [Method::GET, Method::DELETE] {
        assert_problem(
            app.admin(method, &path, None).await,
            StatusCode::NOT_FOUND,
            id,
        );
    }
    assert_problem(
        app.admin(Method::PATCH, &path, Some(json!({"weight": 2})))
            .await,
        StatusCode::NOT_FOUND,
        id,
    );
    let (_, list) = app.admin(Method::GET, "/v1/app-servers", None).await;
    assert_eq!(names(&list), ["vm-2"]);
}

async fn uri_validation(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let good = [
        "sip:127.0.0.1",
        "sip:127.0.0.1:5080",
        "sip:[::1]:5080",
        "sip:[2001:db8::1]",
        "sips:as.example.com:5061",
        "sip:as.example.com;transport=tcp;lr",
        "sip:vm@10.0.0.1:5080;transport=udp",
    ];
    for (i, uri) in good.iter().enumerate() {
        let a = app
            .create(
                "/v1/app-servers",
                json!({"name": format!("as{i}"), "uri": uri}),
            )
            .await;
        assert_eq!(a["uri"], *uri, "stored as given");
    }
    let bad = [
        ("127.0.0.1:5080", "must start with sip: or sips:"),
        ("http://as.example.com", "must start with sip: or sips:"),
        ("tel:+4930123", "must start with sip: or sips:"),
        ("sip:127.0.0.1:99999", "port"),
        ("sip:127.0.0.1:0", "port"),
        ("sip:127.0.0.1:http", "port"),
        ("sip:[::1", "IPv6"),
        ("sip:[::g]:5080", "IPv6"),
        ("sip:", "host"),
        ("sip:;transport=udp", "host"),
        ("sip:as example.com", "spaces"),
        ("<sip:as.example.com>", "sip:"),
        ("sip:as_example!.com", "host"),
    ];
    for (uri, needle) in bad {
        let got = app
            .admin(
                Method::POST,
                "/v1/app-servers",
                Some(json!({"name": "bad", "uri": uri})),
            )
            .await;
        assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {}", got.1);
        let detail = got.1["detail"].as_str().unwrap();
        assert!(detail.starts_with("uri: "), "{uri}: {detail}");
        assert!(detail.contains(needle), "{uri}: {detail}");
    }
    let (_, list) = app.admin(Method::GET, "/v1/app-servers", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), good.len());
    // PATCH validates the URI too.
    let id = list["items"][0]["id"].as_str().unwrap();
    assert_problem(
        app.admin(
            Method::PATCH,
            &format!("/v1/app-servers/{id}"),
            Some(json!({"uri": "sip:host:70000"})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "uri",
    );
}

async fn field_validation(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let base = json!({"name": "as", "uri": "sip:127.0.0.1"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, needle) in [
        (with("name", json!("")), "name"),
        (with("name", json!("a\nb")), "name"),
        (with("priority", json!(-1)), "priority"),
        (with("priority", json!(65536)), "priority"),
        (with("weight", json!(-1)), "weight"),
        (with("weight", json!("1")), "weight: invalid type"),
        (with("enabled", json!(1)), "enabled: invalid type"),
        (with("uri", json!(null)), "uri"),
        (json!({"name": "as"}), "missing field `uri`"),
    ] {
        assert_problem(
            app.admin(Method::POST, "/v1/app-servers", Some(body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            needle,
        );
    }
}

async fn health_is_read_only(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    assert_problem(
        app.admin(
            Method::POST,
            "/v1/app-servers",
            Some(json!({"name": "as", "uri": "sip:h", "health": "up"})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown field `health`",
    );
    let a = app
        .create("/v1/app-servers", json!({"name": "as", "uri": "sip:h"}))
        .await;
    let path = format!("/v1/app-servers/{}", a["id"].as_str().unwrap());
    assert_problem(
        app.admin(Method::PATCH, &path, Some(json!({"health": "up"})))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown field `health`",
    );
    assert_problem(
        app.admin(Method::PATCH, &path, Some(json!({"priority": null})))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "priority: may not be null",
    );
    let (_, got) = app.admin(Method::GET, &path, None).await;
    assert_eq!(got["health"], "unknown");
    assert_eq!(got, a, "nothing changed");
}

async fn list_filters(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let mut ids = Vec::new();
    for (name, enabled) in [("a", true), ("b", false), ("c", true)] {
        let a = app
            .create(
                "/v1/app-servers",
                json!({"name": name, "uri": "sip:h", "enabled": enabled}),
            )
            .await;
        ids.push(a["id"].as_str().unwrap().to_string());
    }
    // Health is the prober's to set.
    let store = app.store().await;
    store.set_app_server_health(&ids[0], "up").await.unwrap();
    store.set_app_server_health(&ids[1], "down").await.unwrap();
    let get = |q: &'static str| {
        let app = &app;
        async move {
            let (s, list) = app
                .admin(Method::GET, &format!("/v1/app-servers{q}"), None)
                .await;
            assert_eq!(s, StatusCode::OK, "{q}: {list}");
            list
        }
    };
    assert_eq!(names(&get("?enabled=true").await), ["a", "c"]);
    assert_eq!(names(&get("?enabled=false").await), ["b"]);
    assert_eq!(names(&get("?health=up").await), ["a"]);
    assert_eq!(names(&get("?health=down").await), ["b"]);
    assert_eq!(names(&get("?health=unknown").await), ["c"]);
    assert_eq!(
        names(&get("?health=up&enabled=false").await),
        Vec::<&str>::new()
    );
    assert_eq!(names(&get("?name=b").await), ["b"]);
    assert_eq!(names(&get("?name=zz").await), Vec::<&str>::new());
    let up = get("?health=up").await;
    assert_ne!(up["items"][0]["health_changed_at"], Value::Null);
    let page = get("?limit=2").await;
    assert_eq!(names(&page), ["a", "b"]);
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let (_, rest) = app
        .admin(
            Method::GET,
            &format!("/v1/app-servers?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(names(&rest), ["c"]);
    assert_eq!(rest["next_cursor"], Value::Null);
    for (q, needle) in [
        ("?health=sideways", "health"),
        ("?enabled=1x", "enabled"),
        ("?uri=sip:h", "uri"),
    ] {
        assert_problem(
            app.admin(Method::GET, &format!("/v1/app-servers{q}"), None)
                .await,
            StatusCode::BAD_REQUEST,
            needle,
        );
    }
}

async fn in_a_pool(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let a = app
        .create("/v1/app-servers", json!({"name": "a", "uri": "sip:h1"}))
        .await;
    let b = app
        .create("/v1/app-servers", json!({"name": "b", "uri": "sip:h2"}))
        .await;
    let svc = app
        .create(
            "/v1/services",
            json!({"name": "vm", "app_server_ids": [a["id"], b["id"]]}),
        )
        .await;
    let a_path = format!("/v1/app-servers/{}", a["id"].as_str().unwrap());
    assert_problem(
        app.admin(Method::DELETE, &a_path, None).await,
        StatusCode::CONFLICT,
        "1 service",
    );
    let (s, _) = app.admin(Method::GET, &a_path, None).await;
    assert_eq!(s, StatusCode::OK, "still there");
    let (s, p) = app
        .admin(
            Method::PATCH,
            &format!("/v1/services/{}", svc["id"].as_str().unwrap()),
            Some(json!({"app_server_ids": [b["id"]]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let (s, _) = app.admin(Method::DELETE, &a_path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list) = app.admin(Method::GET, "/v1/app-servers", None).await;
    assert_eq!(names(&list), ["b"]);
}
