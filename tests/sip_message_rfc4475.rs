//! RFC 4475 torture tests against the message layer.
//!
//! Each message of the corpus is parsed as a UDP datagram (`parse_datagram`,
//! then `validate()` for requests), and the outcome is compared with the
//! `acceptable` column of EXPECTED.tsv:
//!
//! * `Process`   — parsed and validated; what happens next is the engine's
//!   job. It satisfies `process` and every *semantic* status (416, 420, 483,
//!   501, 401, 406, 415, 200, 404, 405): those are decided by the engine from
//!   data this layer exposes, which `semantic_data_is_exposed` checks.
//! * `Status(n)` — a parse/validate error on an answerable request
//!   (`is_answerable`, via `Message::salvage` when parsing failed):
//!   `ParseError::status_code()` (400 or 505).
//! * `Drop`      — responses (never answered, RFC 3261 §18.1.2) and
//!   unanswerable junk.
//!
//! Which layer decides what:
//! * parser: start line (lwsruri, lwsstart, trws, ltgtruri, bigcode, test),
//!   Content-Length framing (clerr, ncl, mcl01), dblreq trailing bytes;
//! * validate(): version (badvers 505), Via/From/To/Contact/Route syntax
//!   (badinv01, quotbal, badaspec, baddn, regbadct), CSeq range/method
//!   (scalar02, mismatch01/02), duplicates/missing (multi01, insuf), URI
//!   headers in the Request-URI (escruri);
//! * engine: unkscm/novelsc 416, bext01 420, zeromf 483, esc02/mismatch02
//!   501, regaut01 401, sdp01 406, invut 415, cparam01/02 and regescrt
//!   bindings, unksm2 registrar 400, bcast drop, badbranch 2543 matching,
//!   baddate (ignored), scalar02 Expires (treat as absent).

use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::PathBuf;
use switchboard::sip::message::{
    frame_stream, parse_datagram, parse_stream_frame, Contact, Frame, HeaderName, HostKind, Limits,
    Message, Method, NameAddr, Params, ParseError, Rport, Scheme, Uri, Via,
};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475")
}

struct Row {
    name: String,
    file: String,
    verdict: String,
    acceptable: Vec<String>,
}

fn rows() -> Vec<Row> {
    let tsv = std::fs::read_to_string(data_dir().join("EXPECTED.tsv")).unwrap();
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (c_name, c_file, c_verdict, c_acc) = (
        col("name"),
        col("file"),
        col("rfc_verdict"),
        col("acceptable"),
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Row {
                name: f[c_name].to_string(),
                file: f[c_file].to_string(),
                verdict: f[c_verdict].to_string(),
                acceptable: f[c_acc].split('|').map(str::to_string).collect(),
            }
        })
        .collect()
}

fn load(file: &str) -> Bytes {
    Bytes::from(std::fs::read(data_dir().join(file)).unwrap())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Process,
    Status(u16),
    Drop,
}

fn udp_outcome(bytes: &Bytes) -> (Outcome, Result<Message, ParseError>) {
    let limits = Limits::default();
    match parse_datagram(bytes.clone(), &limits) {
        Ok(m) if m.is_response() => (Outcome::Drop, Ok(m)),
        Ok(mut m) => match m.validate() {
            Ok(()) => (Outcome::Process, Ok(m)),
            Err(e) if m.is_answerable() => (Outcome::Status(e.status_code()), Err(e)),
            Err(e) => (Outcome::Drop, Err(e)),
        },
        Err(e) => match Message::salvage(bytes.clone(), &limits) {
            Some(head) if head.is_answerable() => (Outcome::Status(e.status_code()), Err(e)),
            _ => (Outcome::Drop, Err(e)),
        },
    }
}

fn allowed(o: Outcome, acceptable: &[String]) -> bool {
    acceptable.iter().any(|a| match (o, a.as_str()) {
        (Outcome::Process, "process") => true,
        (Outcome::Drop, "drop") => true,
        // A semantic status is produced by the engine after a clean parse.
        (Outcome::Process, code) => code
            .parse::<u16>()
            .is_ok_and(|c| c != 400 && c != 505 && c != 513),
        (Outcome::Status(n), code) => code.parse::<u16>() == Ok(n),
        _ => false,
    })
}

