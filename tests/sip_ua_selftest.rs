//! Self-test of the test UA (`tests/common/sip_ua.rs`, `sip_digest.rs`):
//! digest vectors from the RFCs, and two UAs talking to each other over UDP
//! and TCP (INVITE with a 407 challenge, ACK, BYE; REGISTER refresh state).

mod common;

use common::sip_digest::{self, Answer, Challenge};
use common::sip_ua::{sdp_offer, AuthOptions, SipUa, Transport};
use switchboard::config::DigestAlgorithm;
use switchboard::sip::message::{Credentials, Message};
use tokio::net::TcpListener;

// RFC 7616 §3.9.1.
const R7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const R7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

fn rfc7616_response(alg: DigestAlgorithm) -> String {
    let ha1 = sip_digest::ha1(alg, "Mufasa", "http-auth@example.org", "Circle of Life");
    sip_digest::response(
        alg,
        &ha1,
        R7616_NONCE,
        Some(("auth", 1, R7616_CNONCE)),
        "GET",
        "/dir/index.html",
    )
}

#[test]
fn rfc7616_sha256_example() {
    assert_eq!(
        rfc7616_response(DigestAlgorithm::Sha256),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn rfc7616_md5_example() {
    assert_eq!(
        rfc7616_response(DigestAlgorithm::Md5),
        "8ca523f5e9506fed4657c9700eebdbec"
    );
}

#[test]
fn rfc2617_md5_example() {
    // RFC 2617 §3.5 (errata: the password is "Circle Of Life").
    let ha1 = sip_digest::ha1(
        DigestAlgorithm::Md5,
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
    );
    assert_eq!(ha1, "939e7578ed9e3c518a452acee763bce9");
    let r = sip_digest::response(
        DigestAlgorithm::Md5,
        &ha1,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        Some(("auth", 1, "0a4f113b")),
        "GET",
        "/dir/index.html",
    );
    assert_eq!(r, "6629fae49393a05397450978507c4ef1");
}

#[test]
fn challenge_parsing_and_answer_through_the_message_layer() {
    let resp = b"SIP/2.0 401 Unauthorized\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKabc\r\n\
From: <sip:alice@test.example>;tag=1\r\nTo: <sip:alice@test.example>;tag=2\r\n\
Call-ID: c1\r\nCSeq: 1 REGISTER\r\n\
WWW-Authenticate: Digest realm=\"test.example\", nonce=\"n-md5\", opaque=\"op1\", algorithm=MD5, qop=\"auth\"\r\n\
WWW-Authenticate: Digest realm=\"test.example\", nonce=\"n-sha\", algorithm=SHA-256, qop=\"auth,auth-int\", stale=TRUE\r\n\
Content-Length: 0\r\n\r\n";
    let msg = Message::parse(resp).expect("test response parses");
    let all = Challenge::all_from(&msg);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].algorithm(), Some(DigestAlgorithm::Md5));
    assert_eq!(all[0].opaque.as_deref(), Some("op1"));
    assert!(!all[0].stale && all[1].stale);
    assert_eq!(all[1].qop, vec!["auth", "auth-int"]);
    let first = sip_digest::choose(&all, None).expect("a challenge");
    assert_eq!(first.nonce, "n-md5");
    let sha = sip_digest::choose(&all, Some(DigestAlgorithm::Sha256)).expect("SHA-256");
    assert_eq!(sha.nonce, "n-sha");

    let answer = Answer {
        username: "alice",
        password: "secret",
        method: "REGISTER",
        uri: "sip:test.example",
        nc: 0x1f,
        cnonce: "c0ffee",
    };
    let value = sip_digest::authorization(sha, &answer);
    let c = Credentials::parse(value.as_bytes()).expect("our Authorization parses");
    assert_eq!(c.nc(), Some(&b"0000001f"[..]));
    assert_eq!(&*c.algorithm().expect("algorithm"), b"SHA-256");
    assert_eq!(&*c.uri().expect("uri"), b"sip:test.example");
    assert!(c.opaque().is_none());
    let ha1 = sip_digest::ha1(DigestAlgorithm::Sha256, "alice", "test.example", "secret");
    let expected = sip_digest::response(
        DigestAlgorithm::Sha256,
        &ha1,
        "n-sha",
        Some(("auth", 0x1f, "c0ffee")),
        "REGISTER",
        "sip:test.example",
    );
    assert_eq!(&*c.response().expect("response"), expected.as_bytes());
    let md5 = sip_digest::authorization(first, &answer);
    assert!(md5.contains("opaque=\"op1\"") && md5.contains("algorithm=MD5"));
}

