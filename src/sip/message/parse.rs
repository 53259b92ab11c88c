//! Splitting bytes into start line, header index and body.
//!
//! This step only checks the *line syntax* (RFC 3261 §7.1-§7.5): start line,
//! `name HCOLON value` lines with folding, the empty line, and the body length
//! from Content-Length (RFC 3261 §18.3, §20.14). Typed checks of individual
//! headers are the second step, [`Message::validate`], so that the engine can
//! still build a 400 for a request whose, say, Contact is broken.

use super::framing::parse_content_length;
use super::header::HeaderName;
use super::limits::{LimitKind, Limits};
use super::msg::{Entry, Message, Span, StartLine};
use super::scan::{eq_ic, is_token_str, trim_ws};
use super::uri::split_scheme;
use super::ParseError;
use bytes::{Buf, Bytes};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Datagram,
    Stream,
    Salvage,
}

/// Parses one UDP (or other datagram) payload.
///
/// * Content-Length absent: the body is the rest of the datagram
///   (RFC 3261 §18.3, RFC 2543 compatibility, RFC 4475 inv2543).
/// * Content-Length larger than what arrived: [`ParseError::BodyTruncated`]
///   (RFC 4475 clerr).
/// * Bytes beyond Content-Length are discarded (RFC 4475 dblreq).
/// * A datagram that ends without the empty line is accepted as header-only
///   (RFC 4475 baddn is published that way; nothing can follow anyway).
pub fn parse_datagram(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
    parse(buf, limits, Mode::Datagram)
}

/// Parses one message framed by [`super::frame_stream`] from a stream
/// transport. Content-Length is mandatory (RFC 3261 §18.3); leading CRLFs
/// are skipped (§7.5).
pub fn parse_stream_frame(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
    parse(buf, limits, Mode::Stream)
}

impl Message {
    /// Convenience: parses a datagram from a slice (copies it once).
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        parse_datagram(Bytes::copy_from_slice(bytes), &Limits::default())
    }

    /// For text typed by a person (e.g. a REST "evaluate this message"
    /// request): lone LF line ends become CRLF, then the text is parsed as a
    /// datagram. If there is no blank line, the whole text is the header
    /// section.
    pub fn parse_text(text: &str, limits: &Limits) -> Result<Message, ParseError> {
        let b = text.as_bytes();
        let mut out = Vec::with_capacity(b.len() + 64);
        for (i, &c) in b.iter().enumerate() {
            if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
                out.push(b'\r');
            }
            out.push(c);
        }
        parse_datagram(Bytes::from(out), limits)
    }

    /// Best-effort recovery of a request's head after [`parse_datagram`] or
    /// [`parse_stream_frame`] failed, so that the engine can answer 400/505
    /// (RFC 4475: clerr, ncl, mcl01, lwsruri ...). The start line only needs
    /// a method token, Content-Length is ignored and the body is empty.
    /// Returns `None` for responses (never answered) or when the header
    /// lines themselves cannot be split. Use the result only to build the
    /// error response ([`Message::is_answerable`], [`super::ResponseBuilder`]).
    pub fn salvage(buf: Bytes, limits: &Limits) -> Option<Message> {
        parse(buf, limits, Mode::Salvage).ok()
    }
}

/// Finds the next line starting at `from`: `Some((end_of_line, next_line))`,
/// `None` if there is no line terminator. CRLF is the only terminator
/// (RFC 3261 §7); a bare CR or LF is rejected rather than guessed at, since
/// peers that split lines differently could be made to see different headers.
#[inline]
fn next_line(s: &[u8], from: usize) -> Result<Option<(usize, usize)>, ParseError> {
    match memchr::memchr2(b'\r', b'\n', &s[from..]) {
        None => Ok(None),
        Some(k) => {
            let i = from + k;
            if s[i] == b'\r' && s.get(i + 1) == Some(&b'\n') {
                Ok(Some((i, i + 2)))
            } else {
                Err(ParseError::BadHeaderLine)
            }
        }
    }
}

