//! Rendering: responses to requests, new messages, and edits of received
//! messages.
//!
//! Every builder writes into one `Vec<u8>` (convert with `Bytes::from`, no
//! copy) and copies untouched header lines verbatim from the received
//! buffer. Values supplied by the caller are checked so that nothing can
//! inject a line break (header injection) or an invalid name; Content-Length
//! is always computed, never taken from the caller (RFC 3261 §18.3: a wrong
//! one desynchronises stream framing).

use super::error::BuildError;
use super::header::HeaderName;
use super::method::Method;
use super::msg::{Entry, Message, Span, StartLine};
use super::name_addr::NameAddr;
use super::scan::is_token_str;
use super::scan::trim_ws;
use super::uri::split_scheme;
use bytes::Bytes;

/// A header name a caller may write: a token, and not Content-Length
/// (which is computed). Returns its classification.
pub(crate) fn check_name(name: &[u8]) -> Result<HeaderName, BuildError> {
    let class = HeaderName::from_bytes(name);
    if !is_token_str(name) || class == HeaderName::ContentLength {
        return Err(BuildError::InvalidHeaderName);
    }
    Ok(class)
}

pub(crate) fn check_value(v: &[u8]) -> Result<(), BuildError> {
    if memchr::memchr2(b'\r', b'\n', v).is_some() {
        return Err(BuildError::InvalidHeaderValue);
    }
    Ok(())
}

pub(crate) fn check_uri(uri: &[u8]) -> Result<(), BuildError> {
    if uri.iter().any(|&b| b <= 0x20 || b >= 0x7f) || split_scheme(uri).is_none() {
        return Err(BuildError::InvalidUri);
    }
    Ok(())
}

/// Bytes reserved for a response's added headers on the first one.
const EXTRA_ROOM: usize = 256;

pub(crate) fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn push_u32(out: &mut Vec<u8>, mut n: u32) {
    let mut tmp = [0u8; 10];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

fn push_status_line(out: &mut Vec<u8>, code: u16, reason: &[u8]) {
    out.extend_from_slice(b"SIP/2.0 ");
    push_u32(out, u32::from(code));
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn push_content_length(out: &mut Vec<u8>, name: &[u8], len: usize) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    push_u32(out, len as u32);
    out.extend_from_slice(b"\r\n");
}

fn check_status(code: u16, reason: &[u8]) -> Result<(), BuildError> {
    if !(100..=699).contains(&code)
        || reason
            .iter()
            .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(BuildError::InvalidStatus);
    }
    Ok(())
}

/// Builds a response to a received request (RFC 3261 §8.2.6.2): Via lines
/// (all, same order), From, To (plus a tag if given and missing), Call-ID and
/// CSeq are copied byte-exact in their original order, then extra headers,
/// Content-Type and Content-Length, then the body.
#[derive(Debug, Clone)]
pub struct ResponseBuilder<'a> {
    req: &'a Message,
    code: u16,
    reason: &'a [u8],
    to_tag: Option<&'a [u8]>,
    record_route: bool,
    extra: Vec<u8>,
    body: Option<(&'a [u8], &'a [u8])>,
}

impl<'a> ResponseBuilder<'a> {
    pub fn new(req: &'a Message, code: u16, reason: &'a str) -> Result<Self, BuildError> {
        if !req.is_request() {
            return Err(BuildError::NotARequest);
        }
        check_status(code, reason.as_bytes())?;
        Ok(ResponseBuilder {
            req,
            code,
            reason: reason.as_bytes(),
            to_tag: None,
            record_route: false,
            extra: Vec::new(),
            body: None,
        })
    }

    /// To tag to add when the request's To has none and the status is not
    /// 100 (§8.2.6.2: 100 Trying must not get one).
    pub fn to_tag(mut self, tag: &'a str) -> Self {
        self.to_tag = Some(tag.as_bytes());
        self
    }

    /// Also copy Record-Route lines (dialog-creating responses, §12.1.1).
    pub fn copy_record_route(mut self, yes: bool) -> Self {
        self.record_route = yes;
        self
    }