#[test]
fn corpus_is_complete() {
    let rows = rows();
    assert_eq!(rows.len(), 50);
    for r in &rows {
        assert!(data_dir().join(&r.file).exists(), "{}", r.file);
    }
}

#[test]
fn every_outcome_is_acceptable() {
    let mut failures = Vec::new();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows() {
        let bytes = load(&r.file);
        let (o, res) = udp_outcome(&bytes);
        *tally.entry(format!("{o:?}")).or_default() += 1;
        if !allowed(o, &r.acceptable) {
            failures.push(format!(
                "{}: got {o:?} ({res:?}), acceptable {:?}",
                r.name, r.acceptable
            ));
        }
        // Valid messages must always parse (requests must also validate).
        if r.verdict == "valid" {
            let mut m = parse_datagram(bytes.clone(), &Limits::default())
                .unwrap_or_else(|e| panic!("{}: valid message rejected: {e}", r.name));
            if m.is_request() {
                if let Err(e) = m.validate() {
                    failures.push(format!("{}: valid request failed validate: {e}", r.name));
                }
            }
        }
    }
    eprintln!("outcomes: {tally:?}");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn parse(name: &str) -> Message {
    parse_datagram(load(&format!("{name}.dat")), &Limits::default()).unwrap()
}

fn err(name: &str) -> ParseError {
    let (_, res) = udp_outcome(&load(&format!("{name}.dat")));
    res.unwrap_err()
}

#[test]
fn specific_errors() {
    assert_eq!(err("badinv01"), ParseError::BadHeader("Via"));
    assert_eq!(err("clerr"), ParseError::BodyTruncated);
    assert_eq!(err("ncl"), ParseError::BadContentLength);
    assert_eq!(err("scalar02"), ParseError::CSeqOutOfRange);
    assert_eq!(err("quotbal"), ParseError::BadHeader("To"));
    assert_eq!(err("ltgtruri"), ParseError::BadRequestUri);
    assert_eq!(err("lwsruri"), ParseError::BadRequestLine);
    assert_eq!(err("lwsstart"), ParseError::BadRequestLine);
    assert_eq!(err("trws"), ParseError::BadRequestLine);
    assert_eq!(err("escruri"), ParseError::BadRequestUri);
    assert_eq!(err("regbadct"), ParseError::BadHeader("Contact"));
    assert_eq!(err("badaspec"), ParseError::BadHeader("To"));
    assert_eq!(err("baddn"), ParseError::BadHeader("From"));
    assert_eq!(err("badvers"), ParseError::VersionNotSupported);
    assert_eq!(err("mismatch01"), ParseError::CSeqMethodMismatch);
    assert_eq!(err("mismatch02"), ParseError::CSeqMethodMismatch);
    assert_eq!(err("bigcode"), ParseError::BadStatusLine);
    assert_eq!(err("multi01"), ParseError::DuplicateHeader("From"));
    assert_eq!(err("mcl01"), ParseError::ConflictingContentLength);
    assert_eq!(err("insuf"), ParseError::MissingHeader("From"));
    assert_eq!(err("test"), ParseError::BadRequestLine);
    // Error texts are reason phrases.
    assert_eq!(
        err("clerr").to_string(),
        "Content-Length larger than message"
    );
    assert_eq!(err("badinv01").to_string(), "Malformed Via header");
    assert_eq!(err("scalar02").to_string(), "CSeq out of range");
}

#[test]
fn salvage_allows_answering() {
    let limits = Limits::default();
    for name in [
        "clerr", "ncl", "mcl01", "lwsruri", "lwsstart", "trws", "ltgtruri",
    ] {
        let head = Message::salvage(load(&format!("{name}.dat")), &limits).unwrap();
        assert!(head.is_answerable(), "{name}");
        let resp = head.reply(400, "Bad Request").unwrap().to_tag("x1").build();
        let mut r = parse_datagram(Bytes::from(resp), &limits).unwrap();
        r.validate().unwrap();
        assert_eq!(r.status(), Some(400));
        assert_eq!(r.call_id().unwrap(), head.call_id().unwrap());
    }
    assert!(Message::salvage(load("test.dat"), &limits).is_none());
    assert!(Message::salvage(load("bigcode.dat"), &limits).is_none());
    assert!(!Message::salvage(load("insuf.dat"), &limits)
        .unwrap()
        .is_answerable());
    // A broken Contact still allows a 400 with the raw mandatory headers.
    let m = parse("regbadct");
    assert!(m.is_answerable());
    let out = m
        .reply(400, "Malformed Contact header")
        .unwrap()
        .to_tag("t")
        .build();
    let mut r = parse_datagram(Bytes::from(out), &limits).unwrap();
    r.validate().unwrap();
    assert_eq!(r.reason(), Some(&b"Malformed Contact header"[..]));
}

#[test]
fn valid_messages_expose_their_data() {
    // wsinv: folding, odd LWS, mixed case and compact names.
    let m = parse("wsinv");
    assert_eq!(m.method(), Some(Method::Invite));
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].transport(), b"UDP");
    assert_eq!(vias[0].host().raw(), b"192.0.2.2");
    assert_eq!(vias[0].branch(), Some(&b"390skdjuw"[..]));
    assert_eq!(vias[1].transport(), b"TCP");
    assert_eq!(vias[2].branch(), Some(&b"z9hG4bK30239"[..]));
    let from = m.from_header().unwrap();
    assert_eq!(from.tag(), Some(&b"98asjd8"[..]));
    assert_eq!(&*from.display_name_unquoted().unwrap(), b"J Rosenberg \\\"");
    assert_eq!(m.to_header().unwrap().tag(), Some(&b"1918181833n"[..]));
    assert_eq!(m.max_forwards(), Ok(Some(68)));
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    assert_eq!(m.body().len(), 150);
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(c.params().get("newparam"), Some(Some(&b"newvalue"[..])));
    assert_eq!(c.q(), Some(Ok(330)));
    assert_eq!(m.header_value("subject"), Some(&b""[..]));
    assert_eq!(
        m.header_value("UnknownHeaderWithUnusualValue"),
        Some(&b";;,,;;,;"[..])
    );
    assert_eq!(
        &*m.header("newfangledheader").unwrap().value_unfolded(),
        b"newfangled value continued newfangled value"
    );
    assert!(m.routes().next().unwrap().unwrap().uri().lr());

    // intmeth: every token char, NUL/BEL/DEL in a quoted display name.
    let m = parse("intmeth");
    assert_eq!(
        m.method(),
        Some(Method::Extension(
            b"!interesting-Method0123456789_*+`.%indeed'~"
        ))
    );
    assert_eq!(m.cseq().unwrap().method, m.method().unwrap());
    let to = m.to_header().unwrap();
    assert_eq!(
        &*to.display_name_unquoted().unwrap(),
        b"BEL:\x07 NUL:\x00 DEL:\x7f"
    );
    assert_eq!(
        m.call_id().unwrap(),
        b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
    let ext = m.headers().find(|h| h.name == HeaderName::Other).unwrap();
    assert_eq!(ext.raw_name, b"extensionHeader-!.%*+_`'~");
    assert!(ext.value_str().is_some()); // UTF-8 kept byte-exact
    assert_eq!(
        m.from_header().unwrap().tag(),
        Some(&b"_token~1'+`*%!-."[..])
    );

    // esc01 / escnull: escapes decoded on demand, %00 not truncated.
    let m = parse("esc01");
    assert_eq!(
        &*m.request_uri().unwrap().user_unescaped().unwrap(),
        b"sips:user@example.com"
    );
    assert_eq!(
        m.request_uri().unwrap().host().unwrap().raw(),
        b"example.net"
    );
    assert!(m.content_type().unwrap().unwrap().is("application/sdp"));
    let m = parse("escnull");
    let users: Vec<Vec<u8>> = m
        .contacts()
        .map(|c| match c.unwrap() {
            Contact::Addr(a) => a.uri().user_unescaped().unwrap().into_owned(),
            Contact::Star => panic!(),
        })
        .collect();
    assert_eq!(users, vec![vec![0u8], vec![0u8, 0u8]]);

    // esc02: '%' is not an escape in methods, and C%6Fntact is not Contact.
    let m = parse("esc02");
    assert_eq!(m.method(), Some(Method::Extension(b"RE%47IST%45R")));
    assert_eq!(m.contacts().count(), 2);
    assert!(m.header("C%6Fntact").is_some());

    let m = parse("lwsdisp");
    assert_eq!(
        m.from_header().unwrap().display_name(),
        Some(&b"caller"[..])
    );

    let m = parse("longreq");
    assert!(m.as_bytes().len() > 3000);
    assert!(m.vias().count() > 10);
    assert!(m.vias().all(|v| v.is_ok()));

    // dblreq over UDP: only the REGISTER.
    let m = parse("dblreq");
    assert_eq!(m.method(), Some(Method::Register));
    assert!(m.body().is_empty());
    assert!(m.as_bytes().ends_with(b"Content-Length: 0\r\n\r\n"));

    // semiuri: ';' in the user part.
    let m = parse("semiuri");
    let u = m.request_uri().unwrap();
    assert_eq!(u.user(), Some(&b"user;par=u%40example.net"[..]));
    assert_eq!(u.host().unwrap().raw(), b"example.com");
    assert!(u.params().is_empty());
    assert_eq!(m.values(HeaderName::Accept).count(), 6);

    let m = parse("transports");
    let t: Vec<Vec<u8>> = m.vias().map(|v| v.unwrap().transport().to_vec()).collect();
    assert_eq!(t, [&b"UDP"[..], b"SCTP", b"TLS", b"UNKNOWN", b"TCP"]);

    // mpart01: binary body kept byte-exact.
    let m = parse("mpart01");
    assert_eq!(m.body().len(), 553);
    assert!(std::str::from_utf8(m.body()).is_err());
    let ct = m.content_type().unwrap().unwrap();
    assert!(ct.is("multipart/mixed"));
    assert_eq!(
        ct.params.get("boundary"),
        Some(Some(&b"7a9cbec02ceef655"[..]))
    );
    assert_eq!(m.top_via().unwrap().rport(), Some(Rport::Requested));
    assert!(m.header("y").unwrap().value.len() > 100);

    let m = parse("unreason");
    assert_eq!(m.status(), Some(200));
    assert!(std::str::from_utf8(m.reason().unwrap())
        .unwrap()
        .contains("2**3 * 5**2"));
    let m = parse("noreason");
    assert_eq!((m.status(), m.reason()), (Some(100), Some(&b""[..])));

    let m = parse("inv2543");
    assert_eq!(m.content_length(), None);
    assert!(m.body().starts_with(b"v=0"));
    assert_eq!(m.max_forwards(), Ok(None));
    assert_eq!(m.top_via().unwrap().branch(), None);
    assert_eq!(m.from_header().unwrap().tag(), None);
}

