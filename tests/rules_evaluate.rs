//! `POST /v1/rules/evaluate` on real SIP request texts, both engines.

mod common;

use common::{assert_problem, Engine, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    evaluation_follows_rules_in_priority_order,
    evaluation_conditions,
    evaluation_bad_input
);

struct Fixture {
    a1: String,
    a2: String,
    a3: String,
    vm: String,
    video: String,
    alice: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let a1 = app
        .create(
            "/v1/app-servers",
            json!({"name": "a1", "uri": "sip:127.0.0.1:5081", "priority": 10}),
        )
        .await;
    let a2 = app
        .create(
            "/v1/app-servers",
            json!({"name": "a2", "uri": "sip:127.0.0.1:5082", "priority": 5}),
        )
        .await;
    let a3 = app
        .create(
            "/v1/app-servers",
            json!({"name": "a3", "uri": "sip:127.0.0.1:5083", "priority": 1, "enabled": false}),
        )
        .await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let (a1, a2, a3) = (id(&a1), id(&a2), id(&a3));
    let vm = id(&app
        .create(
            "/v1/services",
            json!({"name": "vm", "app_server_ids": [a1, a2, a3]}),
        )
        .await);
    let video = id(&app
        .create(
            "/v1/services",
            json!({"name": "video", "strategy": "parallel", "app_server_ids": [a1, a2]}),
        )
        .await);
    let alice = id(&app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": "alice-pass"}),
        )
        .await);
    let rules = [
        json!({"name": "off", "priority": 1, "enabled": false, "service_id": vm}),
        json!({"name": "video", "priority": 5, "match": {"sdp_media": "video"}, "service_id": video}),
        json!({"name": "voicemail", "priority": 10, "match": {"request_uri_user": "voicemail", "method": "INVITE"},
               "service_id": vm, "set": {"X-Tier": "gold"}}),
        json!({"name": "berlin", "priority": 20, "match": {"request_uri_user_regex": "\\+4930[0-9]+"}, "service_id": vm}),
        json!({"name": "subject", "priority": 30, "match": {"header": {"name": "Subject", "regex": "^urgent"}}, "service_id": vm}),
        json!({"name": "alice", "priority": 40, "match": {"client_ids": [alice]}, "service_id": vm}),
        json!({"name": "lan", "priority": 50, "match": {"source_cidr": "10.0.0.0/8", "request_uri_domain": "sip.example.com"}, "service_id": vm}),
    ];
    for r in rules {
        app.create("/v1/rules", r).await;
    }
    Fixture {
        a1,
        a2,
        a3,
        vm,
        video,
        alice,
    }
}

fn invite(user: &str, extra_headers: &str, media: &[&str]) -> String {
    let mut sdp = String::from("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n");
    for (i, m) in media.iter().enumerate() {
        sdp.push_str(&format!("m={m} {} RTP/AVP 0\n", 4000 + 2 * i));
    }
    // LF line ends and a wrong Content-Length on purpose: as pasted by a person.
    format!(
        "INVITE sip:{user}@sip.example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\n\
         Max-Forwards: 70\nf: <sip:alice@sip.example.com>;tag=1928301774\nt: <sip:{user}@sip.example.com>\n\
         i: a84b4c76e66710@192.0.2.1\nCSeq: 314159 INVITE\nContact: <sip:alice@192.0.2.1>\n{extra_headers}\
         c: application/sdp\nContent-Length: 3\n\n{sdp}"
    )
}

