//! Small single-value and token-list headers: Call-ID (§20.8),
//! Max-Forwards (§20.22), Expires (§20.19), option-tag lists
//! (Require §20.32, Supported §20.37, Unsupported §20.40, Proxy-Require
//! §20.29) and Content-Type (§20.15, media-type per §25.1).

use super::header::HeaderName;
use super::msg::Message;
use super::params::{Mode, Params};
use super::scan::{self, is, is_token_str, trim_ws, WORD};
use super::ParseError;

/// `callid = word [ "@" word ]`.
pub(crate) fn is_call_id(v: &[u8]) -> bool {
    let word = |w: &[u8]| !w.is_empty() && w.iter().all(|&b| is(b, WORD));
    match memchr::memchr(b'@', v) {
        Some(at) => word(&v[..at]) && word(&v[at + 1..]),
        None => word(v),
    }
}

/// A delta-seconds style u32 (`1*DIGIT`, at most 2**32-1).
fn parse_u32(v: &[u8]) -> Option<u32> {
    scan::parse_u64(trim_ws(v)).and_then(|n| u32::try_from(n).ok())
}

/// `m-type "/" m-subtype *(SEMI m-parameter)` with LWS allowed around `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    pub mtype: &'a [u8],
    pub subtype: &'a [u8],
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    pub fn parse(v: &'a [u8]) -> Result<MediaType<'a>, ParseError> {
        const BAD: ParseError = ParseError::BadHeader("Content-Type");
        let v = trim_ws(v);
        let t = scan::take_while(v, 0, scan::is_token);
        let slash = scan::skip_ws(v, t);
        if t == 0 || v.get(slash) != Some(&b'/') {
            return Err(BAD);
        }
        let s0 = scan::skip_ws(v, slash + 1);
        let s1 = scan::take_while(v, s0, scan::is_token);
        if s1 == s0 {
            return Err(BAD);
        }
        let params = Params::parse(&v[s1..], Mode::Header).map_err(|_| BAD)?;
        Ok(MediaType {
            mtype: &v[..t],
            subtype: &v[s0..s1],
            params,
        })
    }

    /// Case-insensitive `type/subtype` comparison, e.g. `is("application/sdp")`.
    pub fn is(&self, essence: &str) -> bool {
        let e = essence.as_bytes();
        e.len() == self.mtype.len() + 1 + self.subtype.len()
            && scan::eq_ic(&e[..self.mtype.len()], self.mtype)
            && e[self.mtype.len()] == b'/'
            && scan::eq_ic(&e[self.mtype.len() + 1..], self.subtype)
    }
}

impl Message {
    /// Call-ID value (validated as `word ["@" word]`).
    pub fn call_id(&self) -> Result<&[u8], ParseError> {
        let h = self
            .get(HeaderName::CallId)
            .ok_or(ParseError::MissingHeader("Call-ID"))?;
        if is_call_id(h.value) {
            Ok(h.value)
        } else {
            Err(ParseError::BadHeader("Call-ID"))
        }
    }

    /// Max-Forwards (0..=255); `Ok(None)` if absent (RFC 2543 peers,
    /// RFC 4475 inv2543).
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        let Some(h) = self.get(HeaderName::MaxForwards) else {
            return Ok(None);
        };
        let v = trim_ws(h.value);
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::BadHeader("Max-Forwards"));
        }
        scan::parse_u64(v)
            .and_then(|n| u8::try_from(n).ok())
            .map(Some)
            .ok_or(ParseError::MaxForwardsOutOfRange)
    }

    /// Expires header (delta-seconds); `Ok(None)` if absent. Values beyond
    /// 2**32-1 are an error the engine may treat as "absent" (RFC 4475
    /// scalar02 discussion).
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        match self.get(HeaderName::Expires) {
            None => Ok(None),
            Some(h) => parse_u32(h.value)
                .map(Some)
                .ok_or(ParseError::ExpiresOutOfRange),
        }
    }

    /// Option tags / tokens of a token-list header across all its lines
    /// (empty elements skipped), e.g. `tokens(HeaderName::Require)`.
    pub fn tokens(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> + '_ {
        self.values(name).filter(|v| !v.is_empty())
    }

    /// Checks that every element of a token-list header is a token.
    pub fn check_tokens(&self, name: HeaderName) -> Result<(), ParseError> {
        if self.values(name).all(|v| v.is_empty() || is_token_str(v)) {
            Ok(())
        } else {
            Err(ParseError::BadHeader(name.as_str()))
        }
    }

    /// Require option tags.
    pub fn require(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.tokens(HeaderName::Require)
    }
    /// Proxy-Require option tags.
    pub fn proxy_require(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.tokens(HeaderName::ProxyRequire)
    }
    /// Supported option tags.
    pub fn supported(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.tokens(HeaderName::Supported)
    }
    /// Unsupported option tags.
    pub fn unsupported(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.tokens(HeaderName::Unsupported)
    }

    /// Content-Type; `Ok(None)` if absent.
    pub fn content_type(&self) -> Result<Option<MediaType<'_>>, ParseError> {
        self.get(HeaderName::ContentType)
            .map(|h| MediaType::parse(h.value))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids() {
        assert!(is_call_id(b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"));
        assert!(is_call_id(b"3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA.."));
        assert!(!is_call_id(b"a b"));
        assert!(!is_call_id(b"a@"));
        assert!(!is_call_id(b""));
    }

    #[test]
    fn media_types() {
        let m = MediaType::parse(b"multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(m.is("Multipart/Mixed"));
        assert_eq!(
            m.params.get("boundary"),
            Some(Some(&b"7a9cbec02ceef655"[..]))
        );
        let m = MediaType::parse(b"application / sdp ; charset=\"utf-8\"").unwrap();
        assert!(m.is("application/sdp"));
        assert!(MediaType::parse(b"application").is_err());
        assert!(MediaType::parse(b"text/plain;").is_err());
    }
}