#[test]
fn semantic_data_is_exposed() {
    // 416: unknown schemes stay opaque.
    let u = parse("unkscm");
    assert_eq!(u.request_uri().unwrap().scheme(), Scheme::Other);
    let m = parse("novelsc");
    assert_eq!(m.request_uri().unwrap().scheme_raw(), b"soap.beep");
    let m = parse("unksm2");
    assert_eq!(m.to_header().unwrap().uri().scheme_raw(), b"isbn");
    assert_eq!(m.from_header().unwrap().uri().scheme_raw(), b"http");
    // 420: option tags.
    let m = parse("bext01");
    let pr: Vec<&[u8]> = m.proxy_require().collect();
    assert_eq!(
        pr,
        [&b"noProxiesSupportThis"[..], b"norDoAnyProxiesSupportThis"]
    );
    assert_eq!(m.require().count(), 2);
    assert!(m.top_via().unwrap().transport_is("tls"));
    // 483
    assert_eq!(parse("zeromf").max_forwards(), Ok(Some(0)));
    // 415 / 406
    assert!(parse("invut")
        .content_type()
        .unwrap()
        .unwrap()
        .is("application/unknownformat"));
    assert_eq!(
        parse("sdp01").header_value("Accept"),
        Some(&b"text/nobodyKnowsThis"[..])
    );
    // 401: unknown auth scheme parses generically.
    let m = parse("regaut01");
    let c = m.authorizations().next().unwrap().unwrap();
    assert!(!c.is_digest());
    assert_eq!(c.param_raw("opaque-data"), Some(&b"here"[..]));
    // cparam01/02: contact-param vs url-parameter.
    let m = parse("cparam01");
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!()
    };
    assert!(c.params().contains("unknownparam") && c.uri().params().is_empty());
    let m = parse("cparam02");
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!()
    };
    assert!(!c.params().contains("unknownparam") && c.uri().params().contains("unknownparam"));
    let m = parse("regescrt");
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(
        c.uri().headers(),
        Some(&b"Route=%3Csip:sip.example.com%3E"[..])
    );
    // bcast: the engine sees the broadcast sent-by.
    let m = parse("bcast");
    let v2 = m.vias().nth(1).unwrap().unwrap();
    assert_eq!(
        v2.host().kind(),
        HostKind::Ipv4("255.255.255.255".parse().unwrap())
    );
    // badbranch: no usable RFC 3261 branch.
    assert!(!parse("badbranch").top_via().unwrap().has_rfc3261_branch());
    // scalar02: each scalar individually out of range.
    let m = parse_datagram(load("scalar02.dat"), &Limits::default()).unwrap();
    assert_eq!(m.max_forwards(), Err(ParseError::MaxForwardsOutOfRange));
    assert_eq!(m.expires(), Err(ParseError::ExpiresOutOfRange));
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(c.expires(), Some(Err(ParseError::ExpiresOutOfRange)));
    // scalarlg: response parses, its CSeq does not overflow.
    let m = parse("scalarlg");
    assert_eq!(m.cseq(), Err(ParseError::CSeqOutOfRange));
    // baddate: Date is not validated.
    assert!(parse("baddate").validate().is_ok());
}

