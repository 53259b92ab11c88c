//! Calls through the relay for tests of the established session: a world
//! with alice and a `voicemail` service, app servers played by the test UA,
//! and a helper that establishes a call end to end.

#![allow(dead_code)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::sip::message::Message;

use super::sip_ua::{sdp_offer, Dialog, Incoming, Request, SipUa};
use super::{Engine, TestApp, DOMAIN};

pub const PASSWORD: &str = "alice-secret";

pub struct World {
    pub app: TestApp,
    pub client_id: String,
}

/// An app, alice, and a voicemail service on the given app servers (in
/// priority order) chosen by Request-URI user `voicemail`.
pub async fn world(engine: Engine, app_servers: &[&SipUa]) -> Option<World> {
    let app = TestApp::spawn(engine).await?;
    Some(world_on(app, app_servers).await)
}

/// The same on an app already started.
pub async fn world_on(app: TestApp, app_servers: &[&SipUa]) -> World {
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
        ids.push(a["id"].clone());
    }
    let service = app
        .create(
            "/v1/services",
            json!({"name": "voicemail", "app_server_ids": ids}),
        )
        .await;
    app.create(
        "/v1/rules",
        json!({"match": {"request_uri_user": "voicemail"}, "service_id": service["id"]}),
    )
    .await;
    World {
        client_id: client["id"].as_str().unwrap().to_string(),
        app,
    }
}

/// An app server: a UAS that ACKs nothing by itself.
pub async fn app_server() -> SipUa {
    let mut ua = SipUa::udp("127.0.0.1:9".parse().unwrap()).await;
    ua.auto_ack = false;
    ua
}

pub fn method_of(m: &Message) -> String {
    m.method()
        .map(|m| m.as_str().into_owned())
        .unwrap_or_default()
}

pub fn header(m: &Message, name: &str) -> String {
    String::from_utf8_lossy(m.header_value(name).unwrap_or_default()).into_owned()
}

/// Polls until the session of `client_id` reaches `state`; its detail.
pub async fn session_in(app: &TestApp, client_id: &str, state: &str) -> Value {
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

/// The next request `ua` receives with `method` (others are skipped, e.g.
/// retransmissions of an INVITE).
pub async fn next_request(ua: &mut SipUa, method: &str) -> Incoming {
    loop {
        let m = ua.accept_request().await;
        if method_of(&m) == method {
            return m;
        }
    }
}

/// The app server `as_ua` answers `invite` with 200 and an SDP answer.
pub async fn answer_200(as_ua: &mut SipUa, invite: &Incoming) {
    let answer = sdp_offer(as_ua.local_addr(), 7000);
    ok_with(as_ua, invite, &answer).await;
}

/// The app server `as_ua` answers `req` with 200 and `sdp` (again: a
/// retransmission).
pub async fn ok_with(as_ua: &mut SipUa, req: &Incoming, sdp: &str) {
    let body = Some(("application/sdp", sdp.as_bytes()));
    as_ua.respond(req, 200, "OK", &[], body).await;
}

/// The client of `call` sends `method` in its dialog with `offer` as SDP
/// body; the request sent.
pub async fn send_offer(call: &mut Call, method: &str, offer: &str) -> Request {
    let request = call
        .client
        .in_dialog(&call.client_dialog, method)
        .with_body("application/sdp", offer.as_bytes());
    call.client.send(&request).await;
    request
}

/// A call established through the relay, seen from both ends.
pub struct Call {
    pub client: SipUa,
    /// The client's INVITE (as last sent, with credentials) and the 2xx it
    /// got.
    pub invite: Request,
    pub ok: Message,
    /// The client's dialog with the relay.
    pub client_dialog: Dialog,
    /// The INVITE the app server received and its dialog with the relay.
    pub at_as: Incoming,
    pub as_dialog: Dialog,
}

/// Alice calls voicemail (`shape` may change her INVITE); the app server
/// answers with `as_headers`; everything is ACKed. The app server's own
/// requests then go to the relay.
pub async fn establish(
    w: &World,
    as_ua: &mut SipUa,
    shape: impl FnOnce(Request) -> Request,
    as_headers: &[(&str, &str)],
) -> Call {
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    let invite = shape(client.invite(&format!("sip:voicemail@{DOMAIN}"), &offer));
    let challenge = client.transact(&invite).await;
    assert_eq!(challenge.status(), Some(407));
    let invite = client.authorize(&invite, &challenge, "alice", PASSWORD, &Default::default());
    client.send(&invite).await;
    let at_as = next_request(as_ua, "INVITE").await;
    let answer = sdp_offer(as_ua.local_addr(), 7000);
    let tag = as_ua
        .respond(
            &at_as,
            200,
            "OK",
            as_headers,
            Some(("application/sdp", answer.as_bytes())),
        )
        .await;
    let ok = client.recv_final(&invite).await;
    assert_eq!(ok.status(), Some(200));
    let ack = client.ack(&invite, &ok);
    client.send(&ack).await;
    assert_eq!(method_of(&next_request(as_ua, "ACK").await.msg), "ACK");
    let client_dialog = client.uac_dialog(&invite, &ok);
    client.dialog = Some(client_dialog.clone());
    as_ua.set_server(w.app.sip);
    let as_dialog = as_ua.uas_dialog(&at_as, &tag);
    session_in(&w.app, &w.client_id, "established").await;
    Call {
        client,
        invite,
        ok,
        client_dialog,
        at_as,
        as_dialog,
    }
}

/// Polls session `id` (its detail) until `done` holds.
pub async fn session_when(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/v1/sessions/{id}");
    let mut last = Value::Null;
    for _ in 0..150 {
        last = app.admin(Method::GET, &path, None).await.1;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("session {id} never got there: {last}");
}

/// The `n` CDRs of session `id`, ordered by segment, once all are written.
pub async fn segment_cdrs(app: &TestApp, id: &str, n: usize) -> Vec<Value> {
    let path = format!("/v1/cdrs?session_id={id}");
    for _ in 0..150 {
        let page = app.admin(Method::GET, &path, None).await.1;
        if let Some(items) = page["items"].as_array().filter(|i| i.len() == n) {
            let mut items = items.clone();
            items.sort_by_key(|c| c["segment"].as_i64());
            return items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never {n} CDRs for session {id}");
}

/// Whether the session detail has an event of `kind`.
pub fn has_event(session: &Value, kind: &str) -> bool {
    session["events"]
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e["kind"] == kind))
}

/// Another service, `name`, on app server `ua` alone, chosen by a rule of
/// `priority` matching `rule_match` and setting the header `X-Service:
/// <name>` (its `set`); the app server's id.
pub async fn add_service(
    w: &World,
    ua: &SipUa,
    name: &str,
    priority: i64,
    rule_match: Value,
) -> String {
    let app_server = w
        .app
        .create(
            "/v1/app-servers",
            json!({"name": format!("{name}-as"), "uri": format!("sip:{}", ua.local_addr())}),
        )
        .await;
    let service = w
        .app
        .create(
            "/v1/services",
            json!({"name": name, "app_server_ids": [app_server["id"]]}),
        )
        .await;
    let rule = json!({"priority": priority, "match": rule_match, "service_id": service["id"],
                      "set": {"X-Service": name}});
    w.app.create("/v1/rules", rule).await;
    app_server["id"].as_str().unwrap().to_string()
}
