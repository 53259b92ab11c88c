//! Parse a typical ~1 KB INVITE with SDP and read its key headers.
//! Run: `cargo bench --bench sip_parse`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use switchboard::sip::message::{parse_datagram, Editor, HeaderName, Limits, Message};

const INVITE: &[u8] = b"INVITE sip:+14155550123@switchboard.example.net;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.17:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: \"Bob\" <sip:+14155550123@switchboard.example.net;user=phone>\r\n\
From: \"Alice Example\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@198.51.100.17:5060;transport=udp>;expires=3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, REFER, NOTIFY, INFO\r\n\
Supported: replaces, timer, 100rel\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
User-Agent: ExampleSoftphone/4.2.1 (Linux)\r\n\
P-Asserted-Identity: \"Alice Example\" <sip:alice@atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 325\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 198.51.100.17\r\n\
s=Session SDP\r\n\
c=IN IP4 198.51.100.17\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 9 18 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn read_key_headers(m: &Message) -> usize {
    let via = m.top_via().unwrap();
    let branch = via.branch().unwrap();
    let from = m.from_header().unwrap();
    let tag = from.tag().unwrap();
    let to = m.to_header().unwrap();
    let call_id = m.call_id().unwrap();
    let cseq = m.cseq().unwrap();
    let mf = m.max_forwards().unwrap().unwrap();
    let contact = m.contacts().next().unwrap().unwrap();
    let ct = m.content_type().unwrap().unwrap();
    let cl = m.content_length().unwrap();
    branch.len()
        + tag.len()
        + to.uri().raw().len()
        + call_id.len()
        + cseq.seq as usize
        + mf as usize
        + matches!(contact, switchboard::sip::message::Contact::Addr(_)) as usize
        + ct.subtype.len()
        + cl as usize
}

fn bench(c: &mut Criterion) {
    assert!(
        INVITE.len() > 900 && INVITE.len() < 1200,
        "{}",
        INVITE.len()
    );
    let limits = Limits::default();
    let input = Bytes::from_static(INVITE);
    {
        let mut m = parse_datagram(input.clone(), &limits).unwrap();
        m.validate().unwrap();
        assert_eq!(m.body().len(), 325);
    }
    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Bytes(INVITE.len() as u64));
    g.bench_function("parse_invite", |b| {
        b.iter(|| parse_datagram(black_box(input.clone()), &limits).unwrap())
    });
    g.bench_function("parse_invite_read_key_headers", |b| {
        b.iter(|| {
            let m = parse_datagram(black_box(input.clone()), &limits).unwrap();
            black_box(read_key_headers(&m))
        })
    });
    g.bench_function("parse_validate_invite", |b| {
        b.iter(|| {
            let mut m = parse_datagram(black_box(input.clone()), &limits).unwrap();
            m.validate().unwrap();
            black_box(m.get(HeaderName::CallId).is_some())
        })
    });
    let msg = parse_datagram(input.clone(), &limits).unwrap();
    let mut out = Vec::with_capacity(2048);
    g.bench_function("proxy_edit_render", |b| {
        b.iter(|| {
            let mut e = Editor::new(black_box(&msg));
            e.prepend_via("SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKproxy1")
                .unwrap();
            e.replace("Max-Forwards", "69").unwrap();
            out.clear();
            e.render_into(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
