//! The established session: session timers negotiated on both legs (RFC
//! 4028), refreshes, requests relayed inside the dialog, and a session
//! whose client stops refreshing ended with reason `session_timer`.

mod common;

use std::time::Duration;

use common::relay;
use common::sip_ua::{sdp_offer, Incoming, SipUa};
use common::{Engine, TestApp, TestDb, DOMAIN};
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "alice-secret";

both_engines!(
    intervals_are_kept_within_bounds,
    the_client_may_ask_us_to_refresh,
);

fn header(m: &switchboard::sip::message::Message, name: &str) -> String {
    String::from_utf8_lossy(m.header_value(name).unwrap_or_default()).into_owned()
}

fn method_of(m: &Incoming) -> String {
    m.method()
        .map(|m| m.as_str().into_owned())
        .unwrap_or_default()
}

async fn setup(app: &TestApp) -> SipUa {
    app.create(
        "/v1/clients",
        json!({"username": "alice", "password": PASSWORD}),
    )
    .await;
    let mut as_ua = SipUa::udp(app.sip).await;
    as_ua.auto_ack = false;
    let a = app
        .create(
            "/v1/app-servers",
            json!({"name": "as", "uri": format!("sip:{}", as_ua.local_addr())}),
        )
        .await;
    let s = app
        .create(
            "/v1/services",
            json!({"name": "svc", "app_server_ids": [a["id"]]}),
        )
        .await;
    app.create("/v1/rules", json!({"service_id": s["id"]}))
        .await;
    as_ua
}

/// Alice calls with a session timer request; the AS answers with its own.
async fn establish(
    app: &TestApp,
    as_ua: &mut SipUa,
    session_expires: u32,
) -> (SipUa, Incoming, String) {
    let mut client = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    let mut invite = client
        .invite(&format!("sip:svc@{DOMAIN}"), &offer)
        .header("Supported", "timer")
        .header("Session-Expires", &session_expires.to_string());
    let challenge = client.transact(&invite).await;
    invite = client.authorize(&invite, &challenge, "alice", PASSWORD, &Default::default());
    client.send(&invite).await;
    let at_as = as_ua.accept_request().await;
    assert_eq!(header(&at_as, "Supported"), "timer");
    assert!(
        header(&at_as, "Session-Expires").ends_with(";refresher=uas"),
        "we ask the AS to refresh"
    );
    let answer = sdp_offer(as_ua.local_addr(), 7000);
    let tag = as_ua
        .respond(
            &at_as,
            200,
            "OK",
            &[
                ("Session-Expires", "1800;refresher=uas"),
                ("Require", "timer"),
            ],
            Some(("application/sdp", answer.as_bytes())),
        )
        .await;
    let ok = client.recv_final(&invite).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        header(&ok, "Session-Expires"),
        format!("{session_expires};refresher=uac"),
        "the client refreshes"
    );
    assert_eq!(header(&ok, "Require"), "timer");
    client.dialog = Some(client.uac_dialog(&invite, &ok));
    let ack = client.ack(&invite, &ok);
    client.send(&ack).await;
    assert_eq!(method_of(&as_ua.accept_request().await), "ACK");
    (client, at_as, tag)
}

