//! Who is a trusted app server: an INVITE escapes the proxy challenge (and
//! may call a registered client) only when its bytes really come from the
//! address of an enabled app server. Via is written by the sender and proves
//! nothing.

mod common;

use std::time::Duration;

use common::sip_ua::{sdp_offer, SipUa};
use common::{Engine, TestApp, DOMAIN};
use reqwest::Method;
use serde_json::json;
use switchboard::sip::message::Message;

both_engines!(
    a_via_naming_the_app_server_is_not_trusted,
    a_disabled_app_server_is_not_trusted
);

const PASSWORD: &str = "alice-secret";

/// An app with alice registered from `desk`, and an app server at `as_ua`'s
/// address; returns the app server's id.
async fn world(app: &TestApp, as_ua: &SipUa, desk: &mut SipUa) -> String {
    app.create(
        "/v1/clients",
        json!({"username": "alice", "password": PASSWORD}),
    )
    .await;
    let a = app
        .create(
            "/v1/app-servers",
            json!({"name": "vm", "uri": format!("sip:{}", as_ua.local_addr())}),
        )
        .await;
    desk.auto_ack = false;
    assert_eq!(
        desk.register_with_auth("alice", PASSWORD, 300)
            .await
            .status(),
        Some(200)
    );
    a["id"].as_str().unwrap().to_string()
}

/// The next final response `ua` receives, whatever request it answers.
async fn next_final(ua: &mut SipUa) -> Message {
    loop {
        let m = ua.recv().await;
        if m.status().is_some_and(|s| s >= 200) {
            return m.msg;
        }
    }
}

async fn a_via_naming_the_app_server_is_not_trusted(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let mut as_ua = SipUa::udp(app.sip).await.with_user("voicemail", DOMAIN);
    let mut desk = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    world(&app, &as_ua, &mut desk).await;

    // Another socket on the app server's host claims the app server's port
    // in its Via and asks for no rport (RFC 3261 §18.2.2 then answers the
    // Via's port at the source address).
    let mut spoofer = SipUa::udp(app.sip).await.with_user("mallory", DOMAIN);
    let offer = sdp_offer(spoofer.local_addr(), 4000);
    let mut invite = spoofer.invite(&format!("sip:alice@{DOMAIN}"), &offer);
    invite.via = format!("SIP/2.0/UDP {}", as_ua.local_addr());
    invite.rport = false;
    spoofer.send(&invite).await;

    let answer = next_final(&mut as_ua).await;
    assert_eq!(
        answer.status(),
        Some(407),
        "a stranger is challenged, whatever its Via says"
    );
    assert!(
        desk.recv_within(Duration::from_millis(300)).await.is_err(),
        "the client is not called"
    );
}

async fn a_disabled_app_server_is_not_trusted(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let mut as_ua = SipUa::udp(app.sip).await.with_user("voicemail", DOMAIN);
    let mut desk = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    let as_id = world(&app, &as_ua, &mut desk).await;
    let (status, _) = app
        .admin(
            Method::PATCH,
            &format!("/v1/app-servers/{as_id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert!(status.is_success());

    let offer = sdp_offer(as_ua.local_addr(), 6000);
    let (_, resp) = as_ua
        .call(&format!("sip:alice@{DOMAIN}"), &offer, None)
        .await;
    assert_eq!(
        resp.status(),
        Some(407),
        "a disabled app server is challenged"
    );
    assert!(
        desk.recv_within(Duration::from_millis(300)).await.is_err(),
        "the client is not called"
    );

    // Enabled again, the same INVITE reaches the client.
    app.admin(
        Method::PATCH,
        &format!("/v1/app-servers/{as_id}"),
        Some(json!({"enabled": true})),
    )
    .await;
    let invite = as_ua.invite(&format!("sip:alice@{DOMAIN}"), &offer);
    as_ua.send(&invite).await;
    let at_desk = desk.accept_request().await;
    assert_eq!(at_desk.body(), offer.as_bytes());
    desk.respond(&at_desk, 486, "Busy Here", &[], None).await;
    assert_eq!(as_ua.recv_final(&invite).await.status(), Some(486));
}
