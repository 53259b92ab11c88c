//! `/v1/rules` over HTTP on both engines.

mod common;

use common::{assert_problem, Engine, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    rule_crud,
    match_round_trips,
    match_validation,
    user_regex_is_validated_alone,
    set_validation,
    patch_fields,
    list_filters
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

async fn service(app: &TestApp, name: &str) -> String {
    let s = app
        .create("/v1/services", json!({"name": name, "app_server_ids": []}))
        .await;
    s["id"].as_str().unwrap().to_string()
}

fn ids(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

/// Asserts that creating a rule with `body` is refused with 422 naming
/// `needle`.
async fn refused(app: &TestApp, body: Value, needle: &str) {
    assert_problem(
        app.admin(Method::POST, "/v1/rules", Some(body)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        needle,
    );
}

async fn rule_crud(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let sid = service(&app, "vm").await;
    let r = app.create("/v1/rules", json!({"service_id": sid})).await;
    assert_eq!(r["service_id"], sid.as_str());
    assert_eq!(r["name"], Value::Null);
    assert_eq!(r["priority"], 100, "the default");
    assert_eq!(r["enabled"], true);
    assert_eq!(r["match"], json!({}), "an empty match is allowed");
    assert_eq!(r["set"], json!({}));
    let id = r["id"].as_str().unwrap();
    let path = format!("/v1/rules/{id}");
    let (s, got) = app.admin(Method::GET, &path, None).await;
    assert_eq!((s, &got), (StatusCode::OK, &r));
    let r2 = app
        .create(
            "/v1/rules",
            json!({"service_id": sid, "name": "by number", "priority": 0, "enabled": false,
                   "match": {}, "set": {"X-Tier": "gold"}}),
        )
        .await;
    assert_eq!(
        (&r2["name"], &r2["priority"], &r2["enabled"]),
        (&json!("by number"), &json!(0), &json!(false))
    );
    assert_eq!(r2["set"], json!({"X-Tier": "gold"}));
    let list = get(&app, "/v1/rules").await;
    assert_eq!(list["items"], json!([r, r2]));

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
        app.admin(Method::PATCH, &path, Some(json!({"priority": 1})))
            .await,
        StatusCode::NOT_FOUND,
        id,
    );
}

async fn match_round_trips(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let sid = service(&app, "vm").await;
    let c = app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": "alice-pass"}),
        )
        .await;
    let matches = [
        json!({"request_uri_user": "voicemail", "request_uri_domain": "sip.example.com",
               "method": "INVITE", "sdp_media": "video",
               "header": {"name": "X-Tier", "equals": "gold"}}),
        json!({"request_uri_user_regex": "^\\+4930[0-9]+$",
               "header": {"name": "User-Agent", "regex": "^Polycom/[0-9.]+"},
               "client_ids": [c["id"]], "source_cidr": "10.0.0.0/8"}),
        json!({"source_cidr": "2001:db8::/32", "client_ids": []}),
        json!({"source_cidr": "192.0.2.7"}),
        json!({"method": "MESSAGE"}),
    ];
    for m in matches {
        let r = app
            .create("/v1/rules", json!({"service_id": sid, "match": m}))
            .await;
        assert_eq!(r["match"], m, "returned as given");
        let (_, got) = app
            .admin(
                Method::GET,
                &format!("/v1/rules/{}", r["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(got["match"], m, "stored as given");
    }
}

async fn match_validation(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let sid = service(&app, "vm").await;
    let with = |m: Value| json!({"service_id": sid, "match": m});
    let cases = [
        (
            with(json!({"request_uri_user_regex": "(unclosed"})),
            "match.request_uri_user_regex",
        ),
        (
            with(json!({"request_uri_user_regex": "[z-a]"})),
            "match.request_uri_user_regex",
        ),
        (
            with(json!({"header": {"name": "X-Tier", "equals": "a", "regex": "b"}})),
            "match.header: give exactly one of `equals` and `regex`",
        ),
        (
            with(json!({"header": {"name": "X-Tier"}})),
            "match.header: give exactly one",
        ),
        (
            with(json!({"header": {"name": "X-Tier", "regex": "("}})),
            "match.header.regex",
        ),
        (
            with(json!({"header": {"name": "X Tier", "equals": "a"}})),
            "match.header.name",
        ),
        (
            with(json!({"header": {"name": "X-Tier", "contains": "a"}})),
            "unknown field `contains`",
        ),
        (
            with(json!({"source_cidr": "10.0.0.0/33"})),
            "match.source_cidr",
        ),
        (with(json!({"source_cidr": "office"})), "match.source_cidr"),
        (with(json!({"method": "IN VITE"})), "match.method"),
        (with(json!({"sdp_media": ""})), "match.sdp_media"),
        (with(json!({"colour": "red"})), "unknown field `colour`"),
        (with(json!({"client_ids": "alice"})), "match.client_ids"),
        (with(json!("INVITE")), "match"),
        (
            json!({"service_id": "nope"}),
            "service_id: no service with id 'nope'",
        ),
        (json!({}), "missing field `service_id`"),
        (json!({"service_id": sid, "priority": -1}), "priority"),
        (
            json!({"service_id": sid, "priority": 1_000_001}),
            "priority",
        ),
        (json!({"service_id": sid, "name": ""}), "name"),
    ];
    for (body, needle) in cases {
        refused(&app, body, needle).await;
    }
    let list = get(&app, "/v1/rules").await;
    assert!(ids(&list).is_empty(), "failed creates left nothing");
}

/// The user regex is anchored by wrapping it (`^(?:…)$`); a pattern that is
/// not a regular expression on its own must not slip through by closing
/// the wrapper's group.
async fn user_regex_is_validated_alone(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let sid = service(&app, "vm").await;
    for bad in ["a)(b", "1)|(.*"] {
        refused(
            &app,
            json!({"service_id": sid, "match": {"request_uri_user_regex": bad}}),
            "match.request_uri_user_regex",
        )
        .await;
    }
}

async fn set_validation(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let sid = service(&app, "vm").await;
    let with = |k: &str, v: &str| json!({"service_id": sid, "set": {k: v}});
    let cases = [
        (
            with("Via", "SIP/2.0/UDP evil"),
            "set.Via: this header is managed by the relay",
        ),
        (with("via", "x"), "set.via: this header is managed"),
        (with("v", "x"), "set.v: this header is managed"),
        (
            with("X-Switchboard-Session", "x"),
            "set.X-Switchboard-Session: this header is managed",
        ),
        (with("call-id", "x"), "set.call-id: this header is managed"),
        (
            with("Content-Length", "0"),
            "set.Content-Length: this header is managed",
        ),
        (
            with("X-Tier", "gold\r\nVia: SIP/2.0/UDP evil"),
            "set.X-Tier: must not contain line breaks",
        ),
        (
            with("X-Tier", "gold\nx"),
            "set.X-Tier: must not contain line breaks",
        ),
        (with("X-Tier", "gold\0"), "set.X-Tier"),
        (
            with("X-Tier", &"g".repeat(1025)),
            "set.X-Tier: must be at most 1024 bytes",
        ),
        (with("X Tier", "gold"), "set.X Tier"),
        (with("X-Tier:", "gold"), "set.X-Tier:"),
        (with("", "gold"), "set."),
        (
            json!({"service_id": sid, "set": {"X-Tier": 1}}),
            "set.X-Tier: invalid type",
        ),
        (
            json!({"service_id": sid, "set": ["X-Tier"]}),
            "set: invalid type",
        ),
    ];
    for (body, needle) in cases {
        refused(&app, body, needle).await;
    }
    let r = app
        .create(
            "/v1/rules",
            json!({"service_id": sid,
                   "set": {"X-Tier": "gold", "X-Account": "a b\tc", "P-Custom": "é"}}),
        )
        .await;
    assert_eq!(
        r["set"],
        json!({"X-Tier": "gold", "X-Account": "a b\tc", "P-Custom": "é"})
    );
    let path = format!("/v1/rules/{}", r["id"].as_str().unwrap());
    assert_problem(
        app.admin(
            Method::PATCH,
            &path,
            Some(json!({"set": {"Route": "<sip:x>"}})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "set.Route",
    );
    let got = get(&app, &path).await;
    assert_eq!(got["set"], r["set"], "unchanged");
}

async fn patch_fields(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let sid = service(&app, "vm").await;
    let other = service(&app, "other").await;
    let m = json!({"method": "INVITE", "header": {"name": "X-Tier", "equals": "gold"}});
    let r = app
        .create(
            "/v1/rules",
            json!({"service_id": sid, "name": "r", "match": m, "set": {"X-A": "1"}}),
        )
        .await;
    let path = format!("/v1/rules/{}", r["id"].as_str().unwrap());

    let p = patch(&app, &path, json!({"priority": 5, "enabled": false})).await;
    assert_eq!((&p["priority"], &p["enabled"]), (&json!(5), &json!(false)));
    assert_eq!(p["match"], m, "absent fields are kept");
    assert_eq!(p["set"], json!({"X-A": "1"}));
    assert_eq!(p["name"], "r");
    assert_eq!(p["created_at"], r["created_at"]);

    let m2 = json!({"request_uri_user_regex": "^9[0-9]{3}$"});
    let p = patch(
        &app,
        &path,
        json!({"match": m2, "set": {"X-B": "2"}, "name": null, "service_id": other}),
    )
    .await;
    assert_eq!(p["match"], m2, "match replaced whole");
    assert_eq!(p["set"], json!({"X-B": "2"}), "set replaced whole");
    assert_eq!(p["name"], Value::Null);
    assert_eq!(p["service_id"], other.as_str());
    assert_eq!((&p["priority"], &p["enabled"]), (&json!(5), &json!(false)));
    let got = get(&app, &path).await;
    assert_eq!(got, p, "stored");

    let (s, p) = app
        .admin(Method::PATCH, &path, Some(json!({"match": {}})))
        .await;
    assert_eq!((s, &p["match"]), (StatusCode::OK, &json!({})));
    for (body, needle) in [
        (json!({"match": {"source_cidr": "x"}}), "match.source_cidr"),
        (json!({"match": null}), "match: may not be null"),
        (json!({"priority": null}), "priority: may not be null"),
        (json!({"service_id": "nope"}), "service_id: no service"),
        (json!({"id": "x"}), "unknown field `id`"),
    ] {
        assert_problem(
            app.admin(Method::PATCH, &path, Some(body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            needle,
        );
    }
    let got = get(&app, &path).await;
    assert_eq!(got, p, "failed patches changed nothing");
}

async fn list_filters(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let a = service(&app, "a").await;
    let b = service(&app, "b").await;
    let mut made = Vec::new();
    for (sid, enabled) in [(&a, true), (&b, true), (&a, false), (&b, false), (&a, true)] {
        let r = app
            .create("/v1/rules", json!({"service_id": sid, "enabled": enabled}))
            .await;
        made.push(r["id"].as_str().unwrap().to_string());
    }
    let m: Vec<&str> = made.iter().map(String::as_str).collect();
    let app = &app;
    let get = |q: String| async move { get(app, &format!("/v1/rules{q}")).await };
    assert_eq!(
        ids(&get(format!("?service_id={a}")).await),
        [m[0], m[2], m[4]]
    );
    assert_eq!(ids(&get(format!("?service_id={b}")).await), [m[1], m[3]]);
    assert_eq!(ids(&get("?enabled=true".into()).await), [m[0], m[1], m[4]]);
    assert_eq!(ids(&get("?enabled=false".into()).await), [m[2], m[3]]);
    assert_eq!(
        ids(&get(format!("?service_id={b}&enabled=false")).await),
        [m[3]]
    );
    assert!(ids(&get("?service_id=nope".into()).await).is_empty());
    let page = get("?limit=3".into()).await;
    assert_eq!(ids(&page), [m[0], m[1], m[2]]);
    let cursor = page["next_cursor"].as_str().unwrap();
    assert_eq!(
        ids(&get(format!("?limit=3&cursor={cursor}")).await),
        [m[3], m[4]]
    );
    assert_problem(
        app.admin(Method::GET, "/v1/rules?enabled=2", None).await,
        StatusCode::BAD_REQUEST,
        "enabled",
    );
}
