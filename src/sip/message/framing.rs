//! Message framing on stream transports (TCP/TLS/WS-less raw streams).
//!
//! Two steps, as in mini-redis: [`frame_stream`] only decides whether the
//! buffer holds a complete message and how long it is (`Ok(None)` =
//! incomplete, read more; `Err` = the stream is unrecoverable, close it), then
//! [`super::parse_stream_frame`] parses exactly those bytes. On a stream the
//! message length comes only from Content-Length, which is therefore
//! mandatory (RFC 3261 §18.3, §20.14).

use super::header::HeaderName;
use super::limits::{LimitKind, Limits};
use super::scan::{parse_u64, trim_ws};
use super::ParseError;

/// What is at the front of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// `len` bytes of CRLF keep-alive to consume before any start line
    /// (RFC 3261 §7.5 says to ignore them). `ping` is true for a double-CRLF
    /// ping (RFC 5626 §3.5.1, §4.4.1), which the transport answers with a
    /// single CRLF pong; a lone CRLF is a pong (or stray) and needs no answer.
    KeepAlive { len: usize, ping: bool },
    /// A complete message of `len` bytes starts at the front of the buffer.
    Message(usize),
}

/// Frames the next item in `buf` (see the module doc). Limits checked here:
/// the message size (an unterminated header section or a Content-Length that
/// would exceed `max_message_size` is an error, not "wait for more") and the
/// body size.
pub fn frame_stream(buf: &[u8], limits: &Limits) -> Result<Option<Frame>, ParseError> {
    match buf {
        [] => return Ok(None),
        [b'\r', b'\n', b'\r', b'\n', ..] => {
            return Ok(Some(Frame::KeepAlive { len: 4, ping: true }))
        }
        // Could still become a double-CRLF ping: wait.
        [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => return Ok(None),
        [b'\r', b'\n', ..] => {
            return Ok(Some(Frame::KeepAlive {
                len: 2,
                ping: false,
            }))
        }
        [b'\r' | b'\n', ..] => return Err(ParseError::BadRequestLine),
        _ => {}
    }
    let window = &buf[..buf.len().min(limits.max_message_size)];
    let Some(h) = memchr::memmem::find(window, b"\r\n\r\n") else {
        if buf.len() >= limits.max_message_size {
            return Err(ParseError::LimitExceeded(LimitKind::MessageSize));
        }
        return Ok(None);
    };
    let head_len = h + 4;
    let cl = find_content_length(&buf[..h + 2])?.ok_or(ParseError::MissingContentLength)? as usize;
    if cl > limits.max_body_size {
        return Err(ParseError::LimitExceeded(LimitKind::BodySize));
    }
    let total = head_len + cl;
    if total > limits.max_message_size {
        return Err(ParseError::LimitExceeded(LimitKind::MessageSize));
    }
    Ok(if buf.len() >= total {
        Some(Frame::Message(total))
    } else {
        None
    })
}

/// True if a datagram is only a CRLF keep-alive (common over UDP even though
/// RFC 5626 §4.4.2 uses STUN there); such a datagram is ignored.
pub fn is_keepalive(datagram: &[u8]) -> bool {
    !datagram.is_empty() && datagram.iter().all(|&b| b == b'\r' || b == b'\n')
}

/// Scans a header section (each line ends with CRLF) for Content-Length /
/// `l`, unfolding continuation lines. Several equal values are tolerated,
/// different ones are an error (RFC 4475 mcl01).
fn find_content_length(head: &[u8]) -> Result<Option<u32>, ParseError> {
    let mut found: Option<u32> = None;
    let mut pos = match memchr::memchr(b'\n', head) {
        Some(i) => i + 1,
        None => return Ok(None),
    };
    while pos < head.len() {
        let end = memchr::memchr(b'\n', &head[pos..]).map_or(head.len(), |k| pos + k + 1);
        let line = &head[pos..end];
        pos = end;
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        if matches!(line[0], b' ' | b'\t')
            || HeaderName::from_bytes(trim_ws(&line[..colon])) != HeaderName::ContentLength
        {
            continue;
        }
        // Include folded continuation lines.
        let mut vend = end;
        while vend < head.len() && matches!(head[vend], b' ' | b'\t') {
            vend = memchr::memchr(b'\n', &head[vend..]).map_or(head.len(), |k| vend + k + 1);
        }
        let v = parse_content_length(trim_ws(&head[pos - line.len() + colon + 1..vend]))?;
        pos = vend;
        match found {
            None => found = Some(v),
            Some(old) if old != v => return Err(ParseError::ConflictingContentLength),
            Some(_) => {}
        }
    }
    Ok(found)
}

/// `Content-Length = 1*DIGIT` (§20.14). A sign, any other character, or a
/// value beyond u32 is an error: never used as a length (RFC 4475 ncl).
pub(crate) fn parse_content_length(v: &[u8]) -> Result<u32, ParseError> {
    parse_u64(v)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(ParseError::BadContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalives() {
        let l = Limits::default();
        assert_eq!(
            frame_stream(b"\r\n\r\nINVITE", &l),
            Ok(Some(Frame::KeepAlive { len: 4, ping: true }))
        );
        assert_eq!(
            frame_stream(b"\r\nINVITE", &l),
            Ok(Some(Frame::KeepAlive {
                len: 2,
                ping: false
            }))
        );
        assert_eq!(frame_stream(b"\r\n", &l), Ok(None));
        assert_eq!(frame_stream(b"", &l), Ok(None));
        assert!(is_keepalive(b"\r\n\r\n"));
        assert!(!is_keepalive(b""));
    }

    #[test]
    fn framing() {
        let l = Limits::default();
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabcOPTIONS";
        assert_eq!(frame_stream(m, &l), Ok(Some(Frame::Message(m.len() - 7))));
        assert_eq!(frame_stream(&m[..20], &l), Ok(None));
        assert_eq!(frame_stream(&m[..m.len() - 9], &l), Ok(None));
        let folded = b"OPTIONS sip:a@b SIP/2.0\r\nl:\r\n 3\r\n\r\nabc";
        assert_eq!(
            frame_stream(folded, &l),
            Ok(Some(Frame::Message(folded.len())))
        );
        let no_cl = b"OPTIONS sip:a@b SIP/2.0\r\nX: 3\r\n\r\nabc";
        assert_eq!(
            frame_stream(no_cl, &l),
            Err(ParseError::MissingContentLength)
        );
        let neg = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -3\r\n\r\nabc";
        assert_eq!(frame_stream(neg, &l), Err(ParseError::BadContentLength));
        let big = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\nabc";
        assert_eq!(
            frame_stream(big, &l),
            Err(ParseError::LimitExceeded(LimitKind::BodySize))
        );
        let small = Limits {
            max_message_size: 16,
            ..l
        };
        assert_eq!(
            frame_stream(&[b'A'; 16], &small),
            Err(ParseError::LimitExceeded(LimitKind::MessageSize))
        );
    }
}
