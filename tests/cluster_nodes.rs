//! Two nodes on one PostgreSQL database (SPEC §3): a configuration change
//! made through one node routes calls on the other at once, and a session
//! held by one node is terminated through the other. Multi-node is a
//! PostgreSQL feature (SQLite is embedded in one process), so these tests
//! run on PostgreSQL only.

mod common;

use std::time::Duration;

use common::sip_ua::{sdp_offer, SipUa};
use common::{test_settings, Engine, TestApp, TestDb, DOMAIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const PASSWORD: &str = "alice-secret";

/// Nodes `a` and `b` on one fresh database; `None` outside CI without
/// PostgreSQL.
async fn two_nodes() -> Option<(TestApp, TestApp)> {
    let db = TestDb::new(Engine::Postgres).await?;
    let second = db.second_node();
    let mut settings = test_settings(&db.url);
    settings.node_name = "node-a".into();
    let a = TestApp::spawn_with(db, settings).await;
    let mut settings = test_settings(&second.url);
    settings.node_name = "node-b".into();
    let b = TestApp::spawn_with(second, settings).await;
    Some((a, b))
}

async fn as_ua() -> SipUa {
    let mut ua = SipUa::udp("127.0.0.1:9".parse().unwrap()).await;
    ua.auto_ack = false;
    ua
}

/// Provisions alice and a catch-all service on `as_uri` through `node`.
async fn provision(node: &TestApp, as_uri: &str) -> String {
    let alice = node
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    let tariff = node.per_second_tariff().await;
    node.catch_all_service(as_uri, &tariff).await;
    alice["id"].as_str().unwrap().to_string()
}

/// A call from alice through `node`, answered by `as_ua`; returns the
/// client once the session is established.
async fn established_call(node: &TestApp, as_ua: &mut SipUa) -> SipUa {
    let mut client = SipUa::udp(node.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    let uri = format!("sip:svc@{DOMAIN}");
    let caller = tokio::spawn(async move {
        let (_, resp) = client.call(&uri, &offer, Some(("alice", PASSWORD))).await;
        (client, resp)
    });
    let invite = tokio::time::timeout(Duration::from_secs(5), as_ua.accept_request())
        .await
        .expect("the inquiry reaches the app server");
    as_ua.answer_with_sdp(&invite, 7000).await;
    let (client, resp) = caller.await.unwrap();
    assert_eq!(resp.status(), Some(200));
    as_ua.accept_request().await; // ACK
    client
}

async fn live_session(node: &TestApp, client_id: &str) -> Value {
    for _ in 0..250 {
        let (s, page) = node
            .admin(
                Method::GET,
                &format!("/v1/sessions?client_id={client_id}&state=established"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        if let Some(found) = page["items"].as_array().and_then(|i| i.first()) {
            return found.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no established session of {client_id}");
}

#[tokio::test]
async fn a_change_made_through_one_node_routes_calls_on_the_other() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let mut app_server = as_ua().await;
    // Both nodes run before the configuration exists: node b learns it
    // only from node a's signal.
    provision(&a, &format!("sip:{}", app_server.local_addr())).await;
    let request = format!(
        "INVITE sip:svc@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:alice@{DOMAIN}>;tag=1\r\nTo: <sip:svc@{DOMAIN}>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let mut seen = Value::Null;
    for _ in 0..100 {
        let (s, verdict) = b
            .admin(
                Method::POST,
                "/v1/rules/evaluate",
                Some(json!({"request": request})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{verdict}");
        if !verdict["service"].is_null() {
            seen = verdict;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!seen.is_null(), "node b never saw the rule made on node a");
    // And it routes (and authenticates) real calls with it.
    let mut client = established_call(&b, &mut app_server).await;
    let bye = client.bye();
    client.send(&bye).await;
    let at_as = app_server.accept_request().await;
    app_server.respond(&at_as, 200, "OK", &[], None).await;
    assert_eq!(client.recv_final(&bye).await.status(), Some(200));
}

#[tokio::test]
async fn a_session_is_terminated_through_a_node_that_does_not_hold_it() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let mut app_server = as_ua().await;
    let alice = provision(&a, &format!("sip:{}", app_server.local_addr())).await;
    let mut client = established_call(&a, &mut app_server).await;
    let session = live_session(&b, &alice).await;
    assert_eq!(session["node"], "node-a");
    let id = session["id"].as_str().unwrap();

    let (s, body) = b
        .admin(Method::DELETE, &format!("/v1/sessions/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let to_as = tokio::time::timeout(Duration::from_secs(5), app_server.accept_request())
        .await
        .expect("node a sends BYE to the app server");
    assert_eq!(
        to_as.method().map(|m| m.as_str().into_owned()),
        Some("BYE".into())
    );
    app_server.respond(&to_as, 200, "OK", &[], None).await;
    let to_client = client.accept_request().await;
    assert_eq!(
        to_client.method().map(|m| m.as_str().into_owned()),
        Some("BYE".into())
    );
    client.respond(&to_client, 200, "OK", &[], None).await;
    for _ in 0..250 {
        let (_, d) = b
            .admin(Method::GET, &format!("/v1/sessions/{id}"), None)
            .await;
        if d["state"] == "ended" {
            assert_eq!(d["end_reason"], "admin");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("session {id} never ended");
}
