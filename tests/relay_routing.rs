//! Rule search on real calls: the rule chosen by Request-URI user, by a
//! header or by SDP media decides which app server is inquired and which
//! attributes it receives; and a client's `max_sessions` limits its live
//! calls. The project's test UA plays the client and three app servers.

mod common;

use std::time::Duration;

use common::sip_ua::{sdp_offer, AuthOptions, Incoming, RecvError, Request, SipUa};
use common::{Engine, TestApp, DOMAIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::sip::message::Message;

both_engines!(rules_choose_the_app_server, max_sessions_limits_live_calls);

const PASSWORD: &str = "alice-secret";
/// How long an app server that should not be inquired is watched.
const QUIET: Duration = Duration::from_millis(300);

/// Three app servers, each alone in its own service, each chosen by one
/// kind of rule.
struct World {
    app: TestApp,
    client_id: String,
    /// By Request-URI user `voicemail`, by header `X-Plan: gold`, by SDP
    /// media `video`.
    servers: [SipUa; 3],
    services: [String; 3],
    rules: [String; 3],
}

async fn app_server() -> SipUa {
    let mut ua = SipUa::udp("127.0.0.1:9".parse().unwrap()).await;
    ua.auto_ack = false;
    ua
}

async fn world(engine: Engine) -> Option<World> {
    let servers = [app_server().await, app_server().await, app_server().await];
    let app = TestApp::spawn(engine).await?;
    let client = app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": PASSWORD, "display_name": "Alice"}),
        )
        .await;
    let names = ["voicemail", "gold-plan", "video"];
    let matches = [
        json!({"request_uri_user": "voicemail"}),
        json!({"header": {"name": "X-Plan", "equals": "gold"}}),
        json!({"sdp_media": "video"}),
    ];
    let mut services = Vec::new();
    let mut rules = Vec::new();
    for (i, ua) in servers.iter().enumerate() {
        let a = app
            .create(
                "/v1/app-servers",
                json!({"name": format!("as-{}", names[i]), "uri": format!("sip:{}", ua.local_addr())}),
            )
            .await;
        let s = app
            .create(
                "/v1/services",
                json!({"name": names[i], "app_server_ids": [a["id"]]}),
            )
            .await;
        let r = app
            .create(
                "/v1/rules",
                json!({
                    "name": format!("by {}", names[i]),
                    "priority": (i + 1) * 10,
                    "match": matches[i],
                    "service_id": s["id"],
                    "set": {"X-Route": names[i], "X-Rule-Order": (i + 1).to_string()},
                }),
            )
            .await;
        services.push(s["id"].as_str().unwrap().to_string());
        rules.push(r["id"].as_str().unwrap().to_string());
    }
    Some(World {
        app,
        client_id: client["id"].as_str().unwrap().to_string(),
        servers,
        services: services.try_into().unwrap(),
        rules: rules.try_into().unwrap(),
    })
}

fn header(m: &Incoming, name: &str) -> String {
    String::from_utf8_lossy(m.header_value(name).unwrap_or_default()).into_owned()
}

fn method(m: &Incoming) -> String {
    m.method()
        .map(|m| m.as_str().into_owned())
        .unwrap_or_else(|| String::from_utf8_lossy(m.start_line()).into_owned())
}

fn video_offer(client: &SipUa) -> String {
    format!(
        "{}m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
        sdp_offer(client.local_addr(), 4000)
    )
}

/// Like `SipUa::call`, with extra headers on the INVITE: answers the 407,
/// ACKs a 2xx and keeps its dialog.
async fn call_with(
    client: &mut SipUa,
    uri: &str,
    sdp: &str,
    headers: &[(&str, &str)],
) -> (Request, Message) {
    let mut invite = client.invite(uri, sdp);
    for (n, v) in headers {
        invite = invite.header(n, v);
    }
    let (invite, resp) = client
        .transact_with_auth(&invite, "alice", PASSWORD, &AuthOptions::default())
        .await;
    if resp.status().is_some_and(|s| (200..300).contains(&s)) {
        let ack = client.ack(&invite, &resp);
        client.send(&ack).await;
        client.dialog = Some(client.uac_dialog(&invite, &resp));
    }
    (invite, resp)
}

