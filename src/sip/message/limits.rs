//! Resource limits applied while parsing untrusted input.
//!
//! The relay listens on a public port, so every limit is checked *before* the
//! parser allocates or keeps anything proportional to the input: the size
//! check happens first, the header index grows only up to `max_headers`, and
//! line lengths are checked while splitting lines.

/// Parser limits. `Limits::default()` suits a public SIP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (start line + headers + body) in bytes.
    /// 65535 is the largest UDP payload (RFC 3261 §18.1.1 lets UDP messages
    /// reach it; bigger ones only make sense on streams).
    pub max_message_size: usize,
    /// Most header lines (a comma-combined line counts once).
    pub max_headers: usize,
    /// Longest start line or header (including its folded continuation lines).
    pub max_line_length: usize,
    /// Largest body (Content-Length value or datagram remainder).
    pub max_body_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 65_535,
            max_headers: 128,
            max_line_length: 8 * 1024,
            max_body_size: 65_535,
        }
    }
}

/// Which limit was exceeded (carried by [`super::ParseError::LimitExceeded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    MessageSize,
    HeaderCount,
    LineLength,
    BodySize,
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitKind::MessageSize => "Message size",
            LimitKind::HeaderCount => "Header count",
            LimitKind::LineLength => "Line length",
            LimitKind::BodySize => "Body size",
        })
    }
}
