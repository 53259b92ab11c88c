//! Arbitrary bytes as a datagram and as a stream; whatever parses is
//! validated, its typed views exercised, rendered and re-parsed.
//! Run: `cargo +nightly fuzz run parse_message` (seed corpus: RFC 4475).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard::sip::message::{
    frame_stream, parse_datagram, parse_stream_frame, Editor, Frame, HeaderName, Limits, Message,
};

fn exercise(m: &Message) {
    let _ = m.validate();
    let _ = m
        .request_uri()
        .map(|u| (u.user_unescaped(), u.host(), u.port()));
    for v in m.vias() {
        let _ = v.map(|v| (v.branch(), v.rport(), v.received_ip(), v.ttl()));
    }
    let _ = m
        .from_header()
        .map(|f| (f.tag(), f.display_name_unquoted()));
    let _ = m.to_header();
    let _ = m.cseq();
    let _ = m.call_id();
    let _ = m.max_forwards();
    let _ = m.expires();
    for c in m.contacts() {
        let _ = c;
    }
    for r in m.routes().chain(m.record_routes()) {
        let _ = r;
    }
    for a in m.authorizations() {
        let _ = a.map(|c| (c.username(), c.nc_value()));
    }
    let _ = m.content_type();
    let _ = m.require().count();
    if m.is_answerable() {
        let out = m.reply(400, "Bad Request").unwrap().to_tag("fuzz").build();
        parse_datagram(Bytes::from(out), &Limits::default()).expect("built response must parse");
    }
}

/// Rendering an unedited message must give something that parses to the
/// same start line, headers and body.
fn render_round_trip(m: &Message) {
    let out = Editor::new(m).render();
    // Rendering may add a Content-Length line: allow for it.
    let relaxed = Limits {
        max_message_size: usize::MAX,
        max_headers: usize::MAX,
        ..Limits::default()
    };
    let m2 =
        parse_datagram(Bytes::from(out.clone()), &relaxed).expect("rendered message must re-parse");
    assert_eq!(m.start_line(), m2.start_line());
    assert_eq!(m.body(), m2.body());
    let hdrs = |m: &Message| -> Vec<(Vec<u8>, Vec<u8>)> {
        m.headers()
            .filter(|h| h.name != HeaderName::ContentLength)
            .map(|h| (h.raw_name.to_vec(), h.value.to_vec()))
            .collect()
    };
    assert_eq!(hdrs(m), hdrs(&m2));
    // The rendered form is always stream-framable.
    assert_eq!(
        frame_stream(&out, &relaxed),
        Ok(Some(Frame::Message(out.len())))
    );
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let bytes = Bytes::copy_from_slice(data);
    match parse_datagram(bytes.clone(), &limits) {
        Ok(m) => {
            exercise(&m);
            render_round_trip(&m);
        }
        Err(_) => {
            if let Some(head) = Message::salvage(bytes, &limits) {
                exercise(&head);
            }
        }
    }
    let mut buf = data;
    loop {
        match frame_stream(buf, &limits) {
            Ok(Some(Frame::KeepAlive { len, .. })) => buf = &buf[len..],
            Ok(Some(Frame::Message(len))) => {
                if let Ok(m) = parse_stream_frame(Bytes::copy_from_slice(&buf[..len]), &limits) {
                    exercise(&m);
                    render_round_trip(&m);
                }
                buf = &buf[len..];
            }
            Ok(None) | Err(_) => break,
        }
    }
});
