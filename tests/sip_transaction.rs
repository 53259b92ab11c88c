//! Transaction layer on paused tokio time with a recording fake transport:
//! exact retransmission times and counts, absorption, hop-by-hop ACK,
//! RFC 6026 Accepted states, 482 for merged requests, 503 under overload,
//! CANCEL matching.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{sleep, Instant};

use switchboard::sip::message::{Limits, Message, Method};
use switchboard::sip::transaction::{LayerConfig, ServerTxId, TransactionLayer, TuEvent, TuEvents};
use switchboard::sip::transport::{Flow, Incoming, Outbound, Protocol, SendError};

/// Records every send with its (paused) time since the test started.
struct FakeOut {
    t0: Instant,
    sent: Mutex<Vec<(Duration, Flow, Bytes)>>,
    fail: bool,
}

impl Outbound for FakeOut {
    fn send(&self, flow: &Flow, bytes: Bytes) -> Result<(), SendError> {
        if self.fail {
            return Err(SendError::Closed);
        }
        self.sent
            .lock()
            .unwrap()
            .push((self.t0.elapsed(), *flow, bytes));
        Ok(())
    }
}

impl FakeOut {
    /// (time in ms, first line) of every send.
    fn log(&self) -> Vec<(u128, String)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _, b)| {
                let line = b.split(|&c| c == b'\r').next().unwrap_or_default();
                (t.as_millis(), String::from_utf8_lossy(line).into_owned())
            })
            .collect()
    }
    fn times(&self) -> Vec<u128> {
        self.log().into_iter().map(|(t, _)| t).collect()
    }
    fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn udp() -> Flow {
    Flow::udp(addr(5060), addr(5070))
}

fn tcp() -> Flow {
    Flow {
        protocol: Protocol::Tcp,
        remote: addr(5070),
        local: addr(5060),
        connection: 7,
    }
}

fn setup(config: LayerConfig, fail: bool) -> (TransactionLayer, TuEvents, Arc<FakeOut>) {
    let out = Arc::new(FakeOut {
        t0: Instant::now(),
        sent: Mutex::new(Vec::new()),
        fail,
    });
    let (layer, rx) = TransactionLayer::start(out.clone(), config);
    (layer, rx, out)
}

fn config() -> LayerConfig {
    LayerConfig {
        shards: 3,
        ..LayerConfig::default()
    }
}

fn parse(text: &str) -> Message {
    let mut m = Message::parse_text(text, &Limits::default()).expect("test message");
    m.validate().expect("valid test message");
    m
}

/// A request from the peer (or from us, for client transactions).
fn request(method: &str, branch: &str, call_id: &str, cseq: u32, to_tag: &str) -> Message {
    let cseq_method = if method == "ACK" { "ACK" } else { method };
    let cseq_method = if method == "CANCEL" {
        "CANCEL"
    } else {
        cseq_method
    };
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    parse(&format!(
        "{method} sip:bob@example.com SIP/2.0\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\n\
Max-Forwards: 70\n\
From: <sip:alice@example.com>;tag=from1\n\
To: <sip:bob@example.com>{to_tag}\n\
Call-ID: {call_id}\n\
CSeq: {cseq} {cseq_method}\n\
Content-Length: 0\n\n"
    ))
}

fn response_to(req: &Message, status: u16, to_tag: &str) -> Bytes {
    Bytes::from(req.reply(status, "Reason").unwrap().to_tag(to_tag).build())
}

fn inc(message: Message, flow: Flow) -> Incoming {
    Incoming {
        message,
        flow,
        source: flow.remote,
    }
}

/// The next TU event; a test whose event never comes fails (on tokio's
/// paused clock) instead of hanging. Longer than any transaction timer.
async fn next(rx: &mut TuEvents) -> TuEvent {
    tokio::time::timeout(Duration::from_secs(120), rx.recv())
        .await
        .expect("a TU event within 120 s")
        .expect("layer alive")
}

async fn expect_request(rx: &mut TuEvents) -> (ServerTxId, Message, Option<ServerTxId>) {
    match next(rx).await {
        TuEvent::Request {
            tx,
            message,
            cancels,
            ..
        } => (tx, message, cancels),
        other => panic!("expected a request, got {other:?}"),
    }
}

/// Lets the shards run without advancing the clock past `d`.
async fn idle(d: Duration) {
    sleep(d).await;
}