/// Runs a buffer through the stream framer the way a TCP transport would.
fn drain_stream(
    mut buf: &[u8],
) -> (
    Vec<Result<Message, ParseError>>,
    usize,
    Result<(), ParseError>,
) {
    let limits = Limits::default();
    let mut out = Vec::new();
    let mut keepalives = 0;
    loop {
        match frame_stream(buf, &limits) {
            Ok(None) => return (out, keepalives, Ok(())),
            Ok(Some(Frame::KeepAlive { len, .. })) => {
                keepalives += 1;
                buf = &buf[len..];
            }
            Ok(Some(Frame::Message(len))) => {
                out.push(parse_stream_frame(
                    Bytes::copy_from_slice(&buf[..len]),
                    &limits,
                ));
                buf = &buf[len..];
            }
            Err(e) => return (out, keepalives, Err(e)),
        }
    }
}

#[test]
fn tcp_framing_of_corpus() {
    // dblreq: two pipelined requests (CRLF between them is a keep-alive).
    // The INVITE's body is 155 octets for a Content-Length of 150, so on a
    // stream its last 5 octets ("C" CRLF CRLF) are a broken third message:
    // a framing error after both requests were delivered.
    let (msgs, ka, end) = drain_stream(&load("dblreq.dat"));
    assert_eq!(end, Err(ParseError::MissingContentLength));
    assert_eq!(ka, 1);
    let methods: Vec<_> = msgs
        .iter()
        .map(|m| m.as_ref().unwrap().method().unwrap().as_bytes().to_vec())
        .collect();
    assert_eq!(methods, [b"REGISTER".to_vec(), b"INVITE".to_vec()]);
    // clerr: announces more than it sends: incomplete, not an error.
    let (msgs, _, end) = drain_stream(&load("clerr.dat"));
    assert!(msgs.is_empty());
    assert_eq!(end, Ok(()));
    // ncl / mcl01: unrecoverable framing errors (close the connection).
    assert_eq!(
        drain_stream(&load("ncl.dat")).2,
        Err(ParseError::BadContentLength)
    );
    assert_eq!(
        drain_stream(&load("mcl01.dat")).2,
        Err(ParseError::ConflictingContentLength)
    );
    // inv2543 has no Content-Length: not allowed on streams.
    assert_eq!(
        drain_stream(&load("inv2543.dat")).2,
        Err(ParseError::MissingContentLength)
    );

    // Every other message with a Content-Length frames exactly like its
    // datagram parse, even when delivered in small chunks.
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for r in rows() {
        let bytes = load(&r.file);
        let Ok(dg) = parse_datagram(bytes.clone(), &Limits::default()) else {
            continue;
        };
        let head = &dg.as_bytes()[..dg.as_bytes().len() - dg.body().len()];
        // Skip what a stream cannot carry as is: no Content-Length
        // (inv2543), no empty line (baddn), trailing octets (dblreq).
        if dg.content_length().is_none() || !head.ends_with(b"\r\n\r\n") || r.name == "dblreq" {
            continue;
        }
        stream.extend_from_slice(dg.as_bytes());
        expected.push(dg.as_bytes().to_vec());
    }
    assert!(expected.len() > 35, "{}", expected.len());
    for chunk in [1usize, 7, 64, 1500, usize::MAX] {
        let limits = Limits::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk.min(stream.len())) {
            buf.extend_from_slice(piece);
            while let Some(f) = frame_stream(&buf, &limits).unwrap() {
                match f {
                    Frame::KeepAlive { len, .. } => drop(buf.drain(..len)),
                    Frame::Message(len) => {
                        let frame: Vec<u8> = buf.drain(..len).collect();
                        let m = parse_stream_frame(Bytes::from(frame), &limits).unwrap();
                        got.push(m.as_bytes().to_vec());
                    }
                }
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got, expected, "chunk size {chunk}");
    }
}

