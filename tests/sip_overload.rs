//! The overload cap on server transactions, set by the operator: past it a
//! new request gets a stateless 503 with Retry-After (RFC 3261 §21.5.4),
//! and a finished transaction still counts while it absorbs
//! retransmissions (Timer J, 64*T1 on UDP).

mod common;

use common::sip_ua::{Request, SipUa};
use common::{Engine, TestApp, TestDb};
use switchboard::sip::message::HeaderName;

/// A BYE for a dialog that does not exist: the relay answers it 481 in a
/// server transaction (OPTIONS would not do: the engine answers those
/// statelessly).
fn stray_bye(ua: &mut SipUa) -> Request {
    let uri = format!("sip:{}", ua.server_addr());
    let mut bye = ua.request("BYE", &uri);
    bye.to_tag = Some("none".into());
    bye
}

#[tokio::test]
async fn requests_past_the_configured_cap_get_503() {
    let db = TestDb::new(Engine::Sqlite).await.expect("sqlite");
    let mut settings = common::test_settings(&db.url);
    settings.max_server_transactions = 2;
    let app = TestApp::spawn_with(db, settings).await;
    let mut ua = SipUa::udp(app.sip).await;

    // Two requests fill the table: each is answered, then its transaction
    // lingers 32 s to absorb retransmissions.
    let held = stray_bye(&mut ua);
    let first = ua.transact(&held).await;
    assert_eq!(first.status(), Some(481));
    let second = stray_bye(&mut ua);
    assert_eq!(ua.transact(&second).await.status(), Some(481));
    let third = stray_bye(&mut ua);
    let shed = ua.transact(&third).await;
    assert_eq!(shed.status(), Some(503), "{shed:?}");
    let retry_after = shed.get(HeaderName::RetryAfter).map(|h| h.value.to_vec());
    assert_eq!(retry_after.as_deref(), Some(&b"5"[..]));
    // Nothing was kept for the shed request: sent again, it is shed again.
    assert_eq!(ua.transact(&third).await.status(), Some(503));
    // A retransmission of a held request is matched, not shed: its
    // transaction re-sends the very response it sent (RFC 3261 §17.2.2).
    let again = ua.transact(&held).await;
    assert_eq!(again.bytes(), first.bytes());
}