fn parse(mut buf: Bytes, limits: &Limits, mode: Mode) -> Result<Message, ParseError> {
    // Limits first, before anything is allocated.
    if buf.len() > limits.max_message_size || buf.len() > u32::MAX as usize {
        return Err(ParseError::LimitExceeded(LimitKind::MessageSize));
    }
    // RFC 3261 §7.5: CRLFs before the start line are ignored.
    let mut lead = 0;
    while buf[lead..].starts_with(b"\r\n") {
        lead += 2;
    }
    if lead > 0 {
        buf.advance(lead);
    }
    if buf.is_empty() {
        return Err(ParseError::Empty);
    }
    let s: &[u8] = &buf;

    let (sl_end, mut pos) = match next_line(s, 0)? {
        Some(x) => x,
        None if mode == Mode::Stream => return Err(ParseError::Incomplete),
        None => (s.len(), s.len()),
    };
    if sl_end > limits.max_line_length {
        return Err(ParseError::LimitExceeded(LimitKind::LineLength));
    }
    let start = if mode == Mode::Salvage {
        salvage_start_line(&s[..sl_end]).ok_or(ParseError::BadRequestLine)?
    } else {
        parse_start_line(&s[..sl_end])?
    };

    let mut headers: Vec<Entry> = Vec::with_capacity(limits.max_headers.min(24));
    let mut cl: Option<u32> = None;
    let body_start;
    loop {
        let (le, next) = match next_line(s, pos)? {
            Some(x) => x,
            None => {
                if mode == Mode::Stream {
                    return Err(ParseError::Incomplete);
                }
                // Datagram ended inside the header section: take the rest
                // as the last line (the empty line is missing, see baddn).
                (s.len(), s.len())
            }
        };
        if le == pos {
            body_start = next;
            break;
        }
        let b0 = s[pos];
        if b0 == b' ' || b0 == b'\t' {
            // Folded continuation of the previous header (§7.3.1).
            let last = headers.last_mut().ok_or(ParseError::BadHeaderLine)?;
            last.value.end = le as u32;
            if le - last.start as usize > limits.max_line_length {
                return Err(ParseError::LimitExceeded(LimitKind::LineLength));
            }
        } else {
            if let Some(last) = headers.last_mut() {
                finish(s, last, &mut cl, mode)?;
            }
            if le - pos > limits.max_line_length {
                return Err(ParseError::LimitExceeded(LimitKind::LineLength));
            }
            if headers.len() >= limits.max_headers {
                return Err(ParseError::LimitExceeded(LimitKind::HeaderCount));
            }
            let line = &s[pos..le];
            let colon = memchr::memchr(b':', line).ok_or(ParseError::BadHeaderLine)?;
            // HCOLON = *( SP / HTAB ) ":" SWS
            let mut ne = colon;
            while ne > 0 && (line[ne - 1] == b' ' || line[ne - 1] == b'\t') {
                ne -= 1;
            }
            let name = &line[..ne];
            if !is_token_str(name) {
                return Err(ParseError::BadHeaderLine);
            }
            headers.push(Entry {
                name: HeaderName::from_bytes(name),
                start: pos as u32,
                name_end: (pos + ne) as u32,
                value: Span::new(pos + colon + 1, le),
            });
        }
        pos = next;
        if le == s.len() {
            body_start = s.len();
            break;
        }
    }
    if let Some(last) = headers.last_mut() {
        finish(s, last, &mut cl, mode)?;
    }

    let avail = s.len() - body_start;
    let body_end = match (mode, cl) {
        (Mode::Salvage, _) => body_start,
        (_, Some(n)) => {
            let n = n as usize;
            if n > limits.max_body_size {
                return Err(ParseError::LimitExceeded(LimitKind::BodySize));
            }
            if n > avail {
                return Err(if mode == Mode::Stream {
                    ParseError::Incomplete
                } else {
                    ParseError::BodyTruncated
                });
            }
            body_start + n
        }
        (Mode::Datagram, None) => {
            if avail > limits.max_body_size {
                return Err(ParseError::LimitExceeded(LimitKind::BodySize));
            }
            s.len()
        }
        (Mode::Stream, None) => return Err(ParseError::MissingContentLength),
    };
    buf.truncate(body_end);
    Ok(Message {
        buf,
        start,
        headers,
        start_end: sl_end as u32,
        body: Span::new(body_start, body_end),
        content_length: if mode == Mode::Salvage { None } else { cl },
        views: None,
        via_stamp: None,
    })
}