fn assert_no_event(rx: &mut TuEvents) {
    if let Some(ev) = rx.try_recv() {
        panic!("unexpected TU event {ev:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn client_invite_udp_retransmits_and_times_out_at_32s() {
    let (layer, mut rx, out) = setup(config(), false);
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bKc1", "call-c1", 1, "");
    let tx = layer.request(invite, udp()).unwrap();
    match next(&mut rx).await {
        TuEvent::Timeout { tx: t } => assert_eq!(t, tx),
        other => panic!("{other:?}"),
    }
    assert_eq!(t0.elapsed(), Duration::from_secs(32));
    assert_eq!(out.times(), vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert!(out.log().iter().all(|(_, l)| l.starts_with("INVITE ")));
    idle(Duration::from_secs(60)).await;
    assert_eq!(out.count(), 7);
    assert_no_event(&mut rx);
}

#[tokio::test(start_paused = true)]
async fn client_invite_tcp_no_retransmission() {
    let (layer, mut rx, out) = setup(config(), false);
    let t0 = Instant::now();
    let tx = layer
        .request(request("INVITE", "z9hG4bKc2", "call-c2", 1, ""), tcp())
        .unwrap();
    assert!(matches!(next(&mut rx).await, TuEvent::Timeout { tx: t } if t == tx));
    assert_eq!(t0.elapsed(), Duration::from_secs(32));
    assert_eq!(out.times(), vec![0]);
}

#[tokio::test(start_paused = true)]
async fn client_invite_non_2xx_acked_hop_by_hop() {
    let (layer, mut rx, out) = setup(config(), false);
    let invite = request("INVITE", "z9hG4bKc3", "call-c3", 1, "");
    let tx = layer.request(invite.clone(), udp()).unwrap();
    idle(Duration::from_millis(100)).await;
    let busy = parse(std::str::from_utf8(&response_to(&invite, 486, "as1")).unwrap());
    layer.receive(inc(busy.clone(), udp()));
    match next(&mut rx).await {
        TuEvent::Response { tx: t, message, .. } => {
            assert_eq!(t, tx);
            assert_eq!(message.status(), Some(486));
        }
        other => panic!("{other:?}"),
    }
    // Retransmitted 486: the ACK again, the TU not told.
    layer.receive(inc(busy, udp()));
    idle(Duration::from_secs(40)).await;
    let log = out.log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[1], (100, "ACK sip:bob@example.com SIP/2.0".into()));
    assert_eq!(log[2].1, log[1].1);
    assert_no_event(&mut rx);
}

#[tokio::test(start_paused = true)]
async fn client_non_invite_response_and_transport_error() {
    let (layer, mut rx, out) = setup(config(), false);
    let options = request("OPTIONS", "z9hG4bKc4", "call-c4", 1, "");
    let tx = layer.request(options.clone(), udp()).unwrap();
    idle(Duration::from_millis(2000)).await;
    // Timer E: 0.5, 1.5 s.
    assert_eq!(out.times(), vec![0, 500, 1500]);
    let ok = parse(std::str::from_utf8(&response_to(&options, 200, "x")).unwrap());
    layer.receive(inc(ok.clone(), udp()));
    assert!(matches!(next(&mut rx).await, TuEvent::Response { tx: t, .. } if t == tx));
    layer.receive(inc(ok, udp()));
    idle(Duration::from_secs(40)).await;
    assert_eq!(out.count(), 3);
    assert_no_event(&mut rx);

    let (layer, mut rx, _) = setup(config(), true);
    let tx = layer
        .request(request("OPTIONS", "z9hG4bKc5", "call-c5", 1, ""), udp())
        .unwrap();
    assert!(matches!(next(&mut rx).await, TuEvent::TransportError { tx: t } if t == tx));
}

#[tokio::test(start_paused = true)]
async fn server_non_invite_absorbs_and_resends_final() {
    let (layer, mut rx, out) = setup(config(), false);
    let t0 = Instant::now();
    let reg = request("REGISTER", "z9hG4bKs1", "call-s1", 1, "");
    layer.receive(inc(reg.clone(), udp()));
    let (tx, message, _) = expect_request(&mut rx).await;
    assert_eq!(message.method(), Some(Method::Register));
    // Retransmission before the answer: absorbed, nothing sent.
    layer.receive(inc(reg.clone(), udp()));
    idle(Duration::from_millis(500)).await;
    assert_eq!(out.count(), 0);
    layer.respond(&tx, 401, response_to(&message, 401, "r1"));
    idle(Duration::from_millis(500)).await;
    layer.receive(inc(reg.clone(), udp()));
    idle(Duration::from_millis(10)).await;
    let log = out.log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].0, 500);
    assert_eq!(log[1].0, 1000);
    assert_eq!(log[0].1, "SIP/2.0 401 Reason");
    assert_eq!(log[1].1, "SIP/2.0 401 Reason");
    assert_no_event(&mut rx);
    assert_eq!(layer.server_transactions(), 1);
    // Timer J (64*T1) after the final: gone at 0.5 + 32 s.
    sleep(Duration::from_millis(32_500) - t0.elapsed() - Duration::from_millis(1)).await;
    assert_eq!(layer.server_transactions(), 1);
    idle(Duration::from_millis(2)).await;
    assert_eq!(layer.server_transactions(), 0);
    // The same request now is new.
    layer.receive(inc(reg, udp()));
    let (tx2, _, _) = expect_request(&mut rx).await;
    assert_ne!(tx, tx2);
}