/// The tag shortcuts (`from_tag`, `to_tag`, which skip the URI) give what a
/// full parse of From and To gives, on every message of the corpus that
/// parses and validates, and on the headers of those that parse only.
#[test]
fn tag_shortcuts_match_full_parses() {
    let mut compared = 0;
    for r in rows() {
        let Ok(mut m) = parse_datagram(load(&r.file), &Limits::default()) else {
            continue;
        };
        let full_to = m.to_header().ok().and_then(|t| t.tag()).map(<[u8]>::to_vec);
        let full_from = m
            .from_header()
            .ok()
            .and_then(|f| f.tag())
            .map(<[u8]>::to_vec);
        let (full_to, full_from) = (full_to.as_deref(), full_from.as_deref());
        if m.validate().is_ok() {
            assert_eq!(m.to_tag(), full_to, "{} To", r.name);
            assert_eq!(m.from_tag(), full_from, "{} From", r.name);
            compared += 1;
        } else {
            // Unvalidated: the shortcut may find a tag a full parse refuses
            // (a bad URI), never a different one.
            if let Some(t) = full_to {
                assert_eq!(m.to_tag(), Some(t), "{} To", r.name);
            }
            if let Some(t) = full_from {
                assert_eq!(m.from_tag(), Some(t), "{} From", r.name);
            }
        }
    }
    assert!(compared >= 20, "only {compared} messages validated");
}