#[tokio::test]
async fn register_refresh_state_and_nonce_counts() {
    let peer = "127.0.0.1:9".parse().expect("addr");
    let mut ua = SipUa::udp(peer).await.with_user("bob", "test.example");
    let r1 = ua.register(300);
    let r2 = ua.register(0);
    assert_eq!(r1.call_id, r2.call_id);
    assert_eq!(r1.from_tag, r2.from_tag);
    assert_eq!((r1.cseq, r2.cseq), (1, 2));
    assert_ne!(r1.branch, r2.branch);
    let text = String::from_utf8(r2.to_bytes()).expect("utf-8");
    assert!(text.starts_with("REGISTER sip:test.example SIP/2.0\r\n"));
    assert!(text.contains(&format!(";rport;branch={}", r2.branch)));
    assert!(text.contains("Expires: 0\r\n") && text.ends_with("Content-Length: 0\r\n\r\n"));
    Message::parse(&r2.to_bytes())
        .expect("our REGISTER parses")
        .validate()
        .expect("our REGISTER is valid");

    let ch = Challenge::parse(
        b"Digest realm=\"test.example\", nonce=\"abc\", qop=\"auth\"",
        false,
    )
    .expect("challenge");
    let mut req = ua.register(300);
    let nc_of = |r: &common::sip_ua::Request| {
        let (_, v) = r
            .headers
            .iter()
            .find(|(n, _)| n == "Authorization")
            .expect("Authorization")
            .clone();
        let c = Credentials::parse(v.as_bytes()).expect("parses").nc_value();
        c.expect("nc")
    };
    ua.sign(&mut req, &ch, "bob", "pw", &AuthOptions::default());
    assert_eq!(nc_of(&req), 1);
    ua.sign(&mut req, &ch, "bob", "pw", &AuthOptions::default());
    assert_eq!(nc_of(&req), 2);
    let forced = AuthOptions {
        nc: Some(1),
        ..AuthOptions::default()
    };
    ua.sign(&mut req, &ch, "bob", "pw", &forced);
    assert_eq!(nc_of(&req), 1);
    assert_eq!(
        req.headers
            .iter()
            .filter(|(n, _)| n == "Authorization")
            .count(),
        1
    );
}

/// Plays a UAS that challenges INVITE with 407, answers 200, takes ACK and BYE.
async fn callee(mut b: SipUa) {
    let invite = b.accept_request().await;
    assert_eq!(invite.method().expect("request").as_str(), "INVITE");
    assert!(invite.header("Proxy-Authorization").is_none());
    let challenge =
        "Digest realm=\"test.example\", nonce=\"n1\", opaque=\"xyz\", algorithm=SHA-256, qop=\"auth\"";
    b.respond(
        &invite,
        407,
        "Proxy Authentication Required",
        &[("Proxy-Authenticate", challenge)],
        None,
    )
    .await;
    let ack = b.accept_request().await;
    assert_eq!(ack.method().expect("request").as_str(), "ACK");
    assert_eq!(
        ack.top_via().expect("Via").branch(),
        invite.top_via().expect("Via").branch()
    );

    let invite2 = b.accept_request().await;
    let cred = invite2
        .proxy_authorizations()
        .next()
        .expect("Proxy-Authorization")
        .expect("valid credentials");
    assert_eq!(cred.nc_value(), Some(1));
    assert_eq!(&*cred.opaque().expect("opaque echoed"), b"xyz");
    let ha1 = sip_digest::ha1(DigestAlgorithm::Sha256, "alice", "test.example", "secret");
    let cnonce = String::from_utf8(cred.cnonce().expect("cnonce").to_vec()).expect("utf-8");
    let expected = sip_digest::response(
        DigestAlgorithm::Sha256,
        &ha1,
        "n1",
        Some(("auth", 1, &cnonce)),
        "INVITE",
        "sip:service@test.example",
    );
    assert_eq!(&*cred.response().expect("response"), expected.as_bytes());
    assert_eq!(invite2.cseq().expect("CSeq").seq, 2);
    b.respond(&invite2, 100, "Trying", &[], None).await;
    b.respond(&invite2, 180, "Ringing", &[], None).await;
    let answer = sdp_offer(b.local_addr(), 4002);
    let tag = b
        .respond(
            &invite2,
            200,
            "OK",
            &[],
            Some(("application/sdp", answer.as_bytes())),
        )
        .await;
    let ack = b.accept_request().await;
    assert_eq!(ack.method().expect("request").as_str(), "ACK");
    assert_eq!(ack.cseq().expect("CSeq").seq, 2);
    assert_eq!(ack.to_header().expect("To").tag(), Some(tag.as_bytes()));
    assert_ne!(
        ack.top_via().expect("Via").branch(),
        invite2.top_via().expect("Via").branch()
    );

    let bye = b.accept_request().await;
    assert_eq!(bye.method().expect("request").as_str(), "BYE");
    assert_eq!(bye.cseq().expect("CSeq").seq, 3);
    b.respond(&bye, 200, "OK", &[], None).await;
}

async fn caller(mut a: SipUa) {
    let sdp = sdp_offer(a.local_addr(), 4000);
    let (invite, resp) = a
        .call("sip:service@test.example", &sdp, Some(("alice", "secret")))
        .await;
    assert_eq!(
        resp.status(),
        Some(200),
        "{}",
        String::from_utf8_lossy(resp.as_bytes())
    );
    assert!(invite
        .headers
        .iter()
        .any(|(n, _)| n == "Proxy-Authorization"));
    assert!(resp.body().starts_with(b"v=0"));
    let d = a.dialog.clone().expect("dialog");
    assert!(!d.remote_tag.is_empty());
    let bye = a.bye();
    assert_eq!(a.transact(&bye).await.status(), Some(200));
}

#[tokio::test]
async fn two_uas_over_udp() {
    let b = SipUa::udp("127.0.0.1:9".parse().expect("addr")).await;
    let a = SipUa::udp(b.local_addr()).await;
    let callee = tokio::spawn(callee(b));
    caller(a).await;
    callee.await.expect("callee");
}

#[tokio::test]
async fn two_uas_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let callee = tokio::spawn(async move {
        let b = SipUa::accept_tcp(&listener).await;
        assert_eq!(b.transport, Transport::Tcp);
        callee(b).await
    });
    let a = SipUa::tcp(addr).await;
    caller(a).await;
    callee.await.expect("callee");
}

#[tokio::test]
async fn silence_is_a_timeout_not_a_hang() {
    let mut a = SipUa::udp("127.0.0.1:9".parse().expect("addr")).await;
    let r = a.recv_within(std::time::Duration::from_millis(50)).await;
    assert_eq!(r.err(), Some(common::sip_ua::RecvError::Timeout));
}
