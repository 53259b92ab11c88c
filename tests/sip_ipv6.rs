//! IPv6: the engine on an IPv6 address, and on a dual-stack wildcard where
//! IPv4 peers appear as mapped addresses but must be answered as IPv4.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Engine, TestApp, TestDb};
use switchboard::sip::message::{parse_datagram, Limits, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

fn options(server: SocketAddr, via: &str, transport: &str) -> String {
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/{transport} {via};rport;branch=z9hG4bK-v6-{transport}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@example.com>;tag=1\r\nTo: <sip:{server}>\r\nCall-ID: v6-{transport}\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

async fn app_on(listen: &str) -> TestApp {
    let db = TestDb::new(Engine::Sqlite).await.expect("sqlite");
    let mut settings = common::test_settings(&db.url);
    settings.sip_listen = listen.parse().unwrap();
    TestApp::spawn_with(db, settings).await
}

async fn udp_answer(local: &str, server: SocketAddr) -> Message {
    let socket = UdpSocket::bind(local).await.unwrap();
    let via = socket.local_addr().unwrap().to_string();
    socket
        .send_to(options(server, &via, "UDP").as_bytes(), server)
        .await
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    parse_datagram(bytes::Bytes::copy_from_slice(&buf[..n]), &Limits::default()).unwrap()
}

#[tokio::test]
async fn options_over_ipv6_udp_and_tcp() {
    let app = app_on("[::1]:0").await;
    assert!(app.sip.is_ipv6());
    let answer = udp_answer("[::1]:0", app.sip).await;
    assert_eq!(answer.status(), Some(200));
    let via = answer.top_via().unwrap();
    assert_eq!(via.received_ip(), Some("::1".parse().unwrap()));

    let mut tcp = TcpStream::connect(app.sip).await.unwrap();
    let via = tcp.local_addr().unwrap().to_string();
    tcp.write_all(options(app.sip, &via, "TCP").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200 "),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[tokio::test]
async fn dual_stack_answers_ipv4_peers_as_ipv4() {
    let app = app_on("[::]:0").await;
    let v4 = SocketAddr::from(([127, 0, 0, 1], app.sip.port()));
    let answer = udp_answer("127.0.0.1:0", v4).await;
    assert_eq!(answer.status(), Some(200));
    let via = answer.top_via().unwrap();
    assert_eq!(
        via.received_ip(),
        Some("127.0.0.1".parse().unwrap()),
        "not ::ffff:127.0.0.1"
    );
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, app.sip.port()));
    assert_eq!(udp_answer("[::1]:0", v6).await.status(), Some(200));
}
