//! Calls through the relay with the project's test UA on both sides: the
//! client (digest auth) and the app servers (UAS), over real sockets.

mod common;

use std::time::Duration;

use common::sip_ua::{sdp_offer, Incoming, SipUa};
use common::{Engine, TestApp, DOMAIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    call_answered_and_hung_up_by_the_client,
    bye_from_the_app_server,
    failover_to_the_next_app_server,
    when_every_app_server_refuses_the_best_refusal_is_relayed,
    cancel_before_the_answer,
    refusals_before_any_inquiry,
    admin_terminates_a_session,
);

const PASSWORD: &str = "alice-secret";

struct World {
    app: TestApp,
    client_id: String,
    service_id: String,
}

/// An app, alice, and a voicemail service on the given app servers (in
/// priority order) chosen by Request-URI user `voicemail`.
async fn world(engine: Engine, app_servers: &[&SipUa]) -> Option<World> {
    let app = TestApp::spawn(engine).await?;
    let client = app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": PASSWORD, "display_name": "Alice"}),
        )
        .await;
    let mut ids = Vec::new();
    for (i, ua) in app_servers.iter().enumerate() {
        let a = app
            .create(
                "/v1/app-servers",
                json!({"name": format!("as{i}"), "uri": format!("sip:{}", ua.local_addr()), "priority": i * 10}),
            )
            .await;
        ids.push(a["id"].as_str().unwrap().to_string());
    }
    let service = app
        .create(
            "/v1/services",
            json!({"name": "voicemail", "app_server_ids": ids}),
        )
        .await;
    let service_id = service["id"].as_str().unwrap().to_string();
    app.create(
        "/v1/rules",
        json!({"match": {"request_uri_user": "voicemail"}, "service_id": service_id, "set": {"X-Tier": "gold"}}),
    )
    .await;
    Some(World {
        client_id: client["id"].as_str().unwrap().to_string(),
        service_id,
        app,
    })
}

async fn app_server() -> SipUa {
    let mut ua = SipUa::udp("127.0.0.1:9".parse().unwrap()).await;
    ua.auto_ack = false;
    ua
}