/// Places a call in the background; the handle gives back the client and
/// the final response.
fn spawn_call(
    mut client: SipUa,
    uri: String,
    sdp: String,
    headers: Vec<(&'static str, &'static str)>,
) -> tokio::task::JoinHandle<(SipUa, Message)> {
    tokio::spawn(async move {
        let (_, resp) = call_with(&mut client, &uri, &sdp, &headers).await;
        (client, resp)
    })
}

/// The app server's side of an answered call: the INVITE (returned),
/// 200 with SDP, the relayed ACK.
async fn answer(as_ua: &mut SipUa) -> Incoming {
    let invite = as_ua.accept_request().await;
    assert_eq!(method(&invite), "INVITE");
    let sdp = sdp_offer(as_ua.local_addr(), 7000);
    as_ua
        .respond(
            &invite,
            200,
            "OK",
            &[],
            Some(("application/sdp", sdp.as_bytes())),
        )
        .await;
    let ack = as_ua.accept_request().await;
    assert_eq!(method(&ack), "ACK");
    invite
}

/// Asserts that none of `uas` receives anything for a while: the first is
/// watched for `QUIET`, the rest briefly afterwards (whatever was sent to
/// them meanwhile is waiting in their sockets).
async fn quiet(uas: &mut [&mut SipUa], why: &str) {
    for (i, ua) in uas.iter_mut().enumerate() {
        let port = ua.local_addr().port();
        let wait = if i == 0 {
            QUIET
        } else {
            Duration::from_millis(50)
        };
        match ua.recv_within(wait).await {
            Err(RecvError::Timeout) => {}
            Ok(m) => panic!(
                "{why}: app server on port {port} received:\n{}",
                String::from_utf8_lossy(m.as_bytes())
            ),
            Err(e) => panic!("{why}: app server on port {port}: {e:?}"),
        }
    }
}

/// The client hangs up; the app server answers the relayed BYE.
async fn hang_up(mut client: SipUa, as_ua: &mut SipUa) -> SipUa {
    let bye = client.bye();
    let caller = tokio::spawn(async move {
        let r = client.transact(&bye).await;
        (client, r)
    });
    let as_bye = as_ua.accept_request().await;
    assert_eq!(method(&as_bye), "BYE");
    as_ua.respond(&as_bye, 200, "OK", &[], None).await;
    let (client, r) = caller.await.unwrap();
    assert_eq!(r.status(), Some(200), "BYE answered");
    client
}

/// The published session `id`, once its state is `state`.
async fn session(app: &TestApp, id: &str, state: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        let (s, d) = app
            .admin(Method::GET, &format!("/v1/sessions/{id}"), None)
            .await;
        if s == StatusCode::OK && d["state"] == state {
            return d;
        }
        last = d;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("session {id} never reached {state}; last: {last:#}");
}

