//! The parsed message: one shared buffer plus byte ranges.
//!
//! A relay forwards most headers untouched, so the parser only records where
//! things are (start line parts, each header's name and value, the body) and
//! typed views are produced on demand, borrowing from the buffer. Relaying an
//! unchanged header is then a copy of its original bytes, unknown headers and
//! non-UTF-8 values survive byte-exact, and parsing costs one pass with one
//! allocation (the header index).

use super::header::HeaderName;
use super::method::Method;
use super::scan::{eq_ic, CommaSplit};
use super::uri::Uri;
use super::views::Views;
use super::ParseError;
use bytes::Bytes;
use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

/// Byte range inside [`Message::as_bytes`] (u32: messages are bounded by
/// [`super::Limits`], far below 4 GiB).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    #[inline]
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    #[inline]
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum StartLine {
    Request {
        method: Span,
        uri: Span,
        version: Span,
    },
    Response {
        version: Span,
        code: u16,
        reason: Span,
    },
}

/// One header line in the index.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub name: HeaderName,
    /// Start of the line (= start of the raw name).
    pub start: u32,
    /// End of the raw name (before any white space and the colon).
    pub name_end: u32,
    /// The value, trimmed; may contain folds (CRLF + SP/HT).
    pub value: Span,
}

/// A parsed SIP request or response. Cheap to clone (the buffer is shared).
#[derive(Clone, Debug)]
pub struct Message {
    pub(crate) buf: Bytes,
    pub(crate) start: StartLine,
    pub(crate) headers: Vec<Entry>,
    /// End of the start line (excluding CRLF).
    pub(crate) start_end: u32,
    pub(crate) body: Span,
    pub(crate) content_length: Option<u32>,
    /// What `validate` parsed, kept (`None` before it, and for messages
    /// built here).
    pub(crate) views: Option<Arc<Views>>,
    /// `received`/`rport` for the top Via of this request's responses
    /// (see [`super::ViaStamp`]).
    pub(crate) via_stamp: Option<super::ViaStamp>,
}

/// A borrowed view of one header line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderField<'a> {
    /// Classified name (compact forms resolved).
    pub name: HeaderName,
    /// The name as received (e.g. `v`, `MaX-fOrWaRdS`, `X-Custom`).
    pub raw_name: &'a [u8],
    /// The value, trimmed, folds kept as received.
    pub value: &'a [u8],
    /// The whole line as received, without the final CRLF; relaying an
    /// unchanged header writes exactly this.
    pub line: &'a [u8],
    /// Position among the message's header lines (0-based).
    pub index: usize,
}

impl<'a> HeaderField<'a> {
    /// The value as text if it is valid UTF-8.
    pub fn value_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.value).ok()
    }

    /// The value with each fold (CRLF + white space) replaced by one SP
    /// (RFC 3261 §7.3.1 says they are equivalent). Borrowed when unfolded.
    pub fn value_unfolded(&self) -> Cow<'a, [u8]> {
        unfold(self.value)
    }

    /// The comma-separated elements of the value (only meaningful for
    /// comma-list headers; quoted strings and `<...>` are not split).
    pub fn values(&self) -> CommaSplit<'a> {
        CommaSplit::new(self.value)
    }

    /// True if this header has the given name (canonical, compact or, for
    /// unknown headers, the exact raw name; case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        name_matches(
            self.name,
            self.raw_name,
            HeaderName::parse(name),
            name.as_bytes(),
        )
    }
}

pub(crate) fn name_matches(h: HeaderName, raw: &[u8], q: HeaderName, qraw: &[u8]) -> bool {
    if q == HeaderName::Other {
        h == HeaderName::Other && eq_ic(raw, qraw)
    } else {
        h == q
    }
}

/// Replaces every CRLF + white space run by a single SP.
pub fn unfold(v: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'\r', v).is_none() {
        return Cow::Borrowed(v);
    }
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\r' && v.get(i + 1) == Some(&b'\n') {
            // drop trailing white space already pushed, then the fold
            while out.last().is_some_and(|&b| b == b' ' || b == b'\t') {
                out.pop();
            }
            i += 2;
            while i < v.len() && (v[i] == b' ' || v[i] == b'\t') {
                i += 1;
            }
            out.push(b' ');
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    Cow::Owned(out)
}

impl Message {
    #[inline]
    pub(crate) fn slice(&self, s: Span) -> &[u8] {
        &self.buf[s.range()]
    }

