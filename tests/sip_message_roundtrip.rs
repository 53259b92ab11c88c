//! Property tests: generated messages are rendered, parsed back and must
//! come out identical (methods incl. unknown tokens, URIs incl. IPv6,
//! compact and unknown headers, binary bodies), and an unedited message is
//! relayed byte-exact.

use bytes::Bytes;
use proptest::prelude::*;
use switchboard::sip::message::{
    frame_stream, parse_datagram, parse_stream_frame, Editor, Frame, HeaderName, Limits, Message,
    MessageBuilder, Method, Rport, Scheme,
};

const TOKEN_CHARS: &str = "[A-Za-z0-9.!%*_+`'~-]";

fn method() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "OPTIONS",
            "REGISTER",
            "PRACK",
            "SUBSCRIBE",
            "NOTIFY",
            "PUBLISH",
            "INFO",
            "REFER",
            "MESSAGE",
            "UPDATE",
            "invite",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        proptest::string::string_regex(&format!("{TOKEN_CHARS}{{1,16}}"))
            .unwrap()
            .prop_map(|s| s.into_bytes()),
    ]
}

#[derive(Debug, Clone)]
enum HostGen {
    Domain(String),
    V4([u8; 4]),
    V6([u16; 8]),
}

impl HostGen {
    fn render(&self) -> String {
        match self {
            HostGen::Domain(d) => d.clone(),
            HostGen::V4(a) => format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]),
            HostGen::V6(a) => format!("[{}]", std::net::Ipv6Addr::from(*a)),
        }
    }
}

fn host() -> impl Strategy<Value = HostGen> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9]{0,6}){0,3}".prop_map(HostGen::Domain),
        any::<[u8; 4]>().prop_map(HostGen::V4),
        any::<[u16; 8]>().prop_map(HostGen::V6),
    ]
}

#[derive(Debug, Clone)]
struct UriGen {
    text: String,
    scheme: Scheme,
    user: Option<String>,
    host: Option<String>,
    port: Option<u16>,
}

fn uri() -> impl Strategy<Value = UriGen> {
    let sip = (
        any::<bool>(),
        proptest::option::of("[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,12}|%[0-9A-F]{2}[a-z]{1,4}"),
        host(),
        proptest::option::of(any::<u16>()),
        proptest::collection::vec("[a-z]{1,6}(=[a-zA-Z0-9]{1,6})?", 0..3),
    )
        .prop_map(|(secure, user, host, port, params)| {
            let mut t = String::from(if secure { "sips:" } else { "sip:" });
            if let Some(u) = &user {
                t.push_str(u);
                t.push('@');
            }
            let h = host.render();
            t.push_str(&h);
            if let Some(p) = port {
                t.push_str(&format!(":{p}"));
            }
            for p in params {
                t.push(';');
                t.push_str(&p);
            }
            UriGen {
                text: t,
                scheme: if secure { Scheme::Sips } else { Scheme::Sip },
                user,
                host: Some(h),
                port,
            }
        });
    let tel = "\\+[0-9]{1,15}".prop_map(|n| UriGen {
        text: format!("tel:{n}"),
        scheme: Scheme::Tel,
        user: Some(n),
        host: None,
        port: None,
    });
    let other = "x[a-z0-9+.-]{0,8}:[a-zA-Z0-9/._~-]{1,20}".prop_map(|t| UriGen {
        text: t,
        scheme: Scheme::Other,
        user: None,
        host: None,
        port: None,
    });
    prop_oneof![3 => sip, 1 => tel, 1 => other]
}

fn header_name() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        "Via",
        "v",
        "V",
        "From",
        "f",
        "To",
        "t",
        "Call-ID",
        "i",
        "call-id",
        "CSeq",
        "Contact",
        "m",
        "Content-Type",
        "c",
        "Content-Encoding",
        "e",
        "Subject",
        "s",
        "Supported",
        "k",
        "Event",
        "o",
        "Refer-To",
        "r",
        "Referred-By",
        "b",
        "Allow-Events",
        "u",
        "Accept-Contact",
        "a",
        "Reject-Contact",
        "j",
        "Request-Disposition",
        "d",
        "Session-Expires",
        "x",
        "Identity",
        "y",
        "Identity-Info",
        "n",
        "Route",
        "Record-Route",
        "MAX-FORWARDS",
        "WWW-Authenticate",
    ])
    .prop_map(str::to_string);
    let unknown = proptest::string::string_regex(&format!("{TOKEN_CHARS}{{1,20}}"))
        .unwrap()
        .prop_filter("not Content-Length", |n| {
            HeaderName::parse(n) != HeaderName::ContentLength
        });
    prop_oneof![known, unknown]
}