/// Polls until the session of `client_id` reaches `state`.
async fn session_in(app: &TestApp, client_id: &str, state: &str) -> Value {
    for _ in 0..150 {
        let (s, page) = app
            .admin(
                Method::GET,
                &format!("/v1/sessions?client_id={client_id}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        if let Some(found) = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["state"] == state)
        {
            let id = found["id"].as_str().unwrap();
            return app
                .admin(Method::GET, &format!("/v1/sessions/{id}"), None)
                .await
                .1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no session of {client_id} reached {state}");
}

fn header(m: &Incoming, name: &str) -> String {
    String::from_utf8_lossy(m.header_value(name).unwrap_or_default()).into_owned()
}

fn event_kinds(detail: &Value) -> Vec<String> {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Every leg and the last segment of an ended session end when the
/// session does (both hang-ups end the two dialogs at once).
fn assert_legs_ended_with_session(detail: &Value) {
    let ended = &detail["ended_at"];
    assert!(ended.is_string(), "{detail}");
    let legs = detail["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 2, "{detail}");
    for leg in legs {
        assert_eq!(&leg["ended_at"], ended, "leg {leg}");
    }
    let segments = detail["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 1, "{detail}");
    assert_eq!(&segments[0]["ended_at"], ended, "{detail}");
}

/// The AS side of an answered call: checks the inquiry, rings, answers.
async fn answer(as_ua: &mut SipUa, client_sdp: &str, client: &SipUa) -> (Incoming, String) {
    let invite = as_ua.accept_request().await;
    assert_eq!(
        invite.method().map(|m| m.as_str().into_owned()),
        Some("INVITE".to_string())
    );
    assert_eq!(
        invite.body(),
        client_sdp.as_bytes(),
        "the client's SDP reaches the AS unchanged"
    );
    assert_eq!(
        header(&invite, "P-Asserted-Identity"),
        format!("\"Alice\" <sip:alice@{DOMAIN}>")
    );
    assert_eq!(header(&invite, "X-Tier"), "gold");
    assert!(!header(&invite, "X-Switchboard-Session").is_empty());
    // Topology hiding: nothing of the client's address reaches the AS.
    let raw = String::from_utf8_lossy(invite.as_bytes()).into_owned();
    let client_port = client.local_addr().port().to_string();
    assert!(
        !raw.contains(&format!(":{client_port}")),
        "client address leaked to the AS:\n{raw}"
    );
    as_ua.respond(&invite, 180, "Ringing", &[], None).await;
    let answer_sdp = sdp_offer(as_ua.local_addr(), 7000);
    let tag = as_ua
        .respond(
            &invite,
            200,
            "OK",
            &[],
            Some(("application/sdp", answer_sdp.as_bytes())),
        )
        .await;
    (invite, tag)
}

async fn call_answered_and_hung_up_by_the_client(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    let uri = format!("sip:voicemail@{DOMAIN}");
    let offer2 = offer.clone();
    let caller = tokio::spawn(async move {
        let (_, resp) = client.call(&uri, &offer2, Some(("alice", PASSWORD))).await;
        (client, resp)
    });
    let probe = SipUa::udp(w.app.sip).await;
    let (_invite, _) = answer(&mut as_ua, &offer, &probe).await;
    let (mut client, resp) = caller.await.unwrap();
    assert_eq!(resp.status(), Some(200));
    assert_eq!(
        resp.body(),
        sdp_offer(as_ua.local_addr(), 7000).as_bytes(),
        "the AS's answer reaches the client unchanged"
    );
    let raw = String::from_utf8_lossy(resp.as_bytes()).into_owned();
    assert!(
        !raw.contains(&format!(":{}", as_ua.local_addr().port())),
        "AS address leaked to the client:\n{raw}"
    );
    let ack = as_ua.accept_request().await;
    assert_eq!(
        ack.method().map(|m| m.as_str().into_owned()),
        Some("ACK".to_string())
    );
    session_in(&w.app, &w.client_id, "established").await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    let bye = client.bye();
    let bye_answer = tokio::spawn(async move {
        let r = client.transact(&bye).await;
        (client, r)
    });
    let as_bye = as_ua.accept_request().await;
    assert_eq!(
        as_bye.method().map(|m| m.as_str().into_owned()),
        Some("BYE".to_string())
    );
    as_ua.respond(&as_bye, 200, "OK", &[], None).await;
    let (_client, r) = bye_answer.await.unwrap();
    assert_eq!(r.status(), Some(200));

    let detail = session_in(&w.app, &w.client_id, "ended").await;
    assert_eq!(detail["end_reason"], "client_bye");
    assert_eq!(detail["final_status"], 200);
    assert_eq!(detail["service_id"], w.service_id.as_str());
    let duration = detail["duration_ms"].as_i64().unwrap();
    assert!((300..2000).contains(&duration), "duration {duration} ms");
    assert_eq!(
        event_kinds(&detail),
        [
            "created",
            "inquiry",
            "ringing",
            "answered",
            "established",
            "ended"
        ]
    );
    let kinds: Vec<_> = detail["legs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["client", "as"]);
    assert_legs_ended_with_session(&detail);
    assert_ne!(
        detail["client_call_id"], detail["as_call_id"],
        "each leg has its own Call-ID"
    );
}

async fn bye_from_the_app_server(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    let uri = format!("sip:voicemail@{DOMAIN}");
    let offer2 = offer.clone();
    let caller = tokio::spawn(async move {
        let (_, resp) = client.call(&uri, &offer2, Some(("alice", PASSWORD))).await;
        (client, resp)
    });
    let probe = SipUa::udp(w.app.sip).await;
    let (invite, tag) = answer(&mut as_ua, &offer, &probe).await;
    let (mut client, resp) = caller.await.unwrap();
    assert_eq!(resp.status(), Some(200));
    as_ua.accept_request().await; // ACK
    session_in(&w.app, &w.client_id, "established").await;

    let dialog = as_ua.uas_dialog(&invite, &tag);
    as_ua.set_server(w.app.sip);
    let bye = as_ua.in_dialog(&dialog, "BYE");
    as_ua.send(&bye).await;
    let client_bye = client.accept_request().await;
    assert_eq!(
        client_bye.method().map(|m| m.as_str().into_owned()),
        Some("BYE".to_string())
    );
    client.respond(&client_bye, 200, "OK", &[], None).await;
    assert_eq!(as_ua.recv_final(&bye).await.status(), Some(200));
    let detail = session_in(&w.app, &w.client_id, "ended").await;
    assert_eq!(detail["end_reason"], "as_bye");
    assert_legs_ended_with_session(&detail);
}

async fn failover_to_the_next_app_server(engine: Engine) {
    let mut first = app_server().await;
    let mut second = app_server().await;
    let Some(w) = world(engine, &[&first, &second]).await else {
        return;
    };
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    let uri = format!("sip:voicemail@{DOMAIN}");
    let offer2 = offer.clone();
    let caller = tokio::spawn(async move {
        let (_, resp) = client.call(&uri, &offer2, Some(("alice", PASSWORD))).await;
        (client, resp)
    });
    let invite = first.accept_request().await;
    first
        .respond(&invite, 503, "Service Unavailable", &[], None)
        .await;
    let probe = SipUa::udp(w.app.sip).await;
    answer(&mut second, &offer, &probe).await;
    let (_client, resp) = caller.await.unwrap();
    assert_eq!(resp.status(), Some(200), "the client never sees the 503");
    let detail = session_in(&w.app, &w.client_id, "established").await;
    let legs = detail["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 3, "client leg and two AS legs");
    assert_ne!(legs[1]["app_server_id"], legs[2]["app_server_id"]);
    assert_eq!(detail["app_server_id"], legs[2]["app_server_id"]);
}

/// RFC 3261 §16.7 with failover: the first app server's 503 moves on to
/// the second; when that one fails too (500), the client gets the better
/// refusal, the 500, never the 503 (which would say Switchboard itself is
/// unavailable). A lone 503 reaches the client as 500.
async fn when_every_app_server_refuses_the_best_refusal_is_relayed(engine: Engine) {
    for (second_says, client_gets) in [(Some(500), 500), (None, 500)] {
        let mut first = app_server().await;
        let mut second = app_server().await;
        let servers: Vec<&SipUa> = match second_says {
            Some(_) => vec![&first, &second],
            None => vec![&first],
        };
        let Some(w) = world(engine, &servers).await else {
            return;
        };
        let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
        let offer = sdp_offer(client.local_addr(), 4000);
        let uri = format!("sip:voicemail@{DOMAIN}");
        let caller = tokio::spawn(async move {
            let (_, resp) = client.call(&uri, &offer, Some(("alice", PASSWORD))).await;
            resp
        });
        let invite = first.accept_request().await;
        first
            .respond(&invite, 503, "Service Unavailable", &[], None)
            .await;
        if let Some(code) = second_says {
            let invite = second.accept_request().await;
            second.respond(&invite, code, "Oops", &[], None).await;
        }
        let resp = caller.await.unwrap();
        assert_eq!(resp.status(), Some(client_gets), "{second_says:?}");
        let detail = session_in(&w.app, &w.client_id, "ended").await;
        assert_eq!(detail["final_status"], client_gets);
    }
}

async fn cancel_before_the_answer(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    // Authenticate first, then send the INVITE that will be cancelled.
    let invite = client.invite(&format!("sip:voicemail@{DOMAIN}"), &offer);
    let challenge = client.transact(&invite).await;
    assert_eq!(challenge.status(), Some(407));
    let invite = client.authorize(&invite, &challenge, "alice", PASSWORD, &Default::default());
    client.send(&invite).await;
    let as_invite = as_ua.accept_request().await;
    as_ua.respond(&as_invite, 180, "Ringing", &[], None).await;
    assert_eq!(client.recv_response(&invite).await.status(), Some(100));
    let ringing = client.recv_response(&invite).await;
    assert_eq!(ringing.status(), Some(180));

    let cancel = client.cancel(&invite);
    client.send(&cancel).await;
    let as_cancel = as_ua.accept_request().await;
    assert_eq!(
        as_cancel.method().map(|m| m.as_str().into_owned()),
        Some("CANCEL".to_string())
    );
    as_ua.respond(&as_cancel, 200, "OK", &[], None).await;
    as_ua
        .respond(&as_invite, 487, "Request Terminated", &[], None)
        .await;
    assert_eq!(client.recv_response(&cancel).await.status(), Some(200));
    assert_eq!(client.recv_final(&invite).await.status(), Some(487));
    let detail = session_in(&w.app, &w.client_id, "ended").await;
    assert_eq!(detail["end_reason"], "cancel");
    assert_eq!(detail["final_status"], 487);
    assert!(detail["duration_ms"].is_null(), "never answered");
}

async fn refusals_before_any_inquiry(engine: Engine) {
    let as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    // Wrong password: challenged again, never routed.
    let (_, resp) = client
        .call(
            &format!("sip:voicemail@{DOMAIN}"),
            &offer,
            Some(("alice", "wrong-password")),
        )
        .await;
    assert_eq!(resp.status(), Some(407));
    // No rule for this user.
    let (_, resp) = client
        .call(
            &format!("sip:nobody@{DOMAIN}"),
            &offer,
            Some(("alice", PASSWORD)),
        )
        .await;
    assert_eq!(resp.status(), Some(404));
    // The only app server disabled: 503 with Retry-After.
    let (_, list) = w.app.admin(Method::GET, "/v1/app-servers", None).await;
    let as_id = list["items"][0]["id"].as_str().unwrap().to_string();
    w.app
        .admin(
            Method::PATCH,
            &format!("/v1/app-servers/{as_id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    let (_, resp) = client
        .call(
            &format!("sip:voicemail@{DOMAIN}"),
            &offer,
            Some(("alice", PASSWORD)),
        )
        .await;
    assert_eq!(resp.status(), Some(503));
    assert!(resp.header_value("Retry-After").is_some());
    // A disabled client.
    w.app
        .admin(
            Method::PATCH,
            &format!("/v1/clients/{}", w.client_id),
            Some(json!({"enabled": false})),
        )
        .await;
    let (_, resp) = client
        .call(
            &format!("sip:voicemail@{DOMAIN}"),
            &offer,
            Some(("alice", PASSWORD)),
        )
        .await;
    assert_eq!(resp.status(), Some(403));
    let (_, sessions) = w.app.admin(Method::GET, "/v1/sessions", None).await;
    assert_eq!(
        sessions["items"],
        json!([]),
        "refused requests create no session"
    );
}

async fn admin_terminates_a_session(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    let uri = format!("sip:voicemail@{DOMAIN}");
    let offer2 = offer.clone();
    let caller = tokio::spawn(async move {
        let (_, resp) = client.call(&uri, &offer2, Some(("alice", PASSWORD))).await;
        (client, resp)
    });
    let probe = SipUa::udp(w.app.sip).await;
    answer(&mut as_ua, &offer, &probe).await;
    let (mut client, resp) = caller.await.unwrap();
    assert_eq!(resp.status(), Some(200));
    as_ua.accept_request().await; // ACK
    let detail = session_in(&w.app, &w.client_id, "established").await;
    let id = detail["id"].as_str().unwrap().to_string();
    let (s, _) = w
        .app
        .admin(Method::DELETE, &format!("/v1/sessions/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let to_as = as_ua.accept_request().await;
    assert_eq!(
        to_as.method().map(|m| m.as_str().into_owned()),
        Some("BYE".to_string())
    );
    as_ua.respond(&to_as, 200, "OK", &[], None).await;
    let to_client = client.accept_request().await;
    assert_eq!(
        to_client.method().map(|m| m.as_str().into_owned()),
        Some("BYE".to_string())
    );
    client.respond(&to_client, 200, "OK", &[], None).await;
    let detail = session_in(&w.app, &w.client_id, "ended").await;
    assert_eq!(detail["end_reason"], "admin");
    let (s, _) = w
        .app
        .admin(Method::DELETE, &format!("/v1/sessions/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_dead_first_app_server_costs_the_response_timeout_only() {
    let db = common::TestDb::new(Engine::Sqlite).await.expect("sqlite");
    let mut settings = common::test_settings(&db.url);
    settings.as_response_timeout_ms = 300;
    let app = TestApp::spawn_with(db, settings).await;
    app.create(
        "/v1/clients",
        json!({"username": "alice", "password": PASSWORD, "display_name": "Alice"}),
    )
    .await;
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut second = app_server().await;
    let a = app
        .create("/v1/app-servers", json!({"name": "dead", "uri": format!("sip:{}", dead.local_addr().unwrap()), "priority": 1}))
        .await;
    let b = app
        .create(
            "/v1/app-servers",
            json!({"name": "alive", "uri": format!("sip:{}", second.local_addr()), "priority": 2}),
        )
        .await;
    let service = app
        .create(
            "/v1/services",
            json!({"name": "vm", "app_server_ids": [a["id"], b["id"]]}),
        )
        .await;
    app.create(
        "/v1/rules",
        json!({"service_id": service["id"], "set": {"X-Tier": "gold"}}),
    )
    .await;

    let mut client = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    let uri = format!("sip:voicemail@{DOMAIN}");
    let offer2 = offer.clone();
    let started = tokio::time::Instant::now();
    let caller = tokio::spawn(async move {
        let (_, resp) = client.call(&uri, &offer2, Some(("alice", PASSWORD))).await;
        (client, resp)
    });
    let probe = SipUa::udp(app.sip).await;
    answer(&mut second, &offer, &probe).await;
    let (_client, resp) = caller.await.unwrap();
    assert_eq!(resp.status(), Some(200));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "failover took {took:?}");
    let mut buf = [0u8; 4096];
    dead.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (n, _) = dead
        .recv_from(&mut buf)
        .expect("the dead app server was tried first");
    assert!(buf[..n].starts_with(b"INVITE "));
}
