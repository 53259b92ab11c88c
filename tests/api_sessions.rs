//! `/v1/sessions` over HTTP, and the session publisher against a real
//! store, on both engines. Sessions are written straight into the store
//! (as the publisher would) rather than made by calls.

mod common;

use std::time::Duration;

use common::{assert_problem, Engine, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::relay::publisher::publish_sessions;
use switchboard::store::sessions::{LegRecord, SessionChange, SessionRecord};
use switchboard::store::{Store, Timestamp};
use tokio::sync::{mpsc, watch};

both_engines!(
    list_and_filters,
    time_range,
    pagination,
    bad_queries,
    detail_with_legs_and_events,
    roles,
    terminate,
    publisher_writes_sessions_legs_and_events,
    publisher_drops_only_a_refused_change,
    publisher_stops_while_the_database_is_down,
);

/// `2026-01-01T10:MM:SS.mmmZ` as a timestamp.
fn at(minute: i64, ms: i64) -> Timestamp {
    // 2026-01-01T10:00:00Z
    Timestamp::from_millis(1_767_261_600_000 + minute * 60_000 + ms)
}

struct S {
    id: &'static str,
    state: &'static str,
    client: &'static str,
    service: Option<&'static str>,
    app_server: Option<&'static str>,
    request: &'static str,
    minute: i64,
    node: &'static str,
}

fn record(s: &S) -> SessionRecord {
    let ended = s.state == "ended";
    SessionRecord {
        id: s.id.into(),
        request_id: s.request.into(),
        state: s.state.into(),
        client_id: Some(s.client.into()),
        service_id: s.service.map(Into::into),
        rule_id: s.service.map(|_| "rule-1".into()),
        app_server_id: s.app_server.map(Into::into),
        caller_uri: format!("sip:{}@test.example", s.client),
        callee_uri: "sip:voicemail@test.example".into(),
        client_call_id: format!("{}-client@host", s.id),
        as_call_id: s.app_server.map(|_| format!("{}-as@switchboard", s.id)),
        node: s.node.into(),
        created_at: at(s.minute, 0),
        answered_at: (s.state != "proceeding" && s.app_server.is_some()).then(|| at(s.minute, 500)),
        ended_at: ended.then(|| at(s.minute + 1, 500)),
        duration_ms: (ended && s.app_server.is_some()).then_some(60_000),
        end_reason: ended.then(|| {
            if s.app_server.is_some() {
                "client_bye".into()
            } else {
                "rejected".into()
            }
        }),
        final_status: (s.state != "proceeding").then_some(if s.app_server.is_some() {
            200
        } else {
            404
        }),
    }
}

/// s1 ended (this node), s2 established (node-b), s3 proceeding and s4
/// established from one request (fan-out) at the same instant, s5 rejected.
const SESSIONS: [S; 5] = [
    S {
        id: "s1",
        state: "ended",
        client: "c1",
        service: Some("svc1"),
        app_server: Some("as1"),
        request: "r1",
        minute: 0,
        node: "test-node",
    },
    S {
        id: "s2",
        state: "established",
        client: "c1",
        service: Some("svc2"),
        app_server: Some("as2"),
        request: "r2",
        minute: 5,
        node: "node-b",
    },
    S {
        id: "s3",
        state: "proceeding",
        client: "c2",
        service: Some("svc1"),
        app_server: Some("as1"),
        request: "r3",
        minute: 10,
        node: "node-b",
    },
    S {
        id: "s4",
        state: "established",
        client: "c2",
        service: Some("svc1"),
        app_server: Some("as2"),
        request: "r3",
        minute: 10,
        node: "test-node",
    },
    S {
        id: "s5",
        state: "ended",
        client: "c3",
        service: None,
        app_server: None,
        request: "r5",
        minute: 60,
        node: "test-node",
    },
];

fn leg(session: &str, kind: &str, ms: i64) -> LegRecord {
    LegRecord {
        id: format!("{session}-{kind}"),
        session_id: session.into(),
        kind: kind.into(),
        app_server_id: (kind == "as").then(|| "as1".into()),
        call_id: format!("{session}-{kind}@host"),
        local_tag: Some(format!("{kind}-local")),
        remote_tag: Some(format!("{kind}-remote")),
        remote_uri: Some(format!("sip:{kind}@192.0.2.1:5060")),
        created_at: at(0, ms),
        ended_at: Some(at(1, 500)),
    }
}

fn event(session: &str, ms: i64, kind: &str, detail: Option<&str>) -> SessionChange {
    SessionChange::Event {
        session_id: session.into(),
        at: at(0, ms),
        kind: kind.into(),
        detail: detail.map(Into::into),
    }
}

/// The sessions above; s1 with two legs and four events.
async fn seed(app: &TestApp) {
    let store = app.store().await;
    let mut changes: Vec<SessionChange> = SESSIONS
        .iter()
        .map(|s| SessionChange::Session(Box::new(record(s))))
        .collect();
    // The AS leg is sent first but created later: legs come in creation
    // order. It ended before the session; the client leg ended with it, so
    // its row has no end of its own (the relay does not write it again).
    let mut hung_up = leg("s1", "as", 20);
    hung_up.ended_at = Some(at(1, 0));
    changes.push(SessionChange::Leg(Box::new(hung_up)));
    let mut client = leg("s1", "client", 0);
    client.ended_at = None;
    changes.push(SessionChange::Leg(Box::new(client)));
    // A live session's open leg stays open.
    let mut live = leg("s4", "client", 0);
    live.ended_at = None;
    changes.push(SessionChange::Leg(Box::new(live)));
    // Events in the order they happened, two at the same instant.
    changes.push(event("s1", 0, "created", None));
    changes.push(event("s1", 20, "inquiring", Some("as1")));
    changes.push(event("s1", 500, "answered", Some("200")));
    changes.push(event("s1", 500, "established", None));
    changes.push(event("s2", 0, "created", None));
    store
        .apply_session_changes(&changes)
        .await
        .expect("seed sessions");
    store.close().await;
}

/// Ids of the items of a list answer.
fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_string())
        .collect()
}

