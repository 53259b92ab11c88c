//! The overload cap on server transactions, set by the operator: past it a
//! new request gets a stateless 503 with Retry-After (RFC 3261 §21.5.4),
//! and a finished transaction still counts while it absorbs
//! retransmissions (Timer J, 64*T1 on UDP).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Engine, TestApp, TestDb};
use switchboard::sip::message::{parse_datagram, HeaderName, Limits, Message};
use tokio::net::UdpSocket;

/// A BYE for a dialog that does not exist: the relay answers it 481 in a
/// server transaction (OPTIONS would not do: the engine answers those
/// statelessly).
fn stray_bye(server: SocketAddr, via: SocketAddr, n: u32) -> String {
    format!(
        "BYE sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {via};rport;branch=z9hG4bK-cap-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@example.com>;tag=cap{n}\r\n\
         To: <sip:{server}>;tag=none{n}\r\nCall-ID: cap-{n}\r\nCSeq: 2 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

async fn answer(socket: &UdpSocket, server: SocketAddr, n: u32) -> Message {
    let via = socket.local_addr().expect("bound");
    socket
        .send_to(stray_bye(server, via, n).as_bytes(), server)
        .await
        .expect("sent");
    let mut buf = vec![0u8; 65535];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("an answer within 5 s")
        .expect("received");
    parse_datagram(
        bytes::Bytes::copy_from_slice(&buf[..len]),
        &Limits::default(),
    )
    .expect("a SIP response")
}

#[tokio::test]
async fn requests_past_the_configured_cap_get_503() {
    let db = TestDb::new(Engine::Sqlite).await.expect("sqlite");
    let mut settings = common::test_settings(&db.url);
    settings.max_server_transactions = 2;
    let app = TestApp::spawn_with(db, settings).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");

    // Two requests fill the table: each is answered, then its transaction
    // lingers 32 s to absorb retransmissions.
    let first = answer(&socket, app.sip, 1).await;
    assert_eq!(first.status(), Some(481));
    assert_eq!(answer(&socket, app.sip, 2).await.status(), Some(481));
    let shed = answer(&socket, app.sip, 3).await;
    assert_eq!(shed.status(), Some(503), "{shed:?}");
    let retry_after = shed.get(HeaderName::RetryAfter).map(|h| h.value.to_vec());
    assert_eq!(retry_after.as_deref(), Some(&b"5"[..]));
    // Nothing was kept for the shed request: sent again, it is shed again.
    assert_eq!(answer(&socket, app.sip, 3).await.status(), Some(503));
    // A retransmission of a held request is matched, not shed: its
    // transaction re-sends the very response it sent (RFC 3261 §17.2.2).
    let again = answer(&socket, app.sip, 1).await;
    assert_eq!(again.bytes(), first.bytes());
}
