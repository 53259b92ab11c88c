//! AS → client (SPEC §2): an INVITE from a trusted app server reaches every
//! registered contact of the client at once; the first answer wins.

mod common;

use std::time::Duration;

use common::sip_ua::{sdp_offer, SipUa};
use common::{Engine, TestApp, DOMAIN};
use reqwest::Method;
use serde_json::{json, Value};

both_engines!(
    app_server_calls_a_registered_client,
    unreachable_and_unknown_clients
);

const PASSWORD: &str = "alice-secret";

fn method_of(m: &switchboard::sip::message::Message) -> String {
    m.method()
        .map(|m| m.as_str().into_owned())
        .unwrap_or_default()
}

async fn session_in(app: &TestApp, state: &str) -> Value {
    for _ in 0..150 {
        let (_, page) = app.admin(Method::GET, "/v1/sessions", None).await;
        if let Some(s) = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["state"] == state)
        {
            let id = s["id"].as_str().unwrap();
            return app
                .admin(Method::GET, &format!("/v1/sessions/{id}"), None)
                .await
                .1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no session reached {state}");
}

async fn app_server_calls_a_registered_client(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let alice = app
        .create(
            "/v1/clients",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    let mut as_ua = SipUa::udp(app.sip).await.with_user("voicemail", DOMAIN);
    let app_server = app
        .create(
            "/v1/app-servers",
            json!({"name": "vm", "uri": format!("sip:{}", as_ua.local_addr())}),
        )
        .await;
    // Alice has two devices.
    let mut desk = SipUa::udp(app.sip).await.with_user("alice", DOMAIN);
    let mut mobile = SipUa::tcp(app.sip).await.with_user("alice", DOMAIN);
    for ua in [&mut desk, &mut mobile] {
        ua.auto_ack = false;
        assert_eq!(
            ua.register_with_auth("alice", PASSWORD, 300).await.status(),
            Some(200)
        );
    }

    let offer = sdp_offer(as_ua.local_addr(), 6000);
    let offer2 = offer.clone();
    let caller = tokio::spawn(async move {
        // No credentials: the app server is trusted by its address.
        let (_, resp) = as_ua
            .call(&format!("sip:alice@{DOMAIN}"), &offer2, None)
            .await;
        (as_ua, resp)
    });
    let at_desk = desk.accept_request().await;
    let at_mobile = mobile.accept_request().await;
    for inv in [&at_desk, &at_mobile] {
        assert_eq!(method_of(inv), "INVITE");
        assert_eq!(
            inv.body(),
            offer.as_bytes(),
            "the app server's offer reaches the client"
        );
        assert!(
            inv.header_value("X-Switchboard-Session").is_none(),
            "internal header kept from clients"
        );
    }
    desk.respond(&at_desk, 180, "Ringing", &[], None).await;
    let answer = sdp_offer(mobile.local_addr(), 8000);
    mobile
        .respond(
            &at_mobile,
            200,
            "OK",
            &[],
            Some(("application/sdp", answer.as_bytes())),
        )
        .await;
    let (mut as_ua, resp) = caller.await.unwrap();
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.body(), answer.as_bytes());
    // The other device is cancelled, the answering one gets the ACK.
    let cancel = desk.accept_request().await;
    assert_eq!(method_of(&cancel), "CANCEL");
    desk.respond(&cancel, 200, "OK", &[], None).await;
    desk.respond(&at_desk, 487, "Request Terminated", &[], None)
        .await;
    let ack = mobile.accept_request().await;
    assert_eq!(method_of(&ack), "ACK");

    let detail = session_in(&app, "established").await;
    assert_eq!(detail["client_id"], alice["id"]);
    assert_eq!(detail["app_server_id"], app_server["id"]);
    let kinds: Vec<_> = detail["legs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["as", "client", "client"],
        "inbound from the AS, one leg per contact"
    );

    // The app server hangs up.
    let bye = as_ua.bye();
    as_ua.send(&bye).await;
    let to_mobile = mobile.accept_request().await;
    assert_eq!(method_of(&to_mobile), "BYE");
    mobile.respond(&to_mobile, 200, "OK", &[], None).await;
    assert_eq!(as_ua.recv_final(&bye).await.status(), Some(200));
    let detail = session_in(&app, "ended").await;
    assert_eq!(detail["end_reason"], "as_bye");
}

async fn unreachable_and_unknown_clients(engine: Engine) {
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    app.create(
        "/v1/clients",
        json!({"username": "bob", "password": "bob-secret"}),
    )
    .await;
    let mut as_ua = SipUa::udp(app.sip).await.with_user("voicemail", DOMAIN);
    app.create(
        "/v1/app-servers",
        json!({"name": "vm", "uri": format!("sip:{}", as_ua.local_addr())}),
    )
    .await;
    let offer = sdp_offer(as_ua.local_addr(), 6000);
    let (_, resp) = as_ua.call(&format!("sip:bob@{DOMAIN}"), &offer, None).await;
    assert_eq!(resp.status(), Some(480), "registered nowhere");
    let (_, resp) = as_ua
        .call(&format!("sip:nobody@{DOMAIN}"), &offer, None)
        .await;
    assert_eq!(resp.status(), Some(404));
    // The same request from an address that is no app server is challenged.
    let mut stranger = SipUa::udp(app.sip).await.with_user("voicemail", DOMAIN);
    let (_, resp) = stranger
        .call(&format!("sip:bob@{DOMAIN}"), &offer, None)
        .await;
    assert_eq!(resp.status(), Some(407));
}
