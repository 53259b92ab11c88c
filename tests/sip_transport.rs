//! The transports on real sockets: framing, keep-alive pongs, and the
//! limits that keep slow, silent or greedy peers from pinning resources.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use switchboard::sip::message::{Limits, ParseError};
use switchboard::sip::transport::{
    Flow, Framing, Inbound, Outbound, Protocol, TcpConfig, Transports,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

#[derive(Default)]
struct Recorder {
    frames: Mutex<Vec<(Vec<u8>, Flow, Framing)>>,
    errors: Mutex<Vec<ParseError>>,
}

impl Inbound for Recorder {
    fn on_frame(&self, bytes: Bytes, flow: Flow, framing: Framing) {
        self.frames
            .lock()
            .unwrap()
            .push((bytes.to_vec(), flow, framing));
    }
    fn on_stream_error(&self, _bytes: Bytes, _flow: Flow, error: ParseError) {
        self.errors.lock().unwrap().push(error);
    }
}

struct Fixture {
    transports: Arc<Transports>,
    recorder: Arc<Recorder>,
    addr: SocketAddr,
    _stop: watch::Sender<bool>,
}

/// A UDP socket and a TCP listener on the same free port. The port the
/// kernel picks for UDP may be taken for TCP by another test running in
/// parallel, so a few ports are tried.
async fn udp_and_tcp_on_one_port() -> (UdpSocket, TcpListener) {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP in 20 tries");
}

async fn fixture(config: TcpConfig, limits: Limits) -> Fixture {
    let (udp, tcp) = udp_and_tcp_on_one_port().await;
    let (stop, stop_rx) = watch::channel(false);
    let transports = Transports::new(udp, tcp, config, limits, stop_rx).unwrap();
    let recorder = Arc::new(Recorder::default());
    transports.run(recorder.clone());
    Fixture {
        addr: transports.udp_addr(),
        transports,
        recorder,
        _stop: stop,
    }
}

fn request(call_id: &str, body: &str) -> String {
    format!(
        "OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK{call_id}\r\nFrom: <sip:a@b>;tag=1\r\n\
         To: <sip:x@y>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn wait_for(mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 2 s");
}

/// Reads until the peer closes; true when it closed within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn tcp_frames_pipelined_and_split_messages() {
    let f = fixture(TcpConfig::default(), Limits::default()).await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    let both = format!("{}{}", request("one", "hello"), request("two", ""));
    // Byte by byte for the first part, then the rest at once.
    let (head, tail) = both.as_bytes().split_at(40);
    for b in head {
        s.write_all(&[*b]).await.unwrap();
    }
    s.write_all(tail).await.unwrap();
    wait_for(|| f.recorder.frames.lock().unwrap().len() == 2).await;
    let frames = f.recorder.frames.lock().unwrap();
    assert_eq!(frames[0].0, request("one", "hello").as_bytes());
    assert_eq!(frames[1].0, request("two", "").as_bytes());
    assert!(frames
        .iter()
        .all(|(_, flow, framing)| flow.protocol == Protocol::Tcp && *framing == Framing::Stream));
    assert_eq!(
        frames[0].1.connection, frames[1].1.connection,
        "one flow per connection"
    );
}

#[tokio::test]
async fn crlf_ping_gets_a_pong_and_answers_reuse_the_connection() {
    let f = fixture(TcpConfig::default(), Limits::default()).await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\r\n");
    s.write_all(request("x", "").as_bytes()).await.unwrap();
    wait_for(|| !f.recorder.frames.lock().unwrap().is_empty()).await;
    let flow = f.recorder.frames.lock().unwrap()[0].1;
    f.transports
        .send(&flow, Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"))
        .unwrap();
    let mut answer = [0u8; 18];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&answer, b"SIP/2.0 200 OK\r\n\r\n");
}

#[tokio::test]
async fn slow_and_silent_peers_are_disconnected() {
    let config = TcpConfig {
        idle_timeout: Duration::from_millis(400),
        message_timeout: Duration::from_millis(200),
        ..TcpConfig::default()
    };
    let f = fixture(config, Limits::default()).await;
    // Half a message, then nothing: closed after the message timeout.
    let mut slow = TcpStream::connect(f.addr).await.unwrap();
    slow.write_all(&request("slow", "").as_bytes()[..50])
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_millis(1500)).await,
        "slow peer kept"
    );
    // Connected and silent: closed after the idle timeout.
    let mut silent = TcpStream::connect(f.addr).await.unwrap();
    let started = tokio::time::Instant::now();
    assert!(
        closed_within(&mut silent, Duration::from_millis(2000)).await,
        "silent peer kept"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "closed before the idle timeout"
    );
    wait_for(|| f.transports.tcp_connections() == 0).await;
}

#[tokio::test]
async fn connection_limit_and_oversized_messages() {
    let config = TcpConfig {
        max_connections: 2,
        ..TcpConfig::default()
    };
    let limits = Limits {
        max_message_size: 2048,
        ..Limits::default()
    };
    let f = fixture(config, limits).await;
    let _a = TcpStream::connect(f.addr).await.unwrap();
    let _b = TcpStream::connect(f.addr).await.unwrap();
    wait_for(|| f.transports.tcp_connections() == 2).await;
    let mut c = TcpStream::connect(f.addr).await.unwrap();
    assert!(
        closed_within(&mut c, Duration::from_secs(2)).await,
        "third connection accepted"
    );
    drop((_a, _b));
    wait_for(|| f.transports.tcp_connections() == 0).await;

    // Endless headers: refused at the size limit, not buffered forever.
    let mut greedy = TcpStream::connect(f.addr).await.unwrap();
    let mut junk = String::from("OPTIONS sip:x@y SIP/2.0\r\n");
    while junk.len() < 4096 {
        junk.push_str("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let _ = greedy.write_all(junk.as_bytes()).await;
    assert!(
        closed_within(&mut greedy, Duration::from_secs(4)).await,
        "oversized message kept open"
    );
    assert!(
        !f.recorder.errors.lock().unwrap().is_empty(),
        "the error is reported for a 513"
    );
}

#[tokio::test]
async fn udp_datagrams_and_keepalives() {
    let f = fixture(TcpConfig::default(), Limits::default()).await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    peer.send_to(b"\r\n\r\n", f.addr).await.unwrap();
    peer.send_to(request("u", "").as_bytes(), f.addr)
        .await
        .unwrap();
    wait_for(|| !f.recorder.frames.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let frames = f.recorder.frames.lock().unwrap().clone();
    assert_eq!(frames.len(), 1, "the keep-alive is not a message");
    assert_eq!(frames[0].1.remote, peer.local_addr().unwrap());
    assert_eq!(frames[0].2, Framing::Datagram);
    f.transports
        .send(&frames[0].1, Bytes::from_static(b"pong"))
        .unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = tokio::time::timeout(Duration::from_secs(2), peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"pong"[..], f.addr));
}
