//! Parallel fan-out (SPEC §2 claim 7) with the project's test UA: one
//! client INVITE to a `parallel` service inquires three app servers at
//! once; each 2xx becomes its own dialog and session, all sharing one
//! request id; refusals are reduced to the best one (RFC 3261 §16.7); a
//! CANCEL reaches every app server.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::relay::{app_server, header, method_of, next_request, PASSWORD};
use common::sip_ua::{sdp_offer, Incoming, Request, SipUa};
use common::{Engine, TestApp, DOMAIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::sip::message::Message;

both_engines!(
    two_answers_become_two_sessions_of_one_request,
    all_refuse_and_the_best_refusal_is_relayed,
    cancel_reaches_every_app_server,
    cancel_after_an_answer_ends_only_the_pending,
    a_6xx_declines_for_every_app_server,
);

struct World {
    app: TestApp,
}

/// Alice, a per-second tariff, and a `parallel` service on `app_servers`
/// chosen by Request-URI user `conference`.
async fn world(engine: Engine, app_servers: &[SipUa]) -> Option<World> {
    let app = TestApp::spawn(engine).await?;
    let tariff = app.per_second_tariff().await;
    app.create(
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
        ids.push(a["id"].clone());
    }
    let service = app
        .create(
            "/v1/services",
            json!({"name": "conference", "app_server_ids": ids, "strategy": "parallel",
                   "tariff_id": tariff["id"]}),
        )
        .await;
    app.create(
        "/v1/rules",
        json!({"match": {"request_uri_user": "conference"}, "service_id": service["id"]}),
    )
    .await;
    Some(World { app })
}

async fn three_app_servers() -> Vec<SipUa> {
    vec![app_server().await, app_server().await, app_server().await]
}

/// Alice's INVITE, authorized after the relay's challenge, sent.
async fn invite_sent(client: &mut SipUa) -> Request {
    let offer = sdp_offer(client.local_addr(), 4000);
    let invite = client.invite(&format!("sip:conference@{DOMAIN}"), &offer);
    let challenge = client.transact(&invite).await;
    assert_eq!(challenge.status(), Some(407));
    let invite = client.authorize(&invite, &challenge, "alice", PASSWORD, &Default::default());
    client.send(&invite).await;
    invite
}

/// The inquiry each app server receives, all at once (nobody answered
/// yet), each for its own session.
async fn inquiries(ases: &mut [SipUa]) -> Vec<Incoming> {
    let mut all = Vec::new();
    for a in ases.iter_mut() {
        all.push(next_request(a, "INVITE").await);
    }
    let ids: HashSet<String> = all
        .iter()
        .map(|i| header(i, "X-Switchboard-Session"))
        .collect();
    assert_eq!(ids.len(), all.len(), "each app server has its own session");
    assert!(!ids.contains(""));
    all
}

fn session_of(inquiry: &Incoming) -> String {
    header(inquiry, "X-Switchboard-Session")
}

fn to_tag(m: &Message) -> String {
    m.to_header()
        .ok()
        .and_then(|t| t.tag().map(|t| String::from_utf8_lossy(t).into_owned()))
        .unwrap_or_default()
}

/// The next response to `invite` with `code` (others are skipped).
async fn response(client: &mut SipUa, invite: &Request, code: u16) -> Message {
    loop {
        let m = client.recv_response(invite).await;
        if m.status() == Some(code) {
            return m;
        }
    }
}

/// Polls session `id` until it is in `state`; its detail.
async fn session_in(app: &TestApp, id: &str, state: &str) -> Value {
    for _ in 0..150 {
        let (s, detail) = app
            .admin(Method::GET, &format!("/v1/sessions/{id}"), None)
            .await;
        if s == StatusCode::OK && detail["state"] == state {
            return detail;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("session {id} never reached {state}");
}

/// The sessions of request `request_id`, once there are `n` in `state`.
async fn sessions_of_request(app: &TestApp, request_id: &str, state: &str, n: usize) -> Vec<Value> {
    let mut last = Value::Null;
    for _ in 0..150 {
        let (s, page) = app
            .admin(
                Method::GET,
                &format!("/v1/sessions?request_id={request_id}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.iter().filter(|x| x["state"] == state).count() == n {
            return items;
        }
        last = page;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never {n} sessions {state} for request {request_id}: {last}");
}

/// The CDRs of request `request_id`, once there are `n`.
async fn cdrs_of_request(app: &TestApp, request_id: &str, n: usize) -> Vec<Value> {
    for _ in 0..150 {
        let (_, page) = app.admin(Method::GET, "/v1/cdrs", None).await;
        let items: Vec<Value> = page["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["request_id"] == request_id)
            .collect();
        if items.len() == n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never {n} CDRs for request {request_id}");
}

fn by_session<'a>(items: &'a [Value], id: &str) -> &'a Value {
    items
        .iter()
        .find(|x| x["id"] == id || x["session_id"] == id)
        .unwrap_or_else(|| panic!("nothing for session {id} in {items:?}"))
}

async fn two_answers_become_two_sessions_of_one_request(engine: Engine) {
    let mut ases = three_app_servers().await;
    let Some(w) = world(engine, &ases).await else {
        return;
    };
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let invite = invite_sent(&mut client).await;
    let inq = inquiries(&mut ases).await;

    // The first app server answers: its 2xx is the INVITE's final response.
    let sdp0 = sdp_offer(ases[0].local_addr(), 7000);
    ases[0]
        .respond(
            &inq[0],
            200,
            "OK",
            &[],
            Some(("application/sdp", sdp0.as_bytes())),
        )
        .await;
    let ok0 = client.recv_final(&invite).await;
    assert_eq!(ok0.status(), Some(200));
    assert_eq!(ok0.body(), sdp0.as_bytes());
    // The second refuses: nothing reaches the client, its session ends.
    ases[1].respond(&inq[1], 486, "Busy Here", &[], None).await;
    let refused = session_in(&w.app, &session_of(&inq[1]), "ended").await;
    assert_eq!(refused["end_reason"], "rejected");
    assert_eq!(refused["final_status"], 486);
    // The third answers too: a second 2xx on the same transaction, its own
    // dialog (To tag) and its own answer.
    let sdp2 = sdp_offer(ases[2].local_addr(), 7002);
    ases[2]
        .respond(
            &inq[2],
            200,
            "OK",
            &[],
            Some(("application/sdp", sdp2.as_bytes())),
        )
        .await;
    let ok2 = response(&mut client, &invite, 200).await;
    assert_eq!(ok2.body(), sdp2.as_bytes());
    assert_ne!(to_tag(&ok0), to_tag(&ok2), "each 2xx is its own dialog");
    assert!(!to_tag(&ok0).is_empty() && !to_tag(&ok2).is_empty());

    // The client ACKs both: each ACK reaches its own app server only.
    for (ok, at) in [(&ok0, 0usize), (&ok2, 2)] {
        let ack = client.ack(&invite, ok);
        client.send(&ack).await;
        assert_eq!(
            method_of(&next_request(&mut ases[at], "ACK").await.msg),
            "ACK"
        );
    }
    let first = session_in(&w.app, &session_of(&inq[0]), "established").await;
    let request_id = first["request_id"].as_str().unwrap().to_string();
    let listed = sessions_of_request(&w.app, &request_id, "established", 2).await;
    assert_eq!(listed.len(), 3, "one session per app server: {listed:?}");
    assert_eq!(
        by_session(&listed, &session_of(&inq[2]))["state"],
        "established"
    );
    assert_eq!(by_session(&listed, &session_of(&inq[1]))["state"], "ended");
    assert_ne!(
        by_session(&listed, &session_of(&inq[0]))["app_server_id"],
        by_session(&listed, &session_of(&inq[2]))["app_server_id"]
    );

    // Hung up one after the other, each in its own dialog.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (ok, at) in [(&ok0, 0usize), (&ok2, 2)] {
        let dialog = client.uac_dialog(&invite, ok);
        let bye = client.in_dialog(&dialog, "BYE");
        client.send(&bye).await;
        let at_as = next_request(&mut ases[at], "BYE").await;
        ases[at].respond(&at_as, 200, "OK", &[], None).await;
        assert_eq!(client.recv_final(&bye).await.status(), Some(200));
    }
    let ended = sessions_of_request(&w.app, &request_id, "ended", 3).await;
    for at in [0, 2] {
        assert_eq!(
            by_session(&ended, &session_of(&inq[at]))["end_reason"],
            "client_bye"
        );
    }

    let cdrs = cdrs_of_request(&w.app, &request_id, 3).await;
    for at in [0, 2] {
        let cdr = by_session(&cdrs, &session_of(&inq[at]));
        assert_eq!(cdr["end_reason"], "client_bye");
        assert_eq!(cdr["final_status"], 200);
        assert!(cdr["billed_seconds"].as_i64().unwrap() >= 1, "{cdr}");
    }
    let unanswered = by_session(&cdrs, &session_of(&inq[1]));
    assert_eq!(unanswered["billed_seconds"], 0);
    assert_eq!(unanswered["final_status"], 486);
}

async fn all_refuse_and_the_best_refusal_is_relayed(engine: Engine) {
    let mut ases = three_app_servers().await;
    let Some(w) = world(engine, &ases).await else {
        return;
    };
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);

    // 486, 503, 404 (in this order): the lowest class is 4xx, and of it
    // the first to come (RFC 3261 §16.7).
    let invite = invite_sent(&mut client).await;
    let inq = inquiries(&mut ases).await;
    for (at, code, reason) in [
        (0, 486, "Busy Here"),
        (1, 503, "Service Unavailable"),
        (2, 404, "Not Found"),
    ] {
        ases[at].respond(&inq[at], code, reason, &[], None).await;
        if at < 2 {
            session_in(&w.app, &session_of(&inq[at]), "ended").await;
        }
    }
    let resp = client.recv_final(&invite).await;
    assert_eq!(resp.status(), Some(486));
    let detail = session_in(&w.app, &session_of(&inq[0]), "ended").await;
    let request_id = detail["request_id"].as_str().unwrap().to_string();
    let ended = sessions_of_request(&w.app, &request_id, "ended", 3).await;
    let statuses: Vec<i64> = inq
        .iter()
        .map(|i| {
            by_session(&ended, &session_of(i))["final_status"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        statuses,
        [486, 503, 404],
        "each session keeps its own answer"
    );
    assert_eq!(
        by_session(&ended, &session_of(&inq[1]))["end_reason"],
        "as_failure"
    );
    let cdrs = cdrs_of_request(&w.app, &request_id, 3).await;
    assert!(cdrs.iter().all(|c| c["billed_seconds"] == 0), "{cdrs:?}");

    // Only 503s: a 503 is never passed on, the client gets 500.
    let invite = invite_sent(&mut client).await;
    let inq = inquiries(&mut ases).await;
    for (a, i) in ases.iter_mut().zip(&inq) {
        a.respond(i, 503, "Service Unavailable", &[], None).await;
    }
    assert_eq!(client.recv_final(&invite).await.status(), Some(500));
}

async fn cancel_reaches_every_app_server(engine: Engine) {
    let mut ases = three_app_servers().await;
    let Some(w) = world(engine, &ases).await else {
        return;
    };
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let invite = invite_sent(&mut client).await;
    let inq = inquiries(&mut ases).await;
    for (a, i) in ases.iter_mut().zip(&inq) {
        a.respond(i, 180, "Ringing", &[], None).await;
    }
    // Each app server rings in its own early dialog.
    let mut tags = HashSet::new();
    while tags.len() < 3 {
        tags.insert(to_tag(&response(&mut client, &invite, 180).await));
    }

    let cancel = client.cancel(&invite);
    client.send(&cancel).await;
    for (a, i) in ases.iter_mut().zip(&inq) {
        let c = next_request(a, "CANCEL").await;
        assert_eq!(header(&c, "Call-ID"), header(i, "Call-ID"));
        a.respond(&c, 200, "OK", &[], None).await;
        a.respond(i, 487, "Request Terminated", &[], None).await;
    }
    assert_eq!(client.recv_response(&cancel).await.status(), Some(200));
    assert_eq!(client.recv_final(&invite).await.status(), Some(487));

    let detail = session_in(&w.app, &session_of(&inq[0]), "ended").await;
    let request_id = detail["request_id"].as_str().unwrap().to_string();
    let ended = sessions_of_request(&w.app, &request_id, "ended", 3).await;
    for s in &ended {
        assert_eq!(s["end_reason"], "cancel");
        assert_eq!(s["final_status"], 487);
        assert!(s["answered_at"].is_null());
    }
    let cdrs = cdrs_of_request(&w.app, &request_id, 3).await;
    for c in &cdrs {
        assert_eq!(c["billed_seconds"], 0);
        assert_eq!(c["end_reason"], "cancel");
    }
}

async fn cancel_after_an_answer_ends_only_the_pending(engine: Engine) {
    let mut ases = three_app_servers().await;
    let Some(w) = world(engine, &ases).await else {
        return;
    };
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let invite = invite_sent(&mut client).await;
    let inq = inquiries(&mut ases).await;
    for (a, i) in ases.iter_mut().zip(&inq).skip(1) {
        a.respond(i, 180, "Ringing", &[], None).await;
    }
    ases[0].answer_with_sdp(&inq[0], 7000).await;
    let ok = client.recv_final(&invite).await;
    assert_eq!(ok.status(), Some(200));
    let ack = client.ack(&invite, &ok);
    client.send(&ack).await;
    next_request(&mut ases[0], "ACK").await;

    // The client gives up on the others: they are cancelled, its session
    // with the first stays.
    let cancel = client.cancel(&invite);
    client.send(&cancel).await;
    assert_eq!(client.recv_response(&cancel).await.status(), Some(200));
    for (a, i) in ases.iter_mut().zip(&inq).skip(1) {
        let c = next_request(a, "CANCEL").await;
        a.respond(&c, 200, "OK", &[], None).await;
        a.respond(i, 487, "Request Terminated", &[], None).await;
    }
    for i in &inq[1..] {
        let s = session_in(&w.app, &session_of(i), "ended").await;
        assert_eq!(s["end_reason"], "cancel");
    }
    let answered = session_in(&w.app, &session_of(&inq[0]), "established").await;
    assert!(!answered["answered_at"].is_null());
    while let Ok(m) = client.recv_within(Duration::from_millis(300)).await {
        assert_ne!(m.status(), Some(487), "the INVITE already had its 2xx");
    }

    let dialog = client.uac_dialog(&invite, &ok);
    let bye = client.in_dialog(&dialog, "BYE");
    client.send(&bye).await;
    let at_as = next_request(&mut ases[0], "BYE").await;
    ases[0].respond(&at_as, 200, "OK", &[], None).await;
    assert_eq!(client.recv_final(&bye).await.status(), Some(200));
    let ended = session_in(&w.app, &session_of(&inq[0]), "ended").await;
    assert_eq!(ended["end_reason"], "client_bye");
}

async fn a_6xx_declines_for_every_app_server(engine: Engine) {
    let mut ases = three_app_servers().await;
    let Some(w) = world(engine, &ases).await else {
        return;
    };
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let invite = invite_sent(&mut client).await;
    let inq = inquiries(&mut ases).await;
    for (a, i) in ases.iter_mut().zip(&inq).skip(1) {
        a.respond(i, 180, "Ringing", &[], None).await;
    }
    ases[0].respond(&inq[0], 603, "Decline", &[], None).await;
    // RFC 3261 §16.7: the others are cancelled at once, the 6xx relayed.
    for (a, i) in ases.iter_mut().zip(&inq).skip(1) {
        let c = next_request(a, "CANCEL").await;
        a.respond(&c, 200, "OK", &[], None).await;
        a.respond(i, 487, "Request Terminated", &[], None).await;
    }
    assert_eq!(client.recv_final(&invite).await.status(), Some(603));
    let first = session_in(&w.app, &session_of(&inq[0]), "ended").await;
    assert_eq!(first["final_status"], 603);
    for i in &inq[1..] {
        let s = session_in(&w.app, &session_of(i), "ended").await;
        assert_eq!(s["end_reason"], "declined");
    }
}