/// What `validate` keeps (the top Via, From, To and Request-URI, read
/// afterwards without a parse) is what a fresh parse of the same bytes
/// gives, part for part and at the same place in the buffer, on every
/// message of the corpus that validates.
#[test]
fn kept_views_are_the_fresh_parses() {
    let mut compared = 0;
    for r in rows() {
        let Ok(mut m) = parse_datagram(load(&r.file), &Limits::default()) else {
            continue;
        };
        if m.validate().is_err() {
            continue;
        }
        let via_value = m.values(HeaderName::Via).next().expect("a Via");
        let fresh = Via::parse(via_value).expect("the top Via parses");
        let kept = m.top_via().expect("kept Via");
        assert_eq!(kept, fresh, "{} Via", r.name);
        assert_eq!(kept.raw().as_ptr(), fresh.raw().as_ptr(), "{} Via", r.name);
        assert_eq!(kept.params().raw().as_ptr(), fresh.params().raw().as_ptr());
        for (name, kept) in [
            (HeaderName::From, m.from_header().expect("kept From")),
            (HeaderName::To, m.to_header().expect("kept To")),
        ] {
            let value = m.get(name).expect("the header").value;
            let fresh = NameAddr::parse(value).expect("parses");
            assert_eq!(kept, fresh, "{} {name:?}", r.name);
            assert_eq!(kept.uri().raw().as_ptr(), fresh.uri().raw().as_ptr());
            let end = |p: Params<'_>| p.raw().as_ptr_range().end;
            assert_eq!(end(kept.params()), end(fresh.params()), "{}", r.name);
            assert_eq!(end(kept.uri().params()), end(fresh.uri().params()));
        }
        if let Some(raw) = m.request_uri_raw() {
            let kept = m.request_uri().expect("kept Request-URI");
            assert_eq!(kept, Uri::parse(raw).expect("parses"), "{} R-URI", r.name);
            assert_eq!(kept.raw().as_ptr(), raw.as_ptr());
        }
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} messages validated");
}