async fn evaluate(app: &TestApp, body: Value) -> Value {
    let (s, v) = app
        .admin(Method::POST, "/v1/rules/evaluate", Some(body))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn rule_name(e: &Value) -> Option<&str> {
    e["rule"]["name"].as_str()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

async fn evaluation_follows_rules_in_priority_order(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let f = fixture(&app).await;

    let e = evaluate(
        &app,
        json!({"request": invite("voicemail", "", &["audio"])}),
    )
    .await;
    assert_eq!(e["outcome"], "route");
    assert_eq!(rule_name(&e), Some("voicemail"));
    assert_eq!(e["service"]["id"], f.vm.as_str());
    assert_eq!(e["set"], json!({"X-Tier": "gold"}));
    // Failover: priority order (a2 has 5, a1 10); a3 is disabled.
    assert_eq!(ids(&e["app_servers"]), [f.a2.clone(), f.a1.clone()]);
    assert_eq!(e["app_server"]["id"], f.a2.as_str());
    assert_eq!(
        e["skipped"],
        json!([{"app_server_id": f.a3, "reason": "disabled"}])
    );
    assert_eq!(e["request"]["sdp_media"], json!(["audio"]));
    let trace = e["trace"].as_array().unwrap();
    let names: Vec<_> = trace
        .iter()
        .map(|t| t["rule_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["off", "video", "voicemail"],
        "evaluated in priority order up to the match"
    );
    assert_eq!(trace[0]["reason"], "the rule is disabled");
    assert_eq!(
        trace[1]["reason"],
        "sdp_media: the offer has no 'video' media"
    );
    assert_eq!(trace[2]["matched"], true);

    // The same request with video goes to the parallel service first.
    let e = evaluate(
        &app,
        json!({"request": invite("voicemail", "", &["audio", "video"])}),
    )
    .await;
    assert_eq!(rule_name(&e), Some("video"));
    assert_eq!(e["service"]["id"], f.video.as_str());
    assert_eq!(e["service"]["strategy"], "parallel");
    assert_eq!(ids(&e["app_servers"]).len(), 2);
    assert!(
        e["app_server"].is_null(),
        "parallel has no single first app server"
    );

    // A priority change takes effect at once.
    let (_, rules) = app.admin(Method::GET, "/v1/rules?limit=500", None).await;
    let video_rule = rules["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "video")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = app
        .admin(
            Method::PATCH,
            &format!("/v1/rules/{video_rule}"),
            Some(json!({"priority": 15})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let e = evaluate(
        &app,
        json!({"request": invite("voicemail", "", &["video"])}),
    )
    .await;
    assert_eq!(rule_name(&e), Some("voicemail"));

    // No app server left: 503.
    for a in [&f.a1, &f.a2] {
        app.admin(
            Method::PATCH,
            &format!("/v1/app-servers/{a}"),
            Some(json!({"enabled": false})),
        )
        .await;
    }
    let e = evaluate(
        &app,
        json!({"request": invite("voicemail", "", &["audio"])}),
    )
    .await;
    assert_eq!(e["outcome"], "503");
    assert_eq!(e["app_servers"], json!([]));
    assert_eq!(e["skipped"].as_array().unwrap().len(), 3);
}

async fn evaluation_conditions(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let f = fixture(&app).await;

    let e = evaluate(
        &app,
        json!({"request": invite("+4930123456", "", &["audio"])}),
    )
    .await;
    assert_eq!(rule_name(&e), Some("berlin"));
    // The regex must match the whole user part.
    let e = evaluate(
        &app,
        json!({"request": invite("+4930123x", "", &["audio"])}),
    )
    .await;
    assert_eq!(e["outcome"], "404");
    assert!(e["rule"].is_null());
    let last = e["trace"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["rule_name"], "lan");
    assert_eq!(
        last["reason"],
        "source_cidr: no source address (give source_ip)"
    );

    // Header condition; compact and long header names are the same header.
    let e = evaluate(
        &app,
        json!({"request": invite("bob", "s: urgent call\n", &["audio"])}),
    )
    .await;
    assert_eq!(rule_name(&e), Some("subject"));
    let e = evaluate(
        &app,
        json!({"request": invite("bob", "Subject: not urgent\n", &["audio"])}),
    )
    .await;
    assert_ne!(rule_name(&e), Some("subject"));

    // Method condition: an OPTIONS to voicemail does not match "voicemail".
    let options = invite("voicemail", "", &[])
        .replacen("INVITE sip:", "OPTIONS sip:", 1)
        .replace("CSeq: 314159 INVITE", "CSeq: 1 OPTIONS");
    let e = evaluate(&app, json!({"request": options})).await;
    assert_ne!(rule_name(&e), Some("voicemail"));
    let why = e["trace"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["rule_name"] == "voicemail")
        .unwrap()["reason"]
        .clone();
    assert_eq!(why, "method: OPTIONS is not INVITE");

    // Client and source conditions.
    let e = evaluate(
        &app,
        json!({"request": invite("bob", "", &["audio"]), "client_id": f.alice}),
    )
    .await;
    assert_eq!(rule_name(&e), Some("alice"));
    let e = evaluate(
        &app,
        json!({"request": invite("bob", "", &["audio"]), "source_ip": "10.1.2.3"}),
    )
    .await;
    assert_eq!(rule_name(&e), Some("lan"));
    let e = evaluate(
        &app,
        json!({"request": invite("bob", "", &["audio"]), "source_ip": "192.0.2.1"}),
    )
    .await;
    assert_eq!(e["outcome"], "404");

    // %-escapes in the user part are compared unescaped.
    let e = evaluate(
        &app,
        json!({"request": invite("voice%6Dail", "", &["audio"])}),
    )
    .await;
    assert_eq!(rule_name(&e), Some("voicemail"));
}

async fn evaluation_bad_input(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    fixture(&app).await;
    let bad = |request: &str| json!({"request": request});
    let e = app
        .admin(Method::POST, "/v1/rules/evaluate", Some(bad("hello world")))
        .await;
    assert_problem(e, StatusCode::UNPROCESSABLE_ENTITY, "request: ");
    let e = app
        .admin(
            Method::POST,
            "/v1/rules/evaluate",
            Some(bad(
                "SIP/2.0 200 OK\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n",
            )),
        )
        .await;
    assert_problem(e, StatusCode::UNPROCESSABLE_ENTITY, "response");
    let e = app
        .admin(
            Method::POST,
            "/v1/rules/evaluate",
            Some(json!({"request": invite("x", "", &[]), "source_ip": "nope"})),
        )
        .await;
    assert_problem(e, StatusCode::UNPROCESSABLE_ENTITY, "source_ip");
    let e = app
        .admin(
            Method::POST,
            "/v1/rules/evaluate",
            Some(json!({"request": invite("x", "", &[]), "client_id": "nobody"})),
        )
        .await;
    assert_problem(e, StatusCode::UNPROCESSABLE_ENTITY, "client_id");
    let e = app
        .admin(Method::POST, "/v1/rules/evaluate", Some(json!({})))
        .await;
    assert_problem(
        e,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing field `request`",
    );
}