async fn list_ids(app: &TestApp, query: &str) -> Vec<String> {
    let (s, body) = app
        .admin(Method::GET, &format!("/v1/sessions{query}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "GET /v1/sessions{query}: {body}");
    assert_eq!(body["next_cursor"], Value::Null, "{query}: one page");
    ids(&body)
}

async fn list_and_filters(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    assert_eq!(list_ids(&app, "").await, Vec::<String>::new());
    seed(&app).await;
    let cases: [(&str, &[&str]); 11] = [
        ("", &["s1", "s2", "s3", "s4", "s5"]),
        ("?state=established", &["s2", "s4"]),
        ("?state=ended", &["s1", "s5"]),
        ("?state=active", &["s2", "s3", "s4"]),
        ("?client_id=c1", &["s1", "s2"]),
        ("?service_id=svc1", &["s1", "s3", "s4"]),
        ("?app_server_id=as2", &["s2", "s4"]),
        ("?request_id=r3", &["s3", "s4"]),
        ("?state=established&client_id=c2", &["s4"]),
        (
            "?service_id=svc1&app_server_id=as1&state=proceeding",
            &["s3"],
        ),
        ("?client_id=nobody", &[]),
    ];
    for (query, want) in cases {
        assert_eq!(list_ids(&app, query).await, want, "GET /v1/sessions{query}");
    }
    let (s, body) = app
        .admin(Method::GET, "/v1/sessions?state=gone", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("state"), "{body}");

    // The items are the published records, as they were stored.
    let (_, body) = app
        .admin(Method::GET, "/v1/sessions?request_id=r1", None)
        .await;
    let s1 = &body["items"][0];
    assert_eq!(
        s1,
        &json!({
            "id": "s1",
            "request_id": "r1",
            "state": "ended",
            "client_id": "c1",
            "service_id": "svc1",
            "rule_id": "rule-1",
            "app_server_id": "as1",
            "caller_uri": "sip:c1@test.example",
            "callee_uri": "sip:voicemail@test.example",
            "client_call_id": "s1-client@host",
            "as_call_id": "s1-as@switchboard",
            "node": "test-node",
            "created_at": "2026-01-01T10:00:00.000Z",
            "answered_at": "2026-01-01T10:00:00.500Z",
            "ended_at": "2026-01-01T10:01:00.500Z",
            "duration_ms": 60000,
            "end_reason": "client_bye",
            "final_status": 200
        })
    );
    let (_, body) = app
        .admin(Method::GET, "/v1/sessions?request_id=r5", None)
        .await;
    let s5 = &body["items"][0];
    assert_eq!(s5["service_id"], Value::Null);
    assert_eq!(s5["end_reason"], "rejected");
    assert_eq!(s5["final_status"], 404);
    assert_eq!(s5["duration_ms"], Value::Null);
}

async fn time_range(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    seed(&app).await;
    let cases: [(&str, &[&str]); 8] = [
        // `from` is inclusive…
        ("?from=2026-01-01T10:05:00Z", &["s2", "s3", "s4", "s5"]),
        ("?from=2026-01-01T10:05:00.001Z", &["s3", "s4", "s5"]),
        // …`to` exclusive.
        ("?to=2026-01-01T10:10:00Z", &["s1", "s2"]),
        ("?to=2026-01-01T10:10:00.001Z", &["s1", "s2", "s3", "s4"]),
        (
            "?from=2026-01-01T10:05:00Z&to=2026-01-01T11:00:00Z",
            &["s2", "s3", "s4"],
        ),
        // Any offset; `+` must be percent-encoded in a query.
        ("?from=2026-01-01T12:30:00%2B02:00", &["s5"]),
        ("?to=2026-01-01T05:05:00-05:00", &["s1"]),
        (
            "?from=2026-01-01T10:10:00Z&to=2026-01-01T10:10:00.001Z&app_server_id=as2",
            &["s4"],
        ),
    ];
    for (query, want) in cases {
        assert_eq!(list_ids(&app, query).await, want, "GET /v1/sessions{query}");
    }
    assert_eq!(
        list_ids(&app, "?from=2026-01-01T10:10:00Z&to=2026-01-01T10:10:00Z").await,
        Vec::<String>::new(),
        "an empty range"
    );
}

async fn pagination(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    seed(&app).await;
    for (query, want) in [
        (
            "?limit=2",
            vec![vec!["s1", "s2"], vec!["s3", "s4"], vec!["s5"]],
        ),
        (
            "?limit=1&service_id=svc1",
            vec![vec!["s1"], vec!["s3"], vec!["s4"]],
        ),
        ("?limit=5", vec![vec!["s1", "s2", "s3", "s4", "s5"]]),
    ] {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/sessions{query}&cursor={c}"),
                None => format!("/v1/sessions{query}"),
            };
            let (s, body) = app.admin(Method::GET, &path, None).await;
            assert_eq!(s, StatusCode::OK, "GET {path}: {body}");
            pages.push(ids(&body));
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
            assert!(pages.len() < 10, "pagination does not end");
        }
        assert_eq!(pages, want, "pages of {query}");
    }
}

