//! The Switchboard process is killed (SIGKILL) with live sessions and
//! started again on the same database: the sessions it held end with reason
//! `restart`, billed up to the last moment the node was known alive, and
//! each has its CDR.

mod common;

use std::time::Duration;

use common::process::{free_sip_port, free_tcp_port, SwitchboardProcess};
use common::sip_ua::{sdp_offer, SipUa};
use common::{test_settings, Engine, TestApp, TestDb, DOMAIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(sessions_cut_by_a_kill_end_with_reason_restart);

const PASSWORD: &str = "alice-secret";

async fn sessions(app: &TestApp, client_id: &str) -> Vec<Value> {
    let (s, page) = app
        .admin(
            Method::GET,
            &format!("/v1/sessions?client_id={client_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn sessions_cut_by_a_kill_end_with_reason_restart(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let (sip_port, http_port) = (free_sip_port(), free_tcp_port());
    let spool = db.spool_dir.clone();
    let first = SwitchboardProcess::start(&db.url, &spool, sip_port, http_port).await;
    let (base, sip) = (first.base.clone(), first.sip);
    let settings = test_settings(&db.url);
    let app = TestApp::attach(db, settings, base, sip).await;

    let tariff = app.per_second_tariff().await;
    let alice = app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    let alice = alice["id"].as_str().unwrap().to_string();
    let mut as_ua = SipUa::udp("127.0.0.1:9".parse().unwrap()).await;
    as_ua.auto_ack = false;
    app.catch_all_service(&format!("sip:{}", as_ua.local_addr()), &tariff)
        .await;

    // An established call.
    let mut caller = SipUa::udp(sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(caller.local_addr(), 4000);
    let uri = format!("sip:svc@{DOMAIN}");
    let talking = tokio::spawn(async move {
        let (_, resp) = caller.call(&uri, &offer, Some(("alice", PASSWORD))).await;
        (caller, resp, tokio::time::Instant::now())
    });
    let invite = as_ua.accept_request().await;
    as_ua.answer_with_sdp(&invite, 7000).await;
    let (_caller, resp, acked) = talking.await.unwrap();
    assert_eq!(resp.status(), Some(200));
    as_ua.accept_request().await; // ACK

    // A call still ringing.
    let mut ringer = SipUa::udp(sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(ringer.local_addr(), 4002);
    let uri = format!("sip:svc@{DOMAIN}");
    let ringing = tokio::spawn(async move {
        ringer.call(&uri, &offer, Some(("alice", PASSWORD))).await;
    });
    let invite = as_ua.accept_request().await;
    as_ua.respond(&invite, 180, "Ringing", &[], None).await;

    // Both are published before the kill.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let live = sessions(&app, &alice).await;
        let states: Vec<&str> = live.iter().filter_map(|s| s["state"].as_str()).collect();
        if states.len() == 2 && states.contains(&"established") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions never published: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let killed = tokio::time::Instant::now();
    first.kill().await;
    ringing.abort();
    let held = (killed - acked).as_millis() as i64;

    // The next start closes them.
    let _second = SwitchboardProcess::start(&app.db.url, &spool, sip_port, http_port).await;
    let ended = sessions(&app, &alice).await;
    assert_eq!(ended.len(), 2, "{ended:#?}");
    for s in &ended {
        assert_eq!(s["state"], "ended", "{s:#}");
        assert_eq!(s["end_reason"], "restart", "{s:#}");
    }
    let answered = ended
        .iter()
        .find(|s| !s["answered_at"].is_null())
        .expect("the established session");
    let duration = answered["duration_ms"].as_i64().unwrap();
    // Billed up to the last heartbeat (one a second) before the kill.
    assert!(
        (held - 1_200..=held).contains(&duration),
        "duration {duration} ms, held {held} ms before the kill"
    );

    // On PostgreSQL a CDR is listed once every transaction older than it
    // has ended (the cursor's guarantee): poll.
    let mut page = Value::Null;
    for _ in 0..250 {
        let (s, p) = app.admin(Method::GET, "/v1/cdrs", None).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        page = p;
        if page["items"].as_array().is_some_and(|i| i.len() >= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cdrs = page["items"].as_array().unwrap();
    assert_eq!(cdrs.len(), 2, "one CDR per session: {page:#}");
    for c in cdrs {
        assert_eq!(c["end_reason"], "restart", "{c:#}");
        if c["session_id"] == answered["id"] {
            assert_eq!(c["duration_ms"], duration);
            let billed = c["billed_seconds"].as_i64().unwrap();
            assert_eq!(billed, (duration + 999) / 1000);
            assert_eq!(c["amount"], format!("0.{billed:02}"));
        } else {
            assert_eq!(c["billed_seconds"], 0, "unanswered: {c:#}");
            assert_eq!(c["amount"], "0");
        }
    }
    let (s, detail) = app
        .admin(
            Method::GET,
            &format!("/v1/sessions/{}", answered["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let last = detail["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "ended");
    assert_eq!(last["detail"], "restart");
    assert!(
        detail["legs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| !l["ended_at"].is_null()),
        "every leg is closed: {detail:#}"
    );
}