    /// Adds a header after the copied ones.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Result<Self, BuildError> {
        let v = value.as_ref();
        check_name(name.as_bytes())?;
        check_value(v)?;
        // Room for the usual few added headers at once: growing from
        // empty reallocated once or twice per header (16 times per call).
        if self.extra.capacity() == 0 {
            self.extra.reserve(EXTRA_ROOM);
        }
        push_header(&mut self.extra, name.as_bytes(), v);
        Ok(self)
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &'a str, body: &'a [u8]) -> Result<Self, BuildError> {
        check_value(content_type.as_bytes())?;
        self.body = Some((content_type.as_bytes(), body));
        Ok(self)
    }

    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    /// The request's header lines a response carries (RFC 3261 §8.2.6.2).
    fn copies(&self, name: HeaderName) -> bool {
        match name {
            HeaderName::Via
            | HeaderName::From
            | HeaderName::To
            | HeaderName::CallId
            | HeaderName::CSeq => true,
            HeaderName::RecordRoute => self.record_route,
            _ => false,
        }
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        let req = self.req;
        // Room for the whole response at once: responses are kept (by the
        // transaction and the session) and a doubled buffer would keep up
        // to twice their size.
        let copied: usize = req
            .headers()
            .filter(|h| self.copies(h.name))
            .map(|h| h.line.len() + 2)
            .sum();
        let tag = self.to_tag.map_or(0, |t| t.len() + 5);
        let stamp = req.via_stamp().map_or(0, |_| super::via_stamp::STAMP_ROOM);
        let (ct, body) = self.body.map_or((0, 0), |(ct, b)| (ct.len(), b.len()));
        // Status line, Content-Type and Content-Length lines, empty line.
        const FIXED: usize = 64;
        out.reserve(
            FIXED + self.reason.len() + copied + tag + stamp + self.extra.len() + ct + body,
        );
        push_status_line(out, self.code, self.reason);
        // The top Via gets the request's stamp, if it has one (RFC 3261
        // §18.2.1, RFC 3581 §4): it is the first Via line's first via-parm.
        let mut first_via = true;
        for h in req.headers().filter(|h| self.copies(h.name)) {
            let is_first_via = h.name == HeaderName::Via && std::mem::take(&mut first_via);
            if !(is_first_via && req.write_stamped_via_line(out, h.line)) {
                out.extend_from_slice(h.line);
            }
            if let (HeaderName::To, Some(tag)) = (h.name, self.to_tag) {
                // The first To is the one `validate` kept (a valid request
                // has only that one).
                let to = match req.kept_to() {
                    Some(kept) if req.get(HeaderName::To).map(|f| f.index) == Some(h.index) => {
                        Ok(kept)
                    }
                    _ => NameAddr::parse(h.value),
                };
                let needs = self.code > 100 && to.is_ok_and(|n| n.tag().is_none());
                if needs {
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(tag);
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.extra);
        let body: &[u8] = match self.body {
            Some((ct, b)) => {
                push_header(out, b"Content-Type", ct);
                b
            }
            None => b"",
        };
        push_content_length(out, b"Content-Length", body.len());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }
}

impl Message {
    /// Shortcut for [`ResponseBuilder::new`].
    pub fn reply<'a>(
        &'a self,
        code: u16,
        reason: &'a str,
    ) -> Result<ResponseBuilder<'a>, BuildError> {
        ResponseBuilder::new(self, code, reason)
    }
}

/// Builds a new request or response from parts (e.g. the B2BUA's other leg).
/// Headers are written in call order; Content-Length is appended by
/// [`MessageBuilder::build`].
///
/// [`MessageBuilder::build_message`] gives the parsed [`Message`] directly:
/// the builder records each line's place as it writes it, so a message of
/// ours is not parsed again before the transaction layer takes it (that
/// parse was 9.5 k instructions for an INVITE to an app server).
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    out: Vec<u8>,
    start: StartLine,
    /// The header index, as [`super::parse_datagram`] would build it.
    headers: Vec<Entry>,
}

impl MessageBuilder {
    /// `Method SP Request-URI SP SIP/2.0`.
    pub fn request(method: Method<'_>, uri: impl AsRef<[u8]>) -> Result<Self, BuildError> {
        let m = method.as_bytes();
        let uri = uri.as_ref();
        if !is_token_str(m) {
            return Err(BuildError::InvalidMethod);
        }
        check_uri(uri)?;
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(m);
        out.push(b' ');
        out.extend_from_slice(uri);
        out.extend_from_slice(b" SIP/2.0\r\n");
        let uri_end = m.len() + 1 + uri.len();
        let start = StartLine::Request {
            method: Span::new(0, m.len()),
            uri: Span::new(m.len() + 1, uri_end),
            version: Span::new(uri_end + 1, out.len() - 2),
        };
        Ok(MessageBuilder::of(out, start))
    }

