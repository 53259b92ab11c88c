//! What routing needs to see of a request, independent of how it was
//! parsed. The SIP message type implements it without copying; the rule
//! evaluator never allocates to read a request.

use std::borrow::Cow;
use std::net::IpAddr;

pub trait RequestView {
    /// The method token as received (`INVITE`, or an extension method).
    fn method(&self) -> Cow<'_, str>;
    /// Request-URI user part, %-unescaped; `None` when the URI has no user.
    fn request_uri_user(&self) -> Option<Cow<'_, str>>;
    /// Request-URI host (without brackets for IPv6), as received.
    fn request_uri_host(&self) -> Cow<'_, str>;
    /// Calls `f` with each value of header `name` (case-insensitive, compact
    /// forms equivalent, comma lists split) until `f` returns true; returns
    /// whether it did.
    fn any_header_value(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> bool) -> bool;
    /// The SDP body, when the request carries one.
    fn sdp(&self) -> Option<&[u8]>;
}

/// Who sent the request, as established before routing.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestContext<'a> {
    /// The authenticated client, if any.
    pub client_id: Option<&'a str>,
    /// Source address of the request.
    pub source: Option<IpAddr>,
}

/// Media types of the `m=` lines of an SDP body (RFC 8866 §5.14).
pub fn sdp_has_media(sdp: &[u8], media: &str) -> bool {
    sdp.split(|&b| b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line.strip_prefix(b"m=").is_some_and(|rest| {
            let kind = rest.split(|&b| b == b' ').next().unwrap_or_default();
            kind.eq_ignore_ascii_case(media.as_bytes())
        })
    })
}

/// The relay reads requests straight from the parsed message.
impl RequestView for crate::sip::message::Message {
    fn method(&self) -> Cow<'_, str> {
        crate::sip::message::Message::method(self).map_or(Cow::Borrowed(""), |m| m.as_str())
    }

    fn request_uri_user(&self) -> Option<Cow<'_, str>> {
        let uri = self.request_uri().ok()?;
        Some(match uri.user_unescaped()? {
            Cow::Borrowed(b) => String::from_utf8_lossy(b),
            Cow::Owned(v) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
        })
    }

    fn request_uri_host(&self) -> Cow<'_, str> {
        self.request_uri()
            .ok()
            .and_then(|u| u.host())
            .map_or(Cow::Borrowed(""), |h| Cow::Borrowed(h.as_str()))
    }

    fn any_header_value(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.headers_named(name).any(|h| {
            let whole = h.value_unfolded();
            if f(&whole) {
                return true;
            }
            // A list header also matches on any one of its elements.
            let mut elements = h.values();
            match (elements.next(), elements.next()) {
                (Some(first), Some(second)) => f(first) || f(second) || elements.any(&mut *f),
                _ => false,
            }
        })
    }

    fn sdp(&self) -> Option<&[u8]> {
        let is_sdp = matches!(self.content_type(), Ok(Some(ct)) if ct.is("application/sdp"));
        (is_sdp && !self.body().is_empty()).then(|| self.body())
    }
}