async fn rules_choose_the_app_server(engine: Engine) {
    let Some(mut w) = world(engine).await else {
        return;
    };
    struct Case {
        why: &'static str,
        user: &'static str,
        headers: Vec<(&'static str, &'static str)>,
        video: bool,
        /// Index of the app server (and its service and rule).
        to: usize,
    }
    let cases = [
        Case {
            why: "Request-URI user voicemail",
            user: "voicemail",
            headers: vec![],
            video: false,
            to: 0,
        },
        Case {
            why: "header X-Plan: gold",
            user: "conference",
            headers: vec![("X-Plan", "gold")],
            video: false,
            to: 1,
        },
        Case {
            why: "SDP with video",
            user: "conference",
            headers: vec![],
            video: true,
            to: 2,
        },
        Case {
            why: "user voicemail outranks X-Plan and video (priority)",
            user: "voicemail",
            headers: vec![("X-Plan", "gold")],
            video: true,
            to: 0,
        },
        Case {
            why: "X-Plan outranks video (priority)",
            user: "conference",
            headers: vec![("X-Plan", "gold")],
            video: true,
            to: 1,
        },
    ];
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    for case in cases {
        let sdp = if case.video {
            video_offer(&client)
        } else {
            sdp_offer(client.local_addr(), 4000)
        };
        let caller = spawn_call(
            client,
            format!("sip:{}@{DOMAIN}", case.user),
            sdp.clone(),
            case.headers.clone(),
        );
        let [a, b, c] = &mut w.servers;
        let (chosen, mut others): (&mut SipUa, Vec<&mut SipUa>) = match case.to {
            0 => (a, vec![b, c]),
            1 => (b, vec![a, c]),
            _ => (c, vec![a, b]),
        };
        let invite = answer(chosen).await;
        let (back, resp) = caller.await.unwrap();
        client = back;
        assert_eq!(resp.status(), Some(200), "{}", case.why);
        assert_eq!(invite.body(), sdp.as_bytes(), "{}: SDP relayed", case.why);
        // The matched rule's attributes, as headers.
        let names = ["voicemail", "gold-plan", "video"];
        assert_eq!(header(&invite, "X-Route"), names[case.to], "{}", case.why);
        assert_eq!(
            header(&invite, "X-Rule-Order"),
            (case.to + 1).to_string(),
            "{}",
            case.why
        );
        assert_eq!(
            header(&invite, "P-Asserted-Identity"),
            format!("\"Alice\" <sip:alice@{DOMAIN}>")
        );
        let id = header(&invite, "X-Switchboard-Session");
        assert!(!id.is_empty(), "{}: no X-Switchboard-Session", case.why);
        quiet(&mut others, case.why).await;

        let detail = session(&w.app, &id, "established").await;
        assert_eq!(detail["rule_id"], w.rules[case.to].as_str(), "{}", case.why);
        assert_eq!(
            detail["service_id"],
            w.services[case.to].as_str(),
            "{}",
            case.why
        );
        assert_eq!(detail["client_id"], w.client_id.as_str());
        client = hang_up(client, chosen).await;
        session(&w.app, &id, "ended").await;
    }

    // Neither rule matches: 404, and no app server hears of it.
    for (why, headers) in [
        ("no rule for an audio call to conference", vec![]),
        ("X-Plan must equal gold", vec![("X-Plan", "silver")]),
    ] {
        let sdp = sdp_offer(client.local_addr(), 4000);
        let (_, resp) = call_with(
            &mut client,
            &format!("sip:conference@{DOMAIN}"),
            &sdp,
            &headers,
        )
        .await;
        assert_eq!(resp.status(), Some(404), "{why}");
        let mut all: Vec<&mut SipUa> = w.servers.iter_mut().collect();
        quiet(&mut all, why).await;
    }
}

async fn max_sessions_limits_live_calls(engine: Engine) {
    let Some(mut w) = world(engine).await else {
        return;
    };
    let (s, body) = w
        .app
        .admin(
            Method::PATCH,
            &format!("/v1/clients/{}", w.client_id),
            Some(json!({"max_sessions": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let uri = format!("sip:voicemail@{DOMAIN}");

    let first = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let sdp = sdp_offer(first.local_addr(), 4000);
    let caller = spawn_call(first, uri.clone(), sdp, vec![]);
    let invite = answer(&mut w.servers[0]).await;
    let (first, resp) = caller.await.unwrap();
    assert_eq!(resp.status(), Some(200));
    let id = header(&invite, "X-Switchboard-Session");
    session(&w.app, &id, "established").await;

    // The same client from another UA: over the limit.
    let mut second = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let sdp = sdp_offer(second.local_addr(), 4100);
    let (_, resp) = call_with(&mut second, &uri, &sdp, &[]).await;
    assert_eq!(resp.status(), Some(403), "second live call");
    assert_eq!(resp.reason(), Some(&b"Session Limit Reached"[..]));
    let mut all: Vec<&mut SipUa> = w.servers.iter_mut().collect();
    quiet(&mut all, "a refused call is not inquired").await;

    // Once the first call is over, a new one goes through.
    hang_up(first, &mut w.servers[0]).await;
    session(&w.app, &id, "ended").await;
    let sdp = sdp_offer(second.local_addr(), 4100);
    let caller = spawn_call(second, uri.clone(), sdp, vec![]);
    let invite = answer(&mut w.servers[0]).await;
    let (second, resp) = caller.await.unwrap();
    assert_eq!(resp.status(), Some(200), "a call after the BYE");
    let id2 = header(&invite, "X-Switchboard-Session");
    assert_ne!(id, id2);
    session(&w.app, &id2, "established").await;
    hang_up(second, &mut w.servers[0]).await;
    session(&w.app, &id2, "ended").await;

    let (_, page) = w
        .app
        .admin(
            Method::GET,
            &format!("/v1/sessions?client_id={}", w.client_id),
            None,
        )
        .await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        2,
        "the refused call created no session: {page:#}"
    );
}