/// Any bytes but CR/LF, without leading/trailing white space (the parser
/// trims values, RFC 3261 §7.3.1).
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..48,
    )
    .prop_map(|v| {
        let ws = |b: &u8| *b == b' ' || *b == b'\t';
        let s = v.iter().position(|b| !ws(b)).unwrap_or(v.len());
        let e = v.iter().rposition(|b| !ws(b)).map_or(s, |i| i + 1);
        v[s..e].to_vec()
    })
}

fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    proptest::collection::vec((header_name(), header_value()), 0..24)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..300)
}

fn check_common(m: &Message, hdrs: &[(String, Vec<u8>)], body: &[u8], wire: &[u8]) {
    // Headers: same order, names and values, then the computed Content-Length.
    let got: Vec<(Vec<u8>, Vec<u8>)> = m
        .headers()
        .map(|h| (h.raw_name.to_vec(), h.value.to_vec()))
        .collect();
    assert_eq!(got.len(), hdrs.len() + 1);
    for (g, (n, v)) in got.iter().zip(hdrs) {
        assert_eq!(&g.0, n.as_bytes());
        assert_eq!(&g.1, v);
    }
    for (i, (n, _)) in hdrs.iter().enumerate() {
        // Lookup by the generated spelling finds this line (or an earlier
        // line of the same header).
        let found = m.header(n).unwrap();
        assert!(found.index <= i);
        assert_eq!(found.name, HeaderName::parse(n));
    }
    assert_eq!(m.body(), body);
    assert_eq!(m.content_length(), Some(body.len() as u32));
    // Relaying unchanged is byte-exact.
    assert_eq!(Editor::new(m).render(), wire);
    // Stream framing sees exactly one message.
    assert_eq!(
        frame_stream(wire, &Limits::default()),
        Ok(Some(Frame::Message(wire.len())))
    );
    let s = parse_stream_frame(Bytes::copy_from_slice(wire), &Limits::default()).unwrap();
    assert_eq!(s.as_bytes(), m.as_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn request_round_trip(method in method(), u in uri(), hdrs in headers(), body in body()) {
        let mut b = MessageBuilder::request(Method::from_bytes(&method), &u.text).unwrap();
        for (n, v) in &hdrs {
            b = b.header(n, v).unwrap();
        }
        let wire = b.build(&body);
        let m = parse_datagram(Bytes::from(wire.clone()), &Limits::default()).unwrap();
        prop_assert!(m.is_request());
        prop_assert_eq!(m.method().unwrap().as_bytes(), &method[..]);
        prop_assert_eq!(m.method().unwrap(), Method::from_bytes(&method));
        prop_assert_eq!(m.request_uri_raw().unwrap(), u.text.as_bytes());
        let pu = m.request_uri().unwrap();
        prop_assert_eq!(pu.scheme(), u.scheme);
        prop_assert_eq!(pu.user(), u.user.as_deref().map(str::as_bytes));
        prop_assert_eq!(pu.host().map(|h| h.raw()), u.host.as_deref().map(str::as_bytes));
        prop_assert_eq!(pu.port(), u.port);
        check_common(&m, &hdrs, &body, &wire);
    }

    #[test]
    fn response_round_trip(
        code in 100u16..=699,
        reason in proptest::collection::vec(any::<u8>().prop_filter("text", |b| *b >= 0x20 && *b != 0x7f), 0..30),
        hdrs in headers(),
        body in body(),
    ) {
        let reason_s = String::from_utf8_lossy(&reason).into_owned();
        let mut b = MessageBuilder::response(code, &reason_s).unwrap();
        for (n, v) in &hdrs {
            b = b.header(n, v).unwrap();
        }
        let wire = b.build(&body);
        let m = parse_datagram(Bytes::from(wire.clone()), &Limits::default()).unwrap();
        prop_assert_eq!(m.status(), Some(code));
        prop_assert_eq!(m.reason().unwrap(), reason_s.as_bytes());
        check_common(&m, &hdrs, &body, &wire);
    }

    /// Folded values (CRLF + SP/HT, RFC 3261 §7.3.1) keep their bytes and
    /// unfold to single spaces.
    #[test]
    fn folding(words in proptest::collection::vec("[a-zA-Z0-9]{1,8}", 1..6), tabs in any::<bool>()) {
        let sep = if tabs { "\r\n\t" } else { "\r\n  " };
        let folded = words.join(sep);
        let wire = format!("OPTIONS sip:a@b SIP/2.0\r\nX-Folded:{sep}{folded}\r\nl: 0\r\n\r\n");
        let m = parse_datagram(Bytes::from(wire), &Limits::default()).unwrap();
        let h = m.header("x-folded").unwrap();
        prop_assert_eq!(h.value, folded.as_bytes());
        prop_assert_eq!(h.value_unfolded().into_owned(), words.join(" ").into_bytes());
    }

    /// Typed views of generated Via / From values.
    #[test]
    fn typed_round_trip(
        transport in prop::sample::select(vec!["UDP", "TCP", "TLS", "SCTP", "WS", "X-NEW"]),
        h in host(),
        port in proptest::option::of(1u16..),
        branch in "z9hG4bK[a-zA-Z0-9.!%*_+`'~-]{1,20}",
        display in "[ -~]{0,16}",
        tag in "[a-zA-Z0-9.!%*_+`'~-]{1,12}",
        u in uri(),
    ) {
        let host = h.render();
        let port_s = port.map(|p| format!(":{p}")).unwrap_or_default();
        let via = format!("SIP/2.0/{transport} {host}{port_s};branch={branch};rport");
        let quoted: String = display.chars().flat_map(|c| {
            if c == '"' || c == '\\' { vec!['\\', c] } else { vec![c] }
        }).collect();
        let from = format!("\"{quoted}\" <{}>;tag={tag}", u.text);
        let wire = MessageBuilder::request(Method::Options, "sip:x@example.com").unwrap()
            .header("v", &via).unwrap()
            .header("f", &from).unwrap()
            .header("t", "<sip:x@example.com>").unwrap()
            .header("i", "abc@def").unwrap()
            .header("CSeq", "1 OPTIONS").unwrap()
            .build(b"");
        let mut m = parse_datagram(Bytes::from(wire), &Limits::default()).unwrap();
        m.validate().unwrap();
        let v = m.top_via().unwrap();
        prop_assert_eq!(v.transport(), transport.as_bytes());
        prop_assert_eq!(v.host().raw(), host.as_bytes());
        prop_assert_eq!(v.port(), port);
        prop_assert_eq!(v.branch(), Some(branch.as_bytes()));
        prop_assert_eq!(v.rport(), Some(Rport::Requested));
        let f = m.from_header().unwrap();
        prop_assert_eq!(f.display_name_unquoted().unwrap().into_owned(), display.into_bytes());
        prop_assert_eq!(f.tag(), Some(tag.as_bytes()));
        prop_assert_eq!(f.uri().raw(), u.text.as_bytes());
    }
}

fn corpus() -> &'static [Vec<u8>] {
    static C: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475");
        let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "dat"))
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        v.sort();
        v
    })
}