async fn bad_queries(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    seed(&app).await;
    for (query, needle) in [
        ("?bogus=1", "bogus"),
        ("?client=c1", "client"),
        ("?from=yesterday", "from"),
        ("?to=2026-01-01", "to"),
        ("?from=2026-01-01T10:00:00Z&to=2026-01-01T09:00:00Z", "from"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?limit=ten", "limit"),
        ("?cursor=not-a-cursor", "cursor"),
    ] {
        assert_problem(
            app.admin(Method::GET, &format!("/v1/sessions{query}"), None)
                .await,
            StatusCode::BAD_REQUEST,
            needle,
        );
    }
}

async fn detail_with_legs_and_events(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    seed(&app).await;
    let (s, body) = app.admin(Method::GET, "/v1/sessions/s1", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // The session's own fields at the top level.
    assert_eq!(body["id"], "s1");
    assert_eq!(body["state"], "ended");
    assert_eq!(body["node"], "test-node");
    assert_eq!(body["duration_ms"], 60000);
    assert_eq!(body["end_reason"], "client_bye");
    assert!(body.get("session").is_none(), "flattened: {body}");

    let legs = body["legs"].as_array().expect("legs");
    assert_eq!(legs.len(), 2);
    assert_eq!(
        legs[0],
        json!({
            "id": "s1-client",
            "session_id": "s1",
            "kind": "client",
            "app_server_id": null,
            "call_id": "s1-client@host",
            "local_tag": "client-local",
            "remote_tag": "client-remote",
            "remote_uri": "sip:client@192.0.2.1:5060",
            "created_at": "2026-01-01T10:00:00.000Z",
            "ended_at": "2026-01-01T10:01:00.500Z"
        }),
        "a leg open when its session ended ended with it"
    );
    assert_eq!(legs[1]["kind"], "as");
    assert_eq!(legs[1]["app_server_id"], "as1");
    assert_eq!(legs[1]["created_at"], "2026-01-01T10:00:00.020Z");
    assert_eq!(
        legs[1]["ended_at"], "2026-01-01T10:01:00.000Z",
        "a leg that ended before its session keeps its own end"
    );
    let (_, live) = app.admin(Method::GET, "/v1/sessions/s4", None).await;
    assert_eq!(live["legs"][0]["ended_at"], Value::Null, "{live}");

    let events = body["events"].as_array().expect("events");
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["created", "inquiring", "answered", "established"]);
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq ascending: {seqs:?}"
    );
    assert_eq!(events[1]["detail"], "as1");
    assert_eq!(events[1]["at"], "2026-01-01T10:00:00.020Z");
    assert_eq!(events[3]["detail"], Value::Null);
    assert!(events.iter().all(|e| e["session_id"] == "s1"));

    // A session with no legs yet, and one event.
    let (s, body) = app.admin(Method::GET, "/v1/sessions/s2", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["legs"], json!([]));
    assert_eq!(body["events"].as_array().map(Vec::len), Some(1));
    let (_, body) = app.admin(Method::GET, "/v1/sessions/s5", None).await;
    assert_eq!(body["events"], json!([]));

    // A state change rewrites the session and adds to its trail.
    let store = app.store().await;
    let mut s2 = record(&SESSIONS[1]);
    s2.state = "ended".into();
    s2.ended_at = Some(at(7, 0));
    s2.duration_ms = Some(119_500);
    s2.end_reason = Some("as_bye".into());
    store
        .apply_session_changes(&[
            SessionChange::Session(Box::new(s2)),
            SessionChange::Event {
                session_id: "s2".into(),
                at: at(7, 0),
                kind: "ended".into(),
                detail: Some("as_bye".into()),
            },
        ])
        .await
        .expect("update");
    store.close().await;
    let (_, body) = app.admin(Method::GET, "/v1/sessions/s2", None).await;
    assert_eq!(body["state"], "ended");
    assert_eq!(body["end_reason"], "as_bye");
    assert_eq!(body["duration_ms"], 119_500);
    assert_eq!(body["events"][1]["kind"], "ended");
    assert_eq!(list_ids(&app, "?state=ended").await, ["s1", "s2", "s5"]);

    assert_problem(
        app.admin(Method::GET, "/v1/sessions/nope", None).await,
        StatusCode::NOT_FOUND,
        "no session with id 'nope'",
    );
}