async fn session(app: &TestApp, state: &str) -> Value {
    for _ in 0..200 {
        let (_, page) = app.admin(Method::GET, "/v1/sessions", None).await;
        if let Some(s) = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["state"] == state)
        {
            return s.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no session reached {state}");
}

#[tokio::test]
async fn timers_refreshes_and_requests_in_the_dialog() {
    let Some(app) = TestApp::spawn(Engine::Sqlite).await else {
        return;
    };
    let mut as_ua = setup(&app).await;

    // Too short an interval: 422 with our Min-SE.
    let mut early = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(early.local_addr(), 4000);
    let short = early
        .invite(&format!("sip:svc@{DOMAIN}"), &offer)
        .header("Session-Expires", "30");
    let resp = early.transact(&short).await;
    assert_eq!(resp.status(), Some(422));
    assert_eq!(header(&resp, "Min-SE"), "90");

    let (mut client, at_as, as_tag) = establish(&app, &mut as_ua, 120).await;
    let dialog = client.dialog.clone().expect("dialog");

    // A pure refresh is answered by Switchboard, not relayed.
    let update = client.in_dialog(&dialog, "UPDATE");
    let resp = client.transact(&update).await;
    assert_eq!(resp.status(), Some(200));
    assert_eq!(header(&resp, "Session-Expires"), "120;refresher=uac");
    assert!(
        as_ua.recv_within(Duration::from_millis(200)).await.is_err(),
        "the AS is not bothered"
    );

    // A re-INVITE with a new offer goes to the AS; its answer comes back.
    let video = format!(
        "{}m=video 4002 RTP/AVP 96\r\n",
        sdp_offer(client.local_addr(), 4000)
    );
    let reinvite = client
        .in_dialog(&dialog, "INVITE")
        .with_body("application/sdp", video.as_bytes());
    client.send(&reinvite).await;
    let at_as2 = as_ua.accept_request().await;
    assert_eq!(method_of(&at_as2), "INVITE");
    assert_eq!(
        at_as2.call_id().unwrap(),
        at_as.call_id().unwrap(),
        "same AS dialog"
    );
    assert_eq!(at_as2.body(), video.as_bytes());
    let answer2 = format!(
        "{}m=video 7002 RTP/AVP 96\r\n",
        sdp_offer(as_ua.local_addr(), 7000)
    );
    as_ua
        .respond(
            &at_as2,
            200,
            "OK",
            &[],
            Some(("application/sdp", answer2.as_bytes())),
        )
        .await;
    let resp = client.recv_final(&reinvite).await;
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.body(), answer2.as_bytes());
    // The ACK is relayed end to end: the AS gets one once the client ACKs.
    let ack = client.ack(&reinvite, &resp);
    client.send(&ack).await;
    assert_eq!(method_of(&as_ua.accept_request().await), "ACK");

    // INFO from the AS reaches the client and its answer the AS.
    as_ua.set_server(app.sip);
    let as_dialog = as_ua.uas_dialog(&at_as, &as_tag);
    let info = as_ua
        .in_dialog(&as_dialog, "INFO")
        .with_body("application/dtmf-relay", b"Signal=5\r\n");
    as_ua.send(&info).await;
    let at_client = client.accept_request().await;
    assert_eq!(method_of(&at_client), "INFO");
    assert_eq!(at_client.body(), b"Signal=5\r\n");
    client.respond(&at_client, 200, "OK", &[], None).await;
    assert_eq!(as_ua.recv_final(&info).await.status(), Some(200));
    let s = session(&app, "established").await;
    assert!(s["end_reason"].is_null());
}

#[tokio::test]
async fn a_session_nobody_refreshes_is_ended() {
    let db = TestDb::new(Engine::Sqlite).await.expect("sqlite");
    let mut settings = common::test_settings(&db.url);
    // RFC 4028 forbids intervals under 90 s; the floor is lowered here so
    // that the expiry happens within the test.
    settings.session_min_se_seconds = 1;
    let app = TestApp::spawn_with(db, settings).await;
    let mut as_ua = setup(&app).await;
    let (mut client, _, _) = establish(&app, &mut as_ua, 2).await;
    session(&app, "established").await;
    // No refresh: after the interval both sides get a BYE.
    let to_as = as_ua
        .recv_within(Duration::from_secs(4))
        .await
        .expect("BYE to the AS");
    assert_eq!(method_of(&to_as), "BYE");
    as_ua.respond(&to_as, 200, "OK", &[], None).await;
    let to_client = client
        .recv_within(Duration::from_secs(2))
        .await
        .expect("BYE to the client");
    assert_eq!(method_of(&to_client), "BYE");
    client.respond(&to_client, 200, "OK", &[], None).await;
    let ended = session(&app, "ended").await;
    assert_eq!(ended["end_reason"], "session_timer");
}