/// Trims the finished header's value and records Content-Length.
#[inline]
fn finish(s: &[u8], e: &mut Entry, cl: &mut Option<u32>, mode: Mode) -> Result<(), ParseError> {
    let raw = &s[e.value.range()];
    let t = trim_ws(raw);
    let off = t.as_ptr() as usize - raw.as_ptr() as usize;
    e.value = Span::new(
        e.value.start as usize + off,
        e.value.start as usize + off + t.len(),
    );
    if e.name == HeaderName::ContentLength && mode != Mode::Salvage {
        let v = parse_content_length(t)?;
        match *cl {
            None => *cl = Some(v),
            Some(old) if old != v => return Err(ParseError::ConflictingContentLength),
            Some(_) => {}
        }
    }
    Ok(())
}

/// `"SIP" "/" 1*DIGIT "." 1*DIGIT` (RFC 3261 §25.1; "SIP" is case-insensitive
/// like every ABNF literal).
pub(crate) fn is_version(v: &[u8]) -> bool {
    if v.len() < 7 || !eq_ic(&v[..4], b"SIP/") {
        return false;
    }
    let rest = &v[4..];
    let Some(dot) = memchr::memchr(b'.', rest) else {
        return false;
    };
    let (maj, min) = (&rest[..dot], &rest[dot + 1..]);
    !maj.is_empty()
        && !min.is_empty()
        && maj.iter().all(u8::is_ascii_digit)
        && min.iter().all(u8::is_ascii_digit)
}

/// Request-Line = Method SP Request-URI SP SIP-Version (§7.1), exactly one SP
/// between elements (RFC 4475 lwsstart, trws, lwsruri are 400);
/// Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2).
/// A well-formed but unsupported version parses; [`Message::validate`]
/// reports it as 505.
fn parse_start_line(line: &[u8]) -> Result<StartLine, ParseError> {
    if line.len() >= 4 && eq_ic(&line[..4], b"SIP/") {
        let sp = memchr::memchr(b' ', line).ok_or(ParseError::BadStatusLine)?;
        if !is_version(&line[..sp]) {
            return Err(ParseError::BadStatusLine);
        }
        let rest = &line[sp + 1..];
        // Exactly 3 digits (RFC 4475 bigcode: 4294967301 must not wrap).
        if rest.len() < 3
            || !rest[..3].iter().all(u8::is_ascii_digit)
            || (rest.len() > 3 && rest[3] != b' ')
        {
            return Err(ParseError::BadStatusLine);
        }
        let code = rest[..3]
            .iter()
            .fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStatusLine);
        }
        let rstart = (sp + 5).min(line.len());
        // Reason-Phrase: UTF-8 text, SP and HTAB; no other control chars.
        if line[rstart..]
            .iter()
            .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            return Err(ParseError::BadStatusLine);
        }
        return Ok(StartLine::Response {
            version: Span::new(0, sp),
            code,
            reason: Span::new(rstart, line.len()),
        });
    }
    let sp1 = memchr::memchr(b' ', line).ok_or(ParseError::BadRequestLine)?;
    let sp2 = memchr::memrchr(b' ', line).ok_or(ParseError::BadRequestLine)?;
    if sp2 == sp1 || !is_token_str(&line[..sp1]) || !is_version(&line[sp2 + 1..]) {
        return Err(ParseError::BadRequestLine);
    }
    let uri = &line[sp1 + 1..sp2];
    if uri.is_empty() || uri.iter().any(|&b| b <= 0x20 || b >= 0x7f) {
        return Err(ParseError::BadRequestLine);
    }
    if split_scheme(uri).is_none() {
        return Err(ParseError::BadRequestUri); // RFC 4475 ltgtruri
    }
    Ok(StartLine::Request {
        method: Span::new(0, sp1),
        uri: Span::new(sp1 + 1, sp2),
        version: Span::new(sp2 + 1, line.len()),
    })
}

