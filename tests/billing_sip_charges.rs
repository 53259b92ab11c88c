//! Application charges in SIP (SPEC §4): an in-dialog INFO from the app
//! server with `Content-Type: application/vnd.switchboard.charge+json` is
//! answered by Switchboard (200, or 400 with the reason), never reaches
//! the client, and is recorded once, visible over REST.

mod common;

use std::time::Duration;

use common::relay::{app_server, establish, session_in, world, Call};
use common::sip_ua::{RecvError, SipUa};
use common::Engine;
use reqwest::{Method, StatusCode};
use serde_json::Value;

both_engines!(charges_in_info_are_taken_once_and_never_relayed);

const CHARGE: &str = "application/vnd.switchboard.charge+json";

/// Sends an INFO with `body` as `content_type` from `ua` in `dialog`;
/// the final response's status and reason.
async fn info(
    ua: &mut SipUa,
    dialog: &common::sip_ua::Dialog,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let req = ua
        .in_dialog(dialog, "INFO")
        .with_body(content_type, body.as_bytes());
    let resp = ua.transact(&req).await;
    let status = resp.status().expect("a response");
    let reason = String::from_utf8_lossy(resp.reason().unwrap_or_default()).into_owned();
    (status, reason)
}

async fn nothing_reaches(ua: &mut SipUa) {
    match ua.recv_within(Duration::from_millis(300)).await {
        Err(RecvError::Timeout) => {}
        Ok(m) => panic!(
            "the client got something:\n{}",
            String::from_utf8_lossy(m.as_bytes())
        ),
        Err(e) => panic!("{e:?}"),
    }
}

async fn charges_in_info_are_taken_once_and_never_relayed(engine: Engine) {
    let mut as_ua = app_server().await;
    let Some(w) = world(engine, &[&as_ua]).await else {
        return;
    };
    let Call {
        mut client,
        client_dialog,
        as_dialog,
        ..
    } = establish(&w, &mut as_ua, |r| r, &[]).await;
    let session = session_in(&w.app, &w.client_id, "established").await;
    let session_id = session["id"].as_str().unwrap().to_string();

    let charge = r#"{"amount": "0.50", "currency": "EUR", "description": "weather report", "idempotency_key": "k-1"}"#;
    assert_eq!(info(&mut as_ua, &as_dialog, CHARGE, charge).await.0, 200);
    nothing_reaches(&mut client).await;
    // The same charge again (the AS retried): taken once.
    let same = r#"{"amount": "0.5", "currency": "EUR", "description": "weather report", "idempotency_key": "k-1"}"#;
    assert_eq!(info(&mut as_ua, &as_dialog, CHARGE, same).await.0, 200);
    // The key reused for another amount: refused.
    let other = r#"{"amount": "0.70", "currency": "EUR", "description": "weather report", "idempotency_key": "k-1"}"#;
    let (status, reason) = info(&mut as_ua, &as_dialog, CHARGE, other).await;
    assert_eq!(status, 400, "{reason}");
    assert!(reason.contains("idempotency_key"), "{reason}");
    // Wrong bodies get 400 with the reason.
    for (body, needle) in [
        ("{not json", "JSON"),
        (
            r#"{"amount": 0.5, "currency": "EUR", "idempotency_key": "k-2"}"#,
            "amount",
        ),
        (
            r#"{"amount": "-1", "currency": "EUR", "idempotency_key": "k-3"}"#,
            "amount",
        ),
        (
            r#"{"amount": "1", "currency": "euro", "idempotency_key": "k-4"}"#,
            "currency",
        ),
        (r#"{"amount": "1", "currency": "EUR"}"#, "idempotency_key"),
    ] {
        let (status, reason) = info(&mut as_ua, &as_dialog, CHARGE, body).await;
        assert_eq!(status, 400, "{body}: {reason}");
        assert!(reason.contains(needle), "{body}: {reason}");
    }
    nothing_reaches(&mut client).await;
    // A second charge.
    let second = r#"{"amount": "1.25", "currency": "EUR", "idempotency_key": "k-5"}"#;
    assert_eq!(info(&mut as_ua, &as_dialog, CHARGE, second).await.0, 200);
    // A client cannot charge, and its charge INFO does not reach the AS.
    let (status, _) = info(&mut client, &client_dialog, CHARGE, charge).await;
    assert_eq!(status, 403);
    nothing_reaches(&mut as_ua).await;
    // An ordinary INFO still goes through to the client.
    let relayed = as_ua
        .in_dialog(&as_dialog, "INFO")
        .with_body("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n");
    as_ua.send(&relayed).await;
    let at_client = client.accept_request().await;
    assert_eq!(at_client.body(), b"Signal=5\r\nDuration=160\r\n");
    client.respond(&at_client, 200, "OK", &[], None).await;
    assert_eq!(as_ua.recv_final(&relayed).await.status(), Some(200));

    // Over REST: the two charges, from SIP, for this session and its AS.
    let mut items = Vec::new();
    for _ in 0..250 {
        let (s, page) = w
            .app
            .admin(
                Method::GET,
                &format!("/v1/charges?session_id={session_id}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(items.len(), 2, "{items:#?}");
    let amounts: Vec<&str> = items
        .iter()
        .map(|c| c["amount"].as_str().unwrap())
        .collect();
    assert!(
        amounts.contains(&"0.5") && amounts.contains(&"1.25"),
        "{amounts:?}"
    );
    for c in &items {
        assert_eq!(c["source"], "sip", "{c:#}");
        assert_eq!(c["currency"], "EUR");
        assert_eq!(c["client_id"], w.client_id.as_str());
        assert_eq!(c["app_server_id"], session["app_server_id"], "{c:#}");
    }
    let events: Vec<Value> = session_in(&w.app, &w.client_id, "established").await["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "charge").count(),
        2,
        "{events:#?}"
    );
}
