//! sipp on both sides of the relay, over real sockets: a sipp client
//! (digest authentication) calls through Switchboard to a sipp app server
//! (UAS); every call succeeds, and the sessions with their events are
//! published over REST.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::sipp::{spawn_answering_as, AuthenticatedCalls};
use common::{Engine, TestApp, DOMAIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(sipp_calls_through_the_relay);

const PASSWORD: &str = "alice-secret";
const CALLS: usize = 20;

/// Polls until `client_id` has `n` sessions, all ended (publishing is
/// asynchronous); returns their details.
async fn ended_sessions(app: &TestApp, client_id: &str, n: usize) -> Vec<Value> {
    let mut last = Value::Null;
    for _ in 0..250 {
        let (s, page) = app
            .admin(
                Method::GET,
                &format!("/v1/sessions?client_id={client_id}&limit=100"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        if items.len() == n && items.iter().all(|x| x["state"] == "ended") {
            let mut details = Vec::new();
            for x in items {
                let id = x["id"].as_str().unwrap();
                let (s, d) = app
                    .admin(Method::GET, &format!("/v1/sessions/{id}"), None)
                    .await;
                assert_eq!(s, StatusCode::OK, "{d}");
                details.push(d);
            }
            return details;
        }
        last = page;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the sessions of {client_id} never were {n}, all ended; last page: {last:#}");
}

async fn sipp_calls_through_the_relay(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": PASSWORD, "display_name": "Alice"}),
        )
        .await;
    let alice = alice["id"].as_str().unwrap().to_string();
    let Some((uas, uas_port)) = spawn_answering_as(CALLS, Duration::from_secs(20)).await else {
        return;
    };
    let as_ = app
        .create(
            "/v1/app-servers",
            json!({"name": "sipp-uas", "uri": format!("sip:127.0.0.1:{uas_port}")}),
        )
        .await;
    let service = app
        .create(
            "/v1/services",
            json!({"name": "voicemail", "app_server_ids": [as_["id"]]}),
        )
        .await;
    app.create(
        "/v1/rules",
        json!({"match": {"request_uri_user": "voicemail"}, "service_id": service["id"], "set": {"X-Tier": "gold"}}),
    )
    .await;

    let calls = AuthenticatedCalls {
        server: app.sip,
        service: "voicemail",
        user: "alice",
        password: PASSWORD,
        domain: DOMAIN,
        calls: CALLS,
        rate: 10,
        hold_ms: 200,
        within: Duration::from_secs(15),
    };
    let Some(uac) = calls.spawn().await else {
        return;
    };
    let uac = uac.wait().await;
    if !uac.success {
        let uas = uas.wait_at_most(Duration::from_secs(1)).await;
        panic!(
            "sipp UAC failed:\n{}\n\nsipp UAS:\n{}",
            uac.report(),
            uas.report()
        );
    }
    let uas = uas.wait().await;
    assert!(uas.success, "sipp UAS:\n{}", uas.report());
    assert!(
        uas.messages.contains("P-Asserted-Identity:")
            && uas.messages.contains("X-Switchboard-Session:")
            && uas.messages.contains("X-Tier: gold"),
        "the inquiries lack the asserted identity or rule attributes:\n{}",
        uas.messages
    );

    let sessions = ended_sessions(&app, &alice, CALLS).await;
    let mut call_ids = HashSet::new();
    for d in &sessions {
        let id = &d["id"];
        assert_eq!(d["end_reason"], "client_bye", "session {id}: {d:#}");
        assert_eq!(d["final_status"], 200, "session {id}: {d:#}");
        assert_eq!(d["service_id"], service["id"], "session {id}");
        assert_eq!(d["app_server_id"], as_["id"], "session {id}");
        let duration = d["duration_ms"].as_i64().unwrap_or(-1);
        assert!(
            (150..10_000).contains(&duration),
            "session {id}: duration {duration} ms"
        );
        let kinds: Vec<&str> = d["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "created",
                "inquiry",
                "ringing",
                "answered",
                "established",
                "ended"
            ],
            "session {id}"
        );
        let (client_cid, as_cid) = (
            d["client_call_id"].as_str().unwrap(),
            d["as_call_id"].as_str().unwrap(),
        );
        assert_ne!(client_cid, as_cid, "session {id}: one Call-ID per leg");
        assert!(
            call_ids.insert(client_cid.to_string()),
            "{client_cid} twice"
        );
        assert!(call_ids.insert(as_cid.to_string()), "{as_cid} twice");
        // The client leg's Call-ID is sipp's own.
        assert!(
            uac.messages.contains(&format!("Call-ID: {client_cid}")),
            "session {id}: client Call-ID {client_cid} not sent by sipp"
        );
        assert!(
            uas.messages.contains(&format!("Call-ID: {as_cid}")),
            "session {id}: AS Call-ID {as_cid} not seen by the sipp UAS"
        );
    }
}