/// Lenient request line for [`Message::salvage`]: a method token is enough.
fn salvage_start_line(line: &[u8]) -> Option<StartLine> {
    if line.len() >= 4 && eq_ic(&line[..4], b"SIP/") {
        return None;
    }
    let sp1 = memchr::memchr(b' ', line).unwrap_or(line.len());
    if !is_token_str(&line[..sp1]) {
        return None;
    }
    let ustart = (sp1 + 1).min(line.len());
    let uend = memchr::memchr(b' ', &line[ustart..]).map_or(line.len(), |k| ustart + k);
    Some(StartLine::Request {
        method: Span::new(0, sp1),
        uri: Span::new(ustart, uend),
        version: Span::new(line.len(), line.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> Result<Message, ParseError> {
        parse_datagram(Bytes::copy_from_slice(s), &Limits::default())
    }

    #[test]
    fn basic_request() {
        let m = p(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nl: 3\r\nX:  y \r\n\r\nabcdef")
            .unwrap();
        assert!(m.is_request());
        assert_eq!(m.header_count(), 3);
        assert_eq!(m.body(), b"abc");
        assert_eq!(m.as_bytes().len(), m.as_bytes().len());
        assert_eq!(m.header_value("x"), Some(&b"y"[..]));
        assert_eq!(m.header("content-length").unwrap().raw_name, b"l");
    }

    #[test]
    fn start_lines() {
        assert_eq!(
            p(b"INVITE  sip:a@b SIP/2.0\r\n\r\n").unwrap_err(),
            ParseError::BadRequestLine
        );
        assert_eq!(
            p(b"INVITE sip:a@b SIP/2.0  \r\n\r\n").unwrap_err(),
            ParseError::BadRequestLine
        );
        assert_eq!(
            p(b"INVITE <sip:a@b> SIP/2.0\r\n\r\n").unwrap_err(),
            ParseError::BadRequestUri
        );
        assert_eq!(
            p(b"INVITE sip:a@b\r\n\r\n").unwrap_err(),
            ParseError::BadRequestLine
        );
        assert_eq!(
            p(b"SIP/2.0 4294967301 x\r\n\r\n").unwrap_err(),
            ParseError::BadStatusLine
        );
        assert_eq!(
            p(b"SIP/2.0 099 x\r\n\r\n").unwrap_err(),
            ParseError::BadStatusLine
        );
        let m = p(b"SIP/2.0 100\r\n\r\n").unwrap();
        assert_eq!(m.reason(), Some(&b""[..]));
        let m = p(b"OPTIONS sip:a@b SIP/7.0\r\n\r\n").unwrap();
        assert_eq!(m.version(), b"SIP/7.0");
        assert!(!m.is_sip2());
    }

    #[test]
    fn header_lines() {
        assert_eq!(
            p(b"OPTIONS sip:a@b SIP/2.0\r\n x: y\r\n\r\n").unwrap_err(),
            ParseError::BadHeaderLine
        );
        assert_eq!(
            p(b"OPTIONS sip:a@b SIP/2.0\r\nFoobar roobar\r\n\r\n").unwrap_err(),
            ParseError::BadHeaderLine
        );
        assert_eq!(
            p(b"OPTIONS sip:a@b SIP/2.0\r\nX: a\nb\r\n\r\n").unwrap_err(),
            ParseError::BadHeaderLine
        );
        assert_eq!(
            p(b"OPTIONS sip:a@b SIP/2.0\r\nX: a\rb\r\n\r\n").unwrap_err(),
            ParseError::BadHeaderLine
        );
        let m = p(b"OPTIONS sip:a@b SIP/2.0\r\nTO :\r\n sip:x@y ;\r\n\ttag=1\r\n\r\n").unwrap();
        assert_eq!(m.header_value("t"), Some(&b"sip:x@y ;\r\n\ttag=1"[..]));
    }

    #[test]
    fn limits() {
        let l = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        let e = parse_datagram(
            Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n"),
            &l,
        );
        assert_eq!(
            e.unwrap_err(),
            ParseError::LimitExceeded(LimitKind::HeaderCount)
        );
        let l = Limits {
            max_line_length: 10,
            ..Limits::default()
        };
        let e = parse_datagram(Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"), &l);
        assert_eq!(
            e.unwrap_err(),
            ParseError::LimitExceeded(LimitKind::LineLength)
        );
        let l = Limits {
            max_message_size: 10,
            ..Limits::default()
        };
        let e = parse_datagram(Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"), &l);
        assert_eq!(
            e.unwrap_err(),
            ParseError::LimitExceeded(LimitKind::MessageSize)
        );
        let l = Limits {
            max_body_size: 2,
            ..Limits::default()
        };
        let e = parse_datagram(
            Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\n\r\nabc"),
            &l,
        );
        assert_eq!(
            e.unwrap_err(),
            ParseError::LimitExceeded(LimitKind::BodySize)
        );
    }

    #[test]
    fn text_parse() {
        let m = Message::parse_text(
            "MESSAGE sip:a@b SIP/2.0\nContent-Type: text/plain\nContent-Length: 2\n\nhi",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(m.body(), b"hi");
        let m = Message::parse_text("OPTIONS sip:a@b SIP/2.0\nX: 1", &Limits::default()).unwrap();
        assert_eq!(m.header_value("X"), Some(&b"1"[..]));
    }
}
