//! Parse and build errors.
//!
//! `Display` of a [`ParseError`] is a short phrase usable verbatim as the
//! reason phrase of the error response (RFC 3261 §21.4.1 lets a 400 carry a
//! descriptive phrase, e.g. `400 Malformed Via header`);
//! [`ParseError::status_code`] says which status to use.
//!
//! Whether an error can be answered at all is a property of the *message*, not
//! of the error: see [`super::Message::salvage`] and
//! [`super::Message::is_answerable`].

use super::limits::LimitKind;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A configured [`super::Limits`] value was exceeded.
    #[error("{0} limit exceeded")]
    LimitExceeded(LimitKind),
    /// Nothing but (or not even) CRLF keep-alives.
    #[error("Empty message")]
    Empty,
    /// The header section is not terminated (datagram cut short).
    #[error("Incomplete message")]
    Incomplete,
    #[error("Malformed Request-Line")]
    BadRequestLine,
    #[error("Malformed Status-Line")]
    BadStatusLine,
    #[error("Malformed Request-URI")]
    BadRequestUri,
    /// A URI or host that is not a header's (from [`super::Uri::parse`]).
    #[error("Malformed URI")]
    BadUri,
    /// The SIP-Version is well-formed but not `SIP/2.0`: answer 505
    /// (RFC 3261 §8.2.2 n/a, §21.5.7; RFC 4475 badvers).
    #[error("Version Not Supported")]
    VersionNotSupported,
    /// A header line without a colon, with a non-token name, a bare CR/LF,
    /// or a continuation line with nothing to continue.
    #[error("Malformed header line")]
    BadHeaderLine,
    /// A header (named by its canonical name) failed typed parsing.
    #[error("Malformed {0} header")]
    BadHeader(&'static str),
    #[error("Missing {0} header")]
    MissingHeader(&'static str),
    /// A header that must occur once occurs several times (RFC 4475 multi01).
    #[error("Multiple {0} headers")]
    DuplicateHeader(&'static str),
    /// Content-Length is not 1*DIGIT (RFC 4475 ncl: never use a negative
    /// value as a length).
    #[error("Malformed Content-Length")]
    BadContentLength,
    /// Several Content-Length headers with different values (RFC 4475 mcl01).
    #[error("Conflicting Content-Length values")]
    ConflictingContentLength,
    /// Stream transports require Content-Length (RFC 3261 §18.3, §20.14).
    #[error("Missing Content-Length")]
    MissingContentLength,
    /// Datagram shorter than Content-Length says (RFC 3261 §18.3, RFC 4475 clerr).
    #[error("Content-Length larger than message")]
    BodyTruncated,
    /// CSeq sequence number above 2**32-1 (RFC 3261 §8.1.1.5 requires
    /// < 2**31 when *generating*, but a receiver must accept 32 bits; RFC 4475
    /// scalar02 requires 400 beyond that).
    #[error("CSeq out of range")]
    CSeqOutOfRange,
    /// CSeq method differs from the request method (RFC 4475 mismatch01/02).
    #[error("CSeq method does not match request method")]
    CSeqMethodMismatch,
    /// Max-Forwards outside 0..=255 (RFC 3261 §20.22, RFC 4475 scalar02).
    #[error("Max-Forwards out of range")]
    MaxForwardsOutOfRange,
    /// Expires outside 0..=2**32-1 (RFC 3261 §20.19).
    #[error("Expires out of range")]
    ExpiresOutOfRange,
}

impl ParseError {
    /// Status code of the response to send when the message is answerable:
    /// 505 for an unsupported version, 513 for an oversized message
    /// (RFC 3261 §21.5.13), 400 otherwise.
    pub fn status_code(&self) -> u16 {
        match self {
            ParseError::VersionNotSupported => 505,
            ParseError::LimitExceeded(LimitKind::MessageSize | LimitKind::BodySize) => 513,
            _ => 400,
        }
    }
}

/// Errors from the builders/editor: refusing to render something that would
/// not re-parse the same way (header injection through CR/LF, bad names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("invalid header name")]
    InvalidHeaderName,
    #[error("invalid header value")]
    InvalidHeaderValue,
    #[error("invalid method")]
    InvalidMethod,
    #[error("invalid Request-URI")]
    InvalidUri,
    #[error("invalid status code or reason phrase")]
    InvalidStatus,
    #[error("message is not a request")]
    NotARequest,
    /// What the message is built from is no longer held (a dialog's
    /// INVITE, let go when its session ended).
    #[error("no request to build from")]
    NoRequest,
}