#[tokio::test(start_paused = true)]
async fn server_invite_trying_timer_g_and_absorbed_ack() {
    let (layer, mut rx, out) = setup(config(), false);
    let invite = request("INVITE", "z9hG4bKs2", "call-s2", 1, "");
    layer.receive(inc(invite.clone(), udp()));
    let (tx, message, _) = expect_request(&mut rx).await;
    // 100 Trying at once, before the TU does anything.
    assert_eq!(out.log(), vec![(0, "SIP/2.0 100 Trying".to_string())]);
    // A retransmitted INVITE re-gets the 100 and is not passed on.
    idle(Duration::from_millis(500)).await;
    layer.receive(inc(invite.clone(), udp()));
    idle(Duration::from_millis(500)).await;
    assert_eq!(out.times(), vec![0, 500]);
    layer.respond(&tx, 486, response_to(&message, 486, "busy"));
    // Timer G: 1.5, 2.5, 4.5 (T1 doubling from the 486 at 1 s); ACK at 5 s.
    idle(Duration::from_millis(4000)).await;
    let ack = request("ACK", "z9hG4bKs2", "call-s2", 1, "busy");
    layer.receive(inc(ack.clone(), udp()));
    idle(Duration::from_secs(1)).await;
    layer.receive(inc(ack, udp()));
    idle(Duration::from_secs(60)).await;
    let log = out.log();
    let times: Vec<u128> = log.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, vec![0, 500, 1000, 1500, 2500, 4500]);
    assert!(log[2..].iter().all(|(_, l)| l == "SIP/2.0 486 Reason"));
    // The ACK for the non-2xx never reached the TU, and no Timer H fired.
    assert_no_event(&mut rx);
    assert_eq!(layer.server_transactions(), 0);
}

