//! CSeq (RFC 3261 §20.16): `1*DIGIT LWS Method`.

use super::header::HeaderName;
use super::method::Method;
use super::msg::Message;
use super::scan::{self, is_ws, trim_ws};
use super::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number; must fit 32 bits (RFC 4475 scalar02).
    pub seq: u32,
    pub method: Method<'a>,
}

impl<'a> CSeq<'a> {
    pub fn parse(v: &'a [u8]) -> Result<CSeq<'a>, ParseError> {
        const BAD: ParseError = ParseError::BadHeader("CSeq");
        let v = trim_ws(v);
        let d = scan::take_while(v, 0, |b| b.is_ascii_digit());
        if d == 0 {
            return Err(BAD);
        }
        // Leading zeros are legal (RFC 4475 wsinv `0009`); the value is not.
        let seq = scan::parse_u64(&v[..d])
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(ParseError::CSeqOutOfRange)?;
        let m = scan::skip_ws(v, d);
        if m == d || m == v.len() || !v[m..].iter().all(|&b| scan::is_token(b)) {
            return Err(BAD);
        }
        debug_assert!(!v[m..].iter().any(|&b| is_ws(b)));
        Ok(CSeq {
            seq,
            method: Method::from_bytes(&v[m..]),
        })
    }
}

impl Message {
    /// The CSeq header (first line).
    pub fn cseq(&self) -> Result<CSeq<'_>, ParseError> {
        let h = self
            .get(HeaderName::CSeq)
            .ok_or(ParseError::MissingHeader("CSeq"))?;
        CSeq::parse(h.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        let c = CSeq::parse(b"0009\r\n  INVITE").unwrap();
        assert_eq!(c.seq, 9);
        assert_eq!(c.method, Method::Invite);
        let c = CSeq::parse(b"4294967295 FOO").unwrap();
        assert_eq!(c.method, Method::Extension(b"FOO"));
        assert_eq!(
            CSeq::parse(b"4294967296 INVITE"),
            Err(ParseError::CSeqOutOfRange)
        );
        assert_eq!(
            CSeq::parse(b"36893488147419103232 REGISTER"),
            Err(ParseError::CSeqOutOfRange)
        );
        assert!(CSeq::parse(b"1INVITE").is_err());
        assert!(CSeq::parse(b"1 INVITE x").is_err());
        assert!(CSeq::parse(b"INVITE").is_err());
        assert!(CSeq::parse(b"-1 INVITE").is_err());
    }
}