/// The fuzz target's invariants on stable: mutated torture messages never
/// panic anything, and whatever parses renders and re-parses identically.
fn fuzz_one(data: &[u8]) {
    let limits = Limits::default();
    let bytes = Bytes::copy_from_slice(data);
    let mut m = match parse_datagram(bytes.clone(), &limits) {
        Ok(m) => m,
        Err(_) => {
            if let Some(h) = Message::salvage(bytes, &limits) {
                if h.is_answerable() {
                    let out = h.reply(400, "Bad Request").unwrap().to_tag("z").build();
                    parse_datagram(Bytes::from(out), &limits).unwrap();
                }
            }
            return;
        }
    };
    let _ = m.validate();
    let _ = m.request_uri();
    let _ = m.vias().count();
    let _ = m.contacts().count();
    let _ = m.authorizations().count();
    let _ = (
        m.from_header(),
        m.to_header(),
        m.cseq(),
        m.call_id(),
        m.max_forwards(),
    );
    let out = Editor::new(&m).render();
    let relaxed = Limits {
        max_message_size: usize::MAX,
        max_headers: usize::MAX,
        ..limits
    };
    let m2 = parse_datagram(Bytes::from(out.clone()), &relaxed).unwrap();
    assert_eq!(m.start_line(), m2.start_line());
    assert_eq!(m.body(), m2.body());
    let hdrs = |m: &Message| -> Vec<(Vec<u8>, Vec<u8>)> {
        m.headers()
            .filter(|h| h.name != HeaderName::ContentLength)
            .map(|h| (h.raw_name.to_vec(), h.value.to_vec()))
            .collect()
    };
    assert_eq!(hdrs(&m), hdrs(&m2));
    assert_eq!(
        frame_stream(&out, &relaxed),
        Ok(Some(Frame::Message(out.len())))
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_corpus(
        idx in any::<prop::sample::Index>(),
        muts in proptest::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![0u8, b'\r', b'\n', b' ', b'\t', b',', b';', b'"', b'<', b'>', b':', b'%', b'\\', b'@', b'[', b'9', 0xff])), 1..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut d = idx.get(corpus()).clone();
        for (pos, b) in muts {
            let i = pos.index(d.len());
            d[i] = b;
        }
        if let Some(c) = cut {
            d.truncate(c.index(d.len() + 1));
        }
        fuzz_one(&d);
    }

    #[test]
    fn arbitrary_bytes(d in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzz_one(&d);
        let mut prefixed = b"INVITE sip:a@b SIP/2.0\r\n".to_vec();
        prefixed.extend_from_slice(&d);
        fuzz_one(&prefixed);
    }
}