async fn token(app: &TestApp, body: Value) -> String {
    let t = app.create("/v1/tokens", body).await;
    t["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

async fn roles(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    seed(&app).await;
    let billing = token(&app, json!({"name": "billing", "role": "billing"})).await;
    let as_id = app
        .create(
            "/v1/app-servers",
            json!({"name": "as1", "uri": "sip:127.0.0.1:5080"}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let app_server = token(
        &app,
        json!({"name": "as", "role": "app_server", "app_server_id": as_id}),
    )
    .await;

    // Billing reads.
    let (s, body) = app
        .call(
            Method::GET,
            "/v1/sessions?state=ended",
            Some(&billing),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), ["s1", "s5"]);
    let (s, body) = app
        .call(Method::GET, "/v1/sessions/s1", Some(&billing), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["legs"].as_array().map(Vec::len), Some(2));
    // …but does not terminate.
    assert_problem(
        app.call(Method::DELETE, "/v1/sessions/s2", Some(&billing), None)
            .await,
        StatusCode::FORBIDDEN,
        "admin",
    );

    // An app server reads none of this.
    for (method, path) in [
        (Method::GET, "/v1/sessions"),
        (Method::GET, "/v1/sessions/s1"),
        (Method::DELETE, "/v1/sessions/s2"),
    ] {
        assert_problem(
            app.call(method.clone(), path, Some(&app_server), None)
                .await,
            StatusCode::FORBIDDEN,
            "app_server",
        );
        let (s, _) = app.call(method, path, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path} without a token");
    }
}

async fn terminate(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    seed(&app).await;
    for id in ["s1", "s5"] {
        assert_problem(
            app.admin(Method::DELETE, &format!("/v1/sessions/{id}"), None)
                .await,
            StatusCode::CONFLICT,
            "already ended",
        );
    }
    assert_problem(
        app.admin(Method::DELETE, "/v1/sessions/nope", None).await,
        StatusCode::NOT_FOUND,
        "no session with id 'nope'",
    );
    // Live on another node: this node cannot end it (yet).
    for id in ["s2", "s3"] {
        assert_problem(
            app.admin(Method::DELETE, &format!("/v1/sessions/{id}"), None)
                .await,
            StatusCode::CONFLICT,
            "held by node 'node-b'",
        );
    }
    // Published as live by this node, but its relay does not hold it.
    assert_problem(
        app.admin(Method::DELETE, "/v1/sessions/s4", None).await,
        StatusCode::CONFLICT,
        "'test-node'",
    );
    // Nothing was changed by the refusals.
    let (_, body) = app.admin(Method::GET, "/v1/sessions/s2", None).await;
    assert_eq!(body["state"], "established");
    assert_eq!(body["end_reason"], Value::Null);
}

/// Polls until `check` holds (10 s at most).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn published(store: &Store, id: &str, legs: usize, events: usize) -> bool {
    store.get_session(id).await.is_ok()
        && store.session_legs(id).await.map(|l| l.len()).ok() == Some(legs)
        && store.session_events(id).await.map(|e| e.len()).ok() == Some(events)
}

async fn publisher_writes_sessions_legs_and_events(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let store = app.store().await;
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(publish_sessions(store.clone(), rx, stop_rx));

    let mut s = record(&SESSIONS[0]);
    s.state = "proceeding".into();
    s.answered_at = None;
    s.ended_at = None;
    s.duration_ms = None;
    s.end_reason = None;
    s.final_status = None;
    tx.send(SessionChange::Session(Box::new(s.clone())))
        .expect("send");
    tx.send(SessionChange::Leg(Box::new(leg("s1", "client", 0))))
        .expect("send");
    tx.send(event("s1", 0, "created", None)).expect("send");
    eventually("the session, its leg and event", || {
        published(&store, "s1", 1, 1)
    })
    .await;
    assert_eq!(store.get_session("s1").await.expect("s1"), s);

    // Later changes rewrite the session, add a leg and events.
    tx.send(SessionChange::Leg(Box::new(leg("s1", "as", 20))))
        .expect("send");
    tx.send(event("s1", 20, "inquiring", Some("as1")))
        .expect("send");
    let ended = record(&SESSIONS[0]);
    tx.send(SessionChange::Session(Box::new(ended.clone())))
        .expect("send");
    tx.send(event("s1", 500, "ended", Some("client_bye")))
        .expect("send");
    eventually("the update", || published(&store, "s1", 2, 3)).await;
    assert_eq!(store.get_session("s1").await.expect("s1"), ended);
    let kinds: Vec<String> = store
        .session_events("s1")
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["created", "inquiring", "ended"]);

    // Over REST as well.
    let (_, body) = app.admin(Method::GET, "/v1/sessions/s1", None).await;
    assert_eq!(body["state"], "ended");
    assert_eq!(body["legs"].as_array().map(Vec::len), Some(2));

    // What is queued at shutdown is written before the task ends.
    for s in &SESSIONS[1..] {
        tx.send(SessionChange::Session(Box::new(record(s))))
            .expect("send");
    }
    stop_tx.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("publisher stops")
        .expect("publisher task");
    assert_eq!(
        list_ids(&app, "").await,
        ["s1", "s2", "s3", "s4", "s5"],
        "drained at shutdown"
    );
    store.close().await;
}

async fn publisher_drops_only_a_refused_change(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let store = app.store().await;
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    // All queued before the publisher starts: one batch.
    tx.send(SessionChange::Session(Box::new(record(&SESSIONS[1]))))
        .expect("send");
    // An event of a session that was never published: refused for good.
    tx.send(event("ghost", 0, "created", None)).expect("send");
    tx.send(SessionChange::Leg(Box::new(leg("s2", "client", 0))))
        .expect("send");
    tx.send(event("s2", 0, "created", None)).expect("send");
    let task = tokio::spawn(publish_sessions(store.clone(), rx, stop_rx));
    eventually("the rest of the batch", || published(&store, "s2", 1, 1)).await;
    assert!(store
        .session_events("ghost")
        .await
        .expect("events")
        .is_empty());

    // And publishing goes on.
    tx.send(SessionChange::Session(Box::new(record(&SESSIONS[2]))))
        .expect("send");
    eventually("the next change", || published(&store, "s3", 0, 0)).await;
    stop_tx.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("publisher stops")
        .expect("publisher task");
    store.close().await;
}

async fn publisher_stops_while_the_database_is_down(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let closed = app.store().await;
    closed.close().await;
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(publish_sessions(closed, rx, stop_rx));
    tx.send(SessionChange::Session(Box::new(record(&SESSIONS[0]))))
        .expect("send");
    // Failing and backing off (100, 200, 400, 800 ms…).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!task.is_finished(), "keeps retrying while not told to stop");
    tx.send(SessionChange::Session(Box::new(record(&SESSIONS[1]))))
        .expect("send");
    stop_tx.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops at once, without waiting for the database")
        .expect("publisher task");
    assert_eq!(list_ids(&app, "").await, Vec::<String>::new());
}