#[tokio::test(start_paused = true)]
async fn server_invite_timer_h_without_ack() {
    let (layer, mut rx, out) = setup(config(), false);
    let t0 = Instant::now();
    layer.receive(inc(request("INVITE", "z9hG4bKs3", "call-s3", 1, ""), udp()));
    let (tx, message, _) = expect_request(&mut rx).await;
    layer.respond(&tx, 603, response_to(&message, 603, "d"));
    match next(&mut rx).await {
        TuEvent::ServerTimeout { tx: t } => assert_eq!(t, tx),
        other => panic!("{other:?}"),
    }
    assert_eq!(t0.elapsed(), Duration::from_secs(32));
    // 100, 603, then G at 0.5 1.5 3.5 7.5 and every T2 to 31.5.
    assert_eq!(
        out.times(),
        vec![0, 0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(layer.server_transactions(), 0);
}

#[tokio::test(start_paused = true)]
async fn server_invite_tcp_no_retransmission_of_final() {
    let (layer, mut rx, out) = setup(config(), false);
    layer.receive(inc(request("INVITE", "z9hG4bKs4", "call-s4", 1, ""), tcp()));
    let (tx, message, _) = expect_request(&mut rx).await;
    layer.respond(&tx, 486, response_to(&message, 486, "b"));
    assert!(matches!(next(&mut rx).await, TuEvent::ServerTimeout { .. }));
    assert_eq!(out.times(), vec![0, 0]);
    assert!(out.sent.lock().unwrap().iter().all(|(_, f, _)| *f == tcp()));
}

#[tokio::test(start_paused = true)]
async fn ack_for_2xx_goes_to_tu() {
    let (layer, mut rx, out) = setup(config(), false);
    let invite = request("INVITE", "z9hG4bKs5", "call-s5", 1, "");
    layer.receive(inc(invite.clone(), udp()));
    let (tx, message, _) = expect_request(&mut rx).await;
    layer.respond(&tx, 200, response_to(&message, 200, "ok"));
    idle(Duration::from_millis(10)).await;
    // INVITE retransmission in Accepted: absorbed, nothing re-sent.
    layer.receive(inc(invite, udp()));
    // The 2xx ACK is a new transaction (new branch): to the TU.
    layer.receive(inc(
        request("ACK", "z9hG4bKack5", "call-s5", 1, "ok"),
        udp(),
    ));
    match next(&mut rx).await {
        TuEvent::Ack { message, flow } => {
            assert_eq!(message.method(), Some(Method::Ack));
            assert_eq!(flow, udp());
        }
        other => panic!("{other:?}"),
    }
    // An ACK that matches the INVITE's branch in Accepted goes to the TU
    // too (RFC 6026 §8.7).
    layer.receive(inc(request("ACK", "z9hG4bKs5", "call-s5", 1, "ok"), udp()));
    assert!(matches!(next(&mut rx).await, TuEvent::Ack { .. }));
    assert_eq!(out.times(), vec![0, 0]);
    // Timer L ends the transaction at 64*T1.
    idle(Duration::from_secs(33)).await;
    assert_eq!(layer.server_transactions(), 0);
    assert_no_event(&mut rx);
}

#[tokio::test(start_paused = true)]
async fn merged_request_gets_482() {
    let (layer, mut rx, out) = setup(config(), false);
    layer.receive(inc(request("INVITE", "z9hG4bKm1", "call-m", 1, ""), udp()));
    let _ = expect_request(&mut rx).await;
    let merged = request("INVITE", "z9hG4bKm2", "call-m", 1, "");
    layer.receive(inc(merged.clone(), udp()));
    idle(Duration::from_millis(10)).await;
    layer.receive(inc(merged, udp()));
    idle(Duration::from_millis(10)).await;
    let log = out.log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[0].1, "SIP/2.0 100 Trying");
    assert_eq!(log[1].1, "SIP/2.0 482 Loop Detected");
    assert_eq!(log[2].1, "SIP/2.0 482 Loop Detected");
    assert_no_event(&mut rx);
    // A new CSeq is not a merge.
    layer.receive(inc(request("INVITE", "z9hG4bKm3", "call-m", 2, ""), udp()));
    let _ = expect_request(&mut rx).await;
}

#[tokio::test(start_paused = true)]
async fn overload_answers_503_statelessly() {
    let cfg = LayerConfig {
        max_server_transactions: 2,
        retry_after: 9,
        ..config()
    };
    let (layer, mut rx, out) = setup(cfg, false);
    let first = request("OPTIONS", "z9hG4bKo1", "call-o1", 1, "");
    layer.receive(inc(first.clone(), udp()));
    layer.receive(inc(
        request("OPTIONS", "z9hG4bKo2", "call-o2", 1, ""),
        udp(),
    ));
    let _ = expect_request(&mut rx).await;
    let _ = expect_request(&mut rx).await;
    layer.receive(inc(request("INVITE", "z9hG4bKo3", "call-o3", 1, ""), udp()));
    idle(Duration::from_millis(10)).await;
    assert_eq!(layer.server_transactions(), 2);
    let sent = out.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let resp = parse(std::str::from_utf8(&sent[0].2).unwrap());
    assert_eq!(resp.status(), Some(503));
    assert_eq!(resp.header_value("Retry-After"), Some(&b"9"[..]));
    assert_eq!(resp.call_id().unwrap(), b"call-o3");
    // Retransmissions of live transactions are still absorbed, ACKs are
    // never answered.
    layer.receive(inc(first, udp()));
    layer.receive(inc(request("ACK", "z9hG4bKo4", "call-o4", 1, "t"), udp()));
    assert!(matches!(next(&mut rx).await, TuEvent::Ack { .. }));
    idle(Duration::from_millis(10)).await;
    assert_eq!(out.count(), 1);
    assert_no_event(&mut rx);
}

#[tokio::test(start_paused = true)]
async fn cancel_matches_its_invite() {
    let (layer, mut rx, out) = setup(config(), false);
    let invite = request("INVITE", "z9hG4bKx1", "call-x", 1, "");
    layer.receive(inc(invite, udp()));
    let (inv_tx, inv, _) = expect_request(&mut rx).await;
    let cancel = request("CANCEL", "z9hG4bKx1", "call-x", 1, "");
    layer.receive(inc(cancel.clone(), udp()));
    let (cancel_tx, message, cancels) = expect_request(&mut rx).await;
    assert_eq!(message.method(), Some(Method::Cancel));
    assert_eq!(cancels, Some(inv_tx));
    assert_ne!(cancel_tx, inv_tx);
    layer.respond(&cancel_tx, 200, response_to(&message, 200, "c"));
    layer.respond(&inv_tx, 487, response_to(&inv, 487, "c"));
    idle(Duration::from_millis(10)).await;
    // Retransmitted CANCEL: the 200 again, not a new request.
    layer.receive(inc(cancel, udp()));
    idle(Duration::from_millis(10)).await;
    let lines: Vec<String> = out.log().into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        lines,
        vec![
            "SIP/2.0 100 Trying",
            "SIP/2.0 200 Reason",
            "SIP/2.0 487 Reason",
            "SIP/2.0 200 Reason"
        ]
    );
    assert_no_event(&mut rx);
    // A CANCEL for an unknown INVITE names nothing (the TU answers 481).
    layer.receive(inc(request("CANCEL", "z9hG4bKx9", "call-y", 1, ""), udp()));
    let (_, _, cancels) = expect_request(&mut rx).await;
    assert_eq!(cancels, None);
}