    fn of(out: Vec<u8>, start: StartLine) -> MessageBuilder {
        MessageBuilder {
            out,
            start,
            headers: Vec::with_capacity(16),
        }
    }

    /// Indexes the line `name: value` about to be written at the end.
    fn index(&mut self, name: HeaderName, name_len: usize, value_at: usize, value: &[u8]) {
        let start = self.out.len();
        // The parser's value is trimmed of white space: so is the index's.
        let trimmed = trim_ws(value);
        let lead = trimmed.as_ptr() as usize - value.as_ptr() as usize;
        let value_start = start + value_at + lead;
        self.headers.push(Entry {
            name,
            start: start as u32,
            name_end: (start + name_len) as u32,
            value: Span::new(value_start, value_start + trimmed.len()),
        });
    }

    /// `SIP/2.0 SP code SP reason`.
    pub fn response(code: u16, reason: &str) -> Result<Self, BuildError> {
        check_status(code, reason.as_bytes())?;
        let mut out = Vec::with_capacity(512);
        push_status_line(&mut out, code, reason.as_bytes());
        let start = StartLine::Response {
            version: Span::new(0, 7),
            code,
            reason: Span::new(12, out.len() - 2),
        };
        Ok(MessageBuilder::of(out, start))
    }

    /// Appends a header line (Content-Length is refused: it is computed).
    pub fn header(
        mut self,
        name: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<Self, BuildError> {
        let (n, v) = (name.as_ref(), value.as_ref());
        let class = check_name(n)?;
        check_value(v)?;
        self.index(class, n.len(), n.len() + 2, v);
        push_header(&mut self.out, n, v);
        Ok(self)
    }

    /// Appends a header line copied from a received message (verbatim).
    pub fn copy_header(mut self, field: &super::HeaderField<'_>) -> Result<Self, BuildError> {
        if field.name == HeaderName::ContentLength {
            return Err(BuildError::InvalidHeaderName);
        }
        // A field of a parsed message has its value inside its line (both
        // borrow the received buffer); one put together otherwise is refused
        // rather than indexed wrong.
        let value_at = super::scan::offset_in(field.line, field.value)
            .ok_or(BuildError::InvalidHeaderValue)?;
        self.index(field.name, field.raw_name.len(), value_at, field.value);
        self.out.extend_from_slice(field.line);
        self.out.extend_from_slice(b"\r\n");
        Ok(self)
    }

    /// Finishes with Content-Length, the empty line and `body`.
    pub fn build(self, body: &[u8]) -> Vec<u8> {
        self.finish(body).out
    }

    /// [`MessageBuilder::build`] as a parsed message, indexed as it was
    /// written: what `parse_datagram` of the built bytes gives, without
    /// the parse.
    pub fn build_message(self, body: &[u8]) -> Message {
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        let b = self.finish(body);
        let start_end = match b.start {
            StartLine::Request { version, .. } => version.end,
            StartLine::Response { reason, .. } => reason.end,
        };
        let body_start = b.out.len() - body.len();
        Message {
            body: Span::new(body_start, b.out.len()),
            buf: Bytes::from(b.out),
            start: b.start,
            headers: b.headers,
            start_end,
            content_length: Some(len),
            views: None,
            via_stamp: None,
        }
    }

    fn finish(mut self, body: &[u8]) -> MessageBuilder {
        // Exactly the room left, not a doubling: built messages are kept
        // (by transactions and sessions) for as long as they last.
        self.out.reserve_exact(body.len() + 32);
        let line = self.out.len();
        push_content_length(&mut self.out, b"Content-Length", body.len());
        self.headers.push(Entry {
            name: HeaderName::ContentLength,
            start: line as u32,
            name_end: (line + b"Content-Length".len()) as u32,
            value: Span::new(line + b"Content-Length: ".len(), self.out.len() - 2),
        });
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);
        self
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{parse_datagram, Limits, Method};
    use super::*;
    use bytes::Bytes;

    pub(crate) const REQ: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
v: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b.example.com;branch=z9hG4bK2\r\n\
Via: SIP/2.0/UDP c.example.com;branch=z9hG4bK3\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
f: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
X-Unknown: \x01\xff bytes\r\n\
Content-Type: application/sdp\r\n\
l: 5\r\n\
\r\n\
v=0\r\n";

    pub(crate) fn req() -> Message {
        parse_datagram(Bytes::from_static(REQ), &Limits::default()).unwrap()
    }

    /// What `build_message` indexes as it writes is what the parser finds
    /// in the built bytes: same buffer, start line, header entries, body.
    #[test]
    fn built_messages_are_indexed_as_parsed() {
        let folded = parse_datagram(
            Bytes::from_static(
                b"OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n  two\r\ni: x@y\r\nX-E:\r\n\r\n",
            ),
            &Limits::default(),
        )
        .unwrap();
        let mut request = MessageBuilder::request(Method::Invite, "sip:bob@biloxi.com")
            .unwrap()
            .header("Via", "SIP/2.0/UDP h;branch=z9hG4bKx")
            .unwrap()
            .header("v", "SIP/2.0/UDP i;branch=z9hG4bKy")
            .unwrap()
            .header("X-Padded", "  spaced value \t")
            .unwrap()
            .header("X-Empty", "")
            .unwrap();
        for field in req().headers().chain(folded.headers()) {
            if field.name != HeaderName::ContentLength {
                request = request.copy_header(&field).unwrap();
            }
        }
        let response = MessageBuilder::response(180, "Ringing")
            .unwrap()
            .header("To", "<sip:b@c>;tag=1")
            .unwrap();
        let empty_reason = MessageBuilder::response(200, "").unwrap();
        for (builder, body) in [
            (request, &b"v=0\r\n"[..]),
            (response, b""),
            (empty_reason, b"x"),
        ] {
            let built = builder.clone().build_message(body);
            let parsed =
                parse_datagram(Bytes::from(builder.build(body)), &Limits::default()).unwrap();
            assert_eq!(format!("{built:?}"), format!("{parsed:?}"));
        }
        // A field whose value is not inside its line cannot be indexed.
        let r = req();
        let mut stray = r.get(HeaderName::CallId).unwrap();
        stray.value = b"elsewhere";
        assert!(MessageBuilder::request(Method::Bye, "sip:a@b")
            .unwrap()
            .copy_header(&stray)
            .is_err());
    }

    #[test]
    fn response_to_request() {
        let r = req();
        let out = r
            .reply(486, "Busy Here")
            .unwrap()
            .to_tag("abc")
            .header("Retry-After", "30")
            .unwrap()
            .build();
        let mut m = parse_datagram(Bytes::from(out), &Limits::default()).unwrap();
        m.validate().unwrap();
        assert_eq!(m.status(), Some(486));
        assert_eq!(m.vias().count(), 3);
        assert_eq!(m.to_header().unwrap().tag(), Some(&b"abc"[..]));
        assert_eq!(m.from_header().unwrap().tag(), Some(&b"1928301774"[..]));
        assert_eq!(m.header_value("Retry-After"), Some(&b"30"[..]));
        assert_eq!(m.count(HeaderName::RecordRoute), 0);
        assert_eq!(m.body(), b"");
        let trying = r.reply(100, "Trying").unwrap().to_tag("abc").build();
        let m = parse_datagram(Bytes::from(trying), &Limits::default()).unwrap();
        assert_eq!(m.to_header().unwrap().tag(), None);
        assert!(r
            .reply(486, "x")
            .unwrap()
            .header("Bad\r\nName", "v")
            .is_err());
        assert!(r
            .reply(486, "x")
            .unwrap()
            .header("X", "a\r\nInjected: 1")
            .is_err());
        assert!(r
            .reply(486, "x")
            .unwrap()
            .header("Content-Length", "5")
            .is_err());
        assert!(r.reply(1000, "x").is_err());
    }

    #[test]
    fn new_messages() {
        let out = MessageBuilder::request(Method::Extension(b"FOO"), "sips:[2001:db8::1]:5061")
            .unwrap()
            .header("Via", "SIP/2.0/TLS h;branch=z9hG4bKx")
            .unwrap()
            .header("i", "abc")
            .unwrap()
            .build(b"\0body");
        let m = parse_datagram(Bytes::from(out), &Limits::default()).unwrap();
        assert_eq!(m.method(), Some(Method::Extension(b"FOO")));
        assert_eq!(m.call_id(), Ok(&b"abc"[..]));
        assert_eq!(m.body(), b"\0body");
        assert!(MessageBuilder::request(Method::Invite, "sip:a b").is_err());
        assert!(MessageBuilder::request(Method::Extension(b"BAD METHOD"), "sip:a").is_err());
        let out = MessageBuilder::response(200, "OK").unwrap().build(b"");
        assert_eq!(out, b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
}