    #[inline]
    pub(crate) fn field(&self, index: usize) -> HeaderField<'_> {
        let e = &self.headers[index];
        HeaderField {
            name: e.name,
            raw_name: &self.buf[e.start as usize..e.name_end as usize],
            value: self.slice(e.value),
            line: &self.buf[e.start as usize..e.value.end as usize],
            index,
        }
    }

    /// The message bytes (start line to end of body; a datagram's trailing
    /// bytes beyond Content-Length are not included).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The shared buffer (zero-copy).
    pub fn bytes(&self) -> &Bytes {
        &self.buf
    }

    /// The buffer, for sending as is.
    pub fn into_bytes(self) -> Bytes {
        self.buf
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// Request method; `None` for responses.
    pub fn method(&self) -> Option<Method<'_>> {
        match self.start {
            StartLine::Request { method, .. } => Some(Method::from_bytes(self.slice(method))),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI exactly as received; `None` for responses.
    pub fn request_uri_raw(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Request { uri, .. } => Some(self.slice(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// The parsed Request-URI. Unknown schemes parse as
    /// [`super::Scheme::Other`] (answer 416, not 400).
    pub fn request_uri(&self) -> Result<Uri<'_>, ParseError> {
        if let Some(kept) = self.kept_request_uri() {
            return Ok(kept);
        }
        let raw = self.request_uri_raw().ok_or(ParseError::BadRequestLine)?;
        Uri::parse(raw).map_err(|_| ParseError::BadRequestUri)
    }

    /// SIP-Version of the start line as received (e.g. `SIP/2.0`, `SIP/7.0`).
    pub fn version(&self) -> &[u8] {
        match self.start {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => {
                self.slice(version)
            }
        }
    }

    /// True if the version is SIP/2.0 (the protocol name is case-insensitive).
    pub fn is_sip2(&self) -> bool {
        eq_ic(self.version(), b"SIP/2.0")
    }

    /// Status code; `None` for requests.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// Reason phrase (may be empty or non-UTF-8); `None` for requests.
    pub fn reason(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.slice(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// The start line without its CRLF.
    pub fn start_line(&self) -> &[u8] {
        &self.buf[..self.start_end as usize]
    }

    /// Number of header lines.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// All header lines in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderField<'_>> + '_ {
        (0..self.headers.len()).map(move |i| self.field(i))
    }

    /// First header with this name (see [`HeaderField::is`] for matching).
    pub fn header(&self, name: &str) -> Option<HeaderField<'_>> {
        let q = HeaderName::parse(name);
        let i = self.headers.iter().position(|e| {
            name_matches(
                e.name,
                &self.buf[e.start as usize..e.name_end as usize],
                q,
                name.as_bytes(),
            )
        })?;
        Some(self.field(i))
    }

    /// First header value with this name.
    pub fn header_value(&self, name: &str) -> Option<&[u8]> {
        self.header(name).map(|h| h.value)
    }

    /// All header lines with this name, in order.
    pub fn headers_named<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = HeaderField<'s>> + 's {
        let q = HeaderName::parse(name);
        self.headers
            .iter()
            .enumerate()
            .filter(move |(_, e)| {
                name_matches(
                    e.name,
                    &self.buf[e.start as usize..e.name_end as usize],
                    q,
                    name.as_bytes(),
                )
            })
            .map(move |(i, _)| self.field(i))
    }

    /// First header with a known name (fast path: no string compare).
    pub fn get(&self, name: HeaderName) -> Option<HeaderField<'_>> {
        self.get_all(name).next()
    }

    /// All headers with a known name.
    pub fn get_all(&self, name: HeaderName) -> impl Iterator<Item = HeaderField<'_>> + '_ {
        self.headers
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.name == name)
            .map(move |(i, _)| self.field(i))
    }

    /// Number of lines with a known name.
    pub fn count(&self, name: HeaderName) -> usize {
        self.headers.iter().filter(|e| e.name == name).count()
    }

    /// Every comma-separated element of every line with this name, in order
    /// (RFC 3261 §7.3.1: `Route: a, b` equals `Route: a` + `Route: b`).
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> + '_ {
        self.get_all(name).flat_map(|h| h.values())
    }

    /// The body (opaque bytes, Content-Length octets).
    pub fn body(&self) -> &[u8] {
        self.slice(self.body)
    }

    /// The body as a zero-copy `Bytes`.
    pub fn body_bytes(&self) -> Bytes {
        self.buf.slice(self.body.range())
    }

    /// The Content-Length value used for framing (`None` if the datagram had
    /// none and the body is the rest of the datagram).
    pub fn content_length(&self) -> Option<u32> {
        self.content_length
    }

    /// True if enough of a request is present to answer it: it is a request
    /// and carries Via, From, To, Call-ID and CSeq lines (RFC 3261 §8.2.6.2
    /// copies them into the response). Typed validity is not checked: the
    /// engine still needs a usable top Via to send the answer.
    pub fn is_answerable(&self) -> bool {
        self.is_request()
            && [
                HeaderName::Via,
                HeaderName::From,
                HeaderName::To,
                HeaderName::CallId,
                HeaderName::CSeq,
            ]
            .iter()
            .all(|&n| self.headers.iter().any(|e| e.name == n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfold_values() {
        assert_eq!(&*unfold(b"a\r\n b"), b"a b");
        assert_eq!(&*unfold(b"SIP  /   2.0\r\n /UDP"), b"SIP  /   2.0 /UDP");
        assert!(matches!(unfold(b"plain"), Cow::Borrowed(_)));
    }
}