#[tokio::test(start_paused = true)]
async fn rfc2543_peer_matched_without_magic_cookie() {
    let (layer, mut rx, out) = setup(config(), false);
    let invite = request("INVITE", "old1", "call-2543", 1, "");
    layer.receive(inc(invite.clone(), udp()));
    let (tx, message, _) = expect_request(&mut rx).await;
    layer.receive(inc(invite, udp()));
    layer.respond(&tx, 486, response_to(&message, 486, "b"));
    idle(Duration::from_millis(100)).await;
    layer.receive(inc(request("ACK", "old1", "call-2543", 1, "b"), udp()));
    idle(Duration::from_secs(40)).await;
    // 100, 100 again, 486; no Timer G after the ACK at 0.1 s.
    assert_eq!(out.times(), vec![0, 0, 0]);
    assert_no_event(&mut rx);
}

#[tokio::test(start_paused = true)]
async fn client_invite_2xx_retransmissions_reach_tu_until_timer_m() {
    let (layer, mut rx, out) = setup(config(), false);
    let invite = request("INVITE", "z9hG4bKc6", "call-c6", 1, "");
    let tx = layer.request(invite.clone(), udp()).unwrap();
    idle(Duration::from_millis(200)).await;
    let ok = parse(std::str::from_utf8(&response_to(&invite, 200, "as")).unwrap());
    layer.receive(inc(ok.clone(), udp()));
    assert!(matches!(next(&mut rx).await, TuEvent::Response { tx: t, .. } if t == tx));
    // RFC 6026: the retransmitted 2xx goes to the TU (it re-sends its ACK).
    idle(Duration::from_millis(500)).await;
    layer.receive(inc(ok.clone(), udp()));
    assert!(matches!(next(&mut rx).await, TuEvent::Response { tx: t, .. } if t == tx));
    // Timer M (64*T1 from the first 2xx at 0.2 s): afterwards it is a stray.
    sleep(Duration::from_millis(32_200) - Duration::from_millis(700)).await;
    layer.receive(inc(ok, udp()));
    idle(Duration::from_millis(10)).await;
    assert_no_event(&mut rx);
    // No ACK from the transaction for a 2xx, and no INVITE retransmission
    // after the 2xx.
    assert_eq!(out.times(), vec![0]);
}