async fn intervals_are_kept_within_bounds(engine: Engine) {
    let mut as_ua = relay::app_server().await;
    let Some(w) = relay::world(engine, &[&as_ua]).await else {
        return;
    };
    // The client asks for a day, the AS for 2 s with us refreshing: the
    // client gets our ceiling, and the AS's value is raised to our Min-SE
    // (90 s), so no refresh comes within seconds.
    let mut call = relay::establish(
        &w,
        &mut as_ua,
        |r| {
            r.header("Supported", "timer")
                .header("Session-Expires", "86400")
        },
        &[("Session-Expires", "2;refresher=uac"), ("Require", "timer")],
    )
    .await;
    assert_eq!(header(&call.ok, "Session-Expires"), "7200;refresher=uac");
    assert!(
        as_ua
            .recv_within(Duration::from_millis(1500))
            .await
            .is_err(),
        "no refresh towards the AS at its too short interval"
    );
    // A refresh keeps the ceiling too, and its 2xx has our Contact.
    let update = call
        .client
        .in_dialog(&call.client_dialog, "UPDATE")
        .header("Supported", "timer")
        .header("Session-Expires", "100000");
    let resp = call.client.transact(&update).await;
    assert_eq!(resp.status(), Some(200));
    assert_eq!(header(&resp, "Session-Expires"), "7200;refresher=uac");
    assert!(
        resp.header_value("Contact").is_some(),
        "a 2xx to UPDATE carries Contact (RFC 3311 §5.2)"
    );
}

async fn the_client_may_ask_us_to_refresh(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let mut settings = common::test_settings(&db.url);
    // RFC 4028 forbids intervals under 90 s; the floor is lowered here so
    // that refreshes happen within the test.
    settings.session_min_se_seconds = 1;
    let app = TestApp::spawn_with(db, settings).await;
    let mut as_ua = relay::app_server().await;
    let w = relay::world_on(app, &[&as_ua]).await;
    let mut client = SipUa::udp(w.app.sip).await.with_user("alice", DOMAIN);
    let offer = sdp_offer(client.local_addr(), 4000);
    let invite = client
        .invite(&format!("sip:voicemail@{DOMAIN}"), &offer)
        .header("Supported", "timer")
        .header("Session-Expires", "2;refresher=uas");
    let challenge = client.transact(&invite).await;
    let invite = client.authorize(&invite, &challenge, "alice", PASSWORD, &Default::default());
    client.send(&invite).await;
    let at_as = relay::next_request(&mut as_ua, "INVITE").await;
    let answer = sdp_offer(as_ua.local_addr(), 7000);
    as_ua
        .respond(
            &at_as,
            200,
            "OK",
            &[],
            Some(("application/sdp", answer.as_bytes())),
        )
        .await;
    let ok = client.recv_final(&invite).await;
    assert_eq!(ok.status(), Some(200));
    // RFC 4028 §9: the client asked Switchboard (the UAS) to refresh.
    assert_eq!(header(&ok, "Session-Expires"), "2;refresher=uas");
    assert_eq!(header(&ok, "Require"), "timer");
    let ack = client.ack(&invite, &ok);
    client.send(&ack).await;
    relay::session_in(&w.app, &w.client_id, "established").await;
    // So Switchboard refreshes, at half the interval, and the session lives
    // on although the client never refreshes.
    for _ in 0..3 {
        let update = client
            .recv_within(Duration::from_secs(3))
            .await
            .expect("a refresh from Switchboard");
        assert_eq!(method_of(&update), "UPDATE");
        assert_eq!(header(&update, "Session-Expires"), "2;refresher=uac");
        client.respond(&update, 200, "OK", &[], None).await;
    }
    let s = relay::session_in(&w.app, &w.client_id, "established").await;
    assert!(s["end_reason"].is_null());
}