/// One shard, and the TU counts as behind once one event waits for it.
fn behind_after_one_event() -> LayerConfig {
    LayerConfig {
        shards: 1,
        tu_queue: 1,
        ..LayerConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_tu_behind_sheds_new_requests_with_503() {
    let (layer, mut rx, out) = setup(behind_after_one_event(), false);
    // The TU takes nothing between these calls: with one event waiting,
    // the second request is answered 503 at once and the ACK for a 2xx is
    // dropped.
    let first = request("OPTIONS", "z9hG4bKq1", "call-q1", 1, "");
    layer.receive(inc(first.clone(), udp()));
    layer.receive(inc(
        request("OPTIONS", "z9hG4bKq2", "call-q2", 1, ""),
        udp(),
    ));
    layer.receive(inc(request("ACK", "z9hG4bKq3", "call-q3", 1, "t"), udp()));
    // A retransmission of the live transaction is absorbed, not refused.
    layer.receive(inc(first, udp()));
    assert_eq!(
        out.log(),
        vec![(0, "SIP/2.0 503 Service Unavailable".to_string())]
    );
    let (_, message, _) = expect_request(&mut rx).await;
    assert_eq!(message.call_id().unwrap(), b"call-q1");
    idle(Duration::from_millis(10)).await;
    assert_no_event(&mut rx);
    assert_eq!(layer.server_transactions(), 1);
    // The TU has caught up: new requests pass again.
    layer.receive(inc(
        request("OPTIONS", "z9hG4bKq4", "call-q4", 1, ""),
        udp(),
    ));
    let (_, message, _) = expect_request(&mut rx).await;
    assert_eq!(message.call_id().unwrap(), b"call-q4");
}

#[tokio::test(start_paused = true)]
async fn a_tu_behind_still_gets_what_its_own_transactions_receive() {
    let (layer, mut rx, out) = setup(behind_after_one_event(), false);
    let options = request("OPTIONS", "z9hG4bKr1", "call-r1", 1, "");
    let mine = layer.request(options.clone(), udp()).unwrap();
    let theirs = request("INVITE", "z9hG4bKr2", "call-r2", 1, "");
    layer.receive(inc(theirs.clone(), udp()));
    // One event waits (the INVITE): the TU is behind. The answer to its
    // own request still reaches it, a CANCEL of the live INVITE still
    // reaches it, and it can still respond.
    let ok = parse(std::str::from_utf8(&response_to(&options, 200, "x")).unwrap());
    layer.receive(inc(ok, udp()));
    layer.receive(inc(request("CANCEL", "z9hG4bKr2", "call-r2", 1, ""), udp()));
    let (tx, _, _) = expect_request(&mut rx).await;
    assert!(matches!(next(&mut rx).await, TuEvent::Response { tx: t, .. } if t == mine));
    let (_, cancel, cancels) = expect_request(&mut rx).await;
    assert_eq!(cancel.method(), Some(Method::Cancel));
    assert_eq!(cancels, Some(tx));
    layer.respond(&tx, 486, response_to(&theirs, 486, "b"));
    let lines: Vec<String> = out.log().into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        lines,
        vec![
            "OPTIONS sip:bob@example.com SIP/2.0",
            "SIP/2.0 100 Trying",
            "SIP/2.0 486 Reason"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_earlier_deadline_wakes_the_shards_timer() {
    let cfg = LayerConfig {
        shards: 1,
        ..config()
    };
    let (layer, _rx, out) = setup(cfg, false);
    // Over TCP only Timer B (32 s) is pending: the shard sleeps until then.
    layer
        .request(request("INVITE", "z9hG4bKw1", "call-w1", 1, ""), tcp())
        .unwrap();
    idle(Duration::from_secs(1)).await;
    // Timer E (0.5 s) falls due long before: the shard must re-arm for it.
    layer
        .request(request("OPTIONS", "z9hG4bKw2", "call-w2", 1, ""), udp())
        .unwrap();
    idle(Duration::from_millis(2600)).await;
    assert_eq!(out.times(), vec![0, 1000, 1500, 2500]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_layer_stops_its_shards_and_closes_the_tu_queue() {
    let (layer, mut rx, _out) = setup(config(), false);
    // A live INVITE transaction the TU never answers: the shard and its
    // timer task hold the TU's queue open until the layer's end stops them.
    layer.receive(inc(request("INVITE", "z9hG4bKd1", "call-d1", 1, ""), udp()));
    let _ = expect_request(&mut rx).await;
    drop(layer);
    let closed = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await;
    assert!(matches!(closed, Ok(None)), "{closed:?}");
}
