//! name-addr / addr-spec values: From, To, Contact, Route, Record-Route,
//! Reply-To, Refer-To ... (RFC 3261 §20.10, §25.1).
//!
//! `(name-addr / addr-spec) *(SEMI param)`, `name-addr = [display-name]
//! LAQUOT addr-spec RAQUOT`. Without `<>` the URI ends at the first `;` and
//! every parameter belongs to the *header* (RFC 4475 cparam01); with `<>` the
//! URI keeps its own parameters (cparam02). A URI containing `,` `?` or `;`
//! must be bracketed, so an unbracketed one with `?` is rejected (regbadct).

use super::header::HeaderName;
use super::msg::Message;
use super::params::{Mode, Params, ParamsAt};
use super::scan::{self, is_ws, quoted_end, skip_ws, trim_ws, unquote};
use super::uri::{Uri, UriAt};
use super::views::Rel;
use super::ParseError;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    raw: &'a [u8],
    display: Option<&'a [u8]>,
    uri: Uri<'a>,
    bracketed: bool,
    params: Params<'a>,
}

/// Unquoted display names are `*(token LWS)`. Non-ASCII bytes are tolerated
/// (UAs send unquoted UTF-8 names); separators such as `,` are not
/// (RFC 4475 baddn).
fn is_display_char(b: u8) -> bool {
    scan::is_token(b) || is_ws(b) || b >= 0x80
}

/// A value cut into its parts without looking inside them: display name,
/// URI, header parameters. The one place that knows where a name-addr's URI
/// ends, for [`NameAddr::parse_raw`] and for [`header_tag`].
struct Framing<'a> {
    raw: &'a [u8],
    display: Option<&'a [u8]>,
    uri: &'a [u8],
    bracketed: bool,
    params: &'a [u8],
}

impl<'a> Framing<'a> {
    fn split(s: &'a [u8]) -> Result<Framing<'a>, ()> {
        let s = trim_ws(s);
        if s.is_empty() {
            return Err(());
        }
        let (display, lt) = if s[0] == b'"' {
            let e = quoted_end(s, 0).ok_or(())?; // RFC 4475 quotbal
            let lt = skip_ws(s, e);
            if s.get(lt) != Some(&b'<') {
                return Err(());
            }
            (Some(&s[..e]), Some(lt))
        } else {
            let j = scan::take_while(s, 0, is_display_char);
            if s.get(j) == Some(&b'<') {
                let d = trim_ws(&s[..j]);
                ((!d.is_empty()).then_some(d), Some(j))
            } else {
                (None, None)
            }
        };
        if let Some(lt) = lt {
            let gt = lt + 1 + memchr::memchr(b'>', &s[lt + 1..]).ok_or(())?;
            // No trimming inside <>: `< sip:x >` is invalid (RFC 4475 badaspec).
            return Ok(Framing {
                raw: s,
                display,
                uri: &s[lt + 1..gt],
                bracketed: true,
                params: &s[gt + 1..],
            });
        }
        let end = scan::take_while(s, 0, |b| b != b';' && !is_ws(b));
        let uri = &s[..end];
        if memchr::memchr2(b'?', b',', uri).is_some() {
            return Err(());
        }
        Ok(Framing {
            raw: s,
            display: None,
            uri,
            bracketed: false,
            params: &s[end..],
        })
    }
}

/// The `tag` header parameter of a From or To value (RFC 3261 §19.3),
/// found without parsing the URI: the tags of a message are asked for a
/// dozen times per call, after `validate` checked the whole value once.
/// The same as `NameAddr::parse(value)?.tag()` wherever that parses; on a
/// value whose URI alone is malformed it still finds the tag.
pub(crate) fn header_tag(value: &[u8]) -> Option<&[u8]> {
    let f = Framing::split(value).ok()?;
    Params::parse(f.params, Mode::Header)
        .ok()?
        .get("tag")
        .flatten()
}

impl<'a> NameAddr<'a> {
    /// Parses one value (`BadHeader("name-addr")` on error; the message
    /// accessors report the header's own name instead).
    pub fn parse(s: &'a [u8]) -> Result<NameAddr<'a>, ParseError> {
        NameAddr::parse_raw(s).map_err(|_| ParseError::BadHeader("name-addr"))
    }

    pub(crate) fn parse_raw(s: &'a [u8]) -> Result<NameAddr<'a>, ()> {
        let f = Framing::split(s)?;
        let uri = Uri::parse_raw(f.uri)?;
        let params = Params::parse(f.params, Mode::Header)?;
        Ok(NameAddr {
            raw: f.raw,
            display: f.display,
            uri,
            bracketed: f.bracketed,
            params,
        })
    }

    /// The whole value as received (trimmed).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
    /// Display name as received (with quotes if it was quoted).
    pub fn display_name(&self) -> Option<&'a [u8]> {
        self.display
    }
    /// Display name without quotes and quoted-pair escapes (may contain any
    /// byte, even NUL: RFC 4475 intmeth).
    pub fn display_name_unquoted(&self) -> Option<Cow<'a, [u8]>> {
        self.display.map(unquote)
    }
    pub fn uri(&self) -> &Uri<'a> {
        &self.uri
    }
    /// Whether the URI was enclosed in `<>`.
    pub fn is_bracketed(&self) -> bool {
        self.bracketed
    }
    /// Header parameters (tag, expires, q, lr is a *URI* param ...).
    pub fn params(&self) -> Params<'a> {
        self.params
    }
    pub fn tag(&self) -> Option<&'a [u8]> {
        self.params.get("tag").flatten()
    }
    /// Contact `expires` parameter; `Some(Err)` if present but not a
    /// 32-bit delta-seconds (RFC 4475 scalar02).
    pub fn expires(&self) -> Option<Result<u32, ParseError>> {
        let v = self.params.get("expires")?;
        Some(
            v.and_then(scan::parse_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or(ParseError::ExpiresOutOfRange),
        )
    }
    /// Contact `q` in thousandths (`q=0.33` -> 330), `Some(Err)` if malformed.
    pub fn q(&self) -> Option<Result<u16, ParseError>> {
        let v = self.params.get("q")?;
        Some(
            v.and_then(parse_qvalue)
                .ok_or(ParseError::BadHeader("Contact")),
        )
    }
}

/// A [`NameAddr`] kept by offsets into its value (see `views`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct NameAddrAt {
    display: Option<Rel>,
    uri: UriAt,
    bracketed: bool,
    params: ParamsAt,
}

impl<'a> NameAddr<'a> {
    pub(crate) fn keep(&self) -> Option<NameAddrAt> {
        let base = self.raw;
        Some(NameAddrAt {
            display: Rel::of_opt(base, self.display)?,
            uri: self.uri.keep_in(base)?,
            bracketed: self.bracketed,
            params: self.params.keep_in(base)?,
        })
    }

    /// The value kept by [`NameAddr::keep`], in its text `raw`.
    pub(crate) fn load(at: &NameAddrAt, raw: &'a [u8]) -> Option<NameAddr<'a>> {
        Some(NameAddr {
            raw,
            display: Rel::get_opt(at.display, raw)?,
            uri: Uri::load_in(&at.uri, raw)?,
            bracketed: at.bracketed,
            params: Params::load_in(&at.params, raw)?,
        })
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
fn parse_qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match memchr::memchr(b'.', v) {
        Some(d) => (&v[..d], &v[d + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut f = 0u16;
    for i in 0..3 {
        f = f * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(f),
        b"1" if f == 0 => Some(1000),
        _ => None,
    }
}

/// One Contact value: `*` (REGISTER "remove all", §10.2.2) or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // a short-lived borrowed view, Copy
pub enum Contact<'a> {
    Star,
    Addr(NameAddr<'a>),
}

impl Message {
    fn single_name_addr(&self, name: HeaderName) -> Result<NameAddr<'_>, ParseError> {
        let h = self
            .get(name)
            .ok_or(ParseError::MissingHeader(name.as_str()))?;
        NameAddr::parse(h.value).map_err(|_| ParseError::BadHeader(name.as_str()))
    }

    /// The From header (first line; duplicates are reported by `validate`).
    pub fn from_header(&self) -> Result<NameAddr<'_>, ParseError> {
        match self.kept_from() {
            Some(kept) => Ok(kept),
            None => self.single_name_addr(HeaderName::From),
        }
    }

    /// The To header.
    pub fn to_header(&self) -> Result<NameAddr<'_>, ParseError> {
        match self.kept_to() {
            Some(kept) => Ok(kept),
            None => self.single_name_addr(HeaderName::To),
        }
    }

    /// The From tag, for a message `validate` accepted (see [`header_tag`]).
    pub fn from_tag(&self) -> Option<&[u8]> {
        match self.kept_from() {
            Some(kept) => kept.tag(),
            None => header_tag(self.get(HeaderName::From)?.value),
        }
    }

    /// The To tag, for a message `validate` accepted (see [`header_tag`]).
    pub fn to_tag(&self) -> Option<&[u8]> {
        match self.kept_to() {
            Some(kept) => kept.tag(),
            None => header_tag(self.get(HeaderName::To)?.value),
        }
    }

    /// Every Contact value across all Contact lines.
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'_>, ParseError>> + '_ {
        self.values(HeaderName::Contact).map(|v| {
            if v == b"*" {
                Ok(Contact::Star)
            } else {
                NameAddr::parse(v)
                    .map(Contact::Addr)
                    .map_err(|_| ParseError::BadHeader("Contact"))
            }
        })
    }

    /// The first Contact address (a remote target, RFC 3261 §12.1.1): the
    /// first value that parses and is not `*`; the one `validate` kept when
    /// there is one.
    pub fn first_contact(&self) -> Option<NameAddr<'_>> {
        self.kept_contact().or_else(|| {
            self.contacts()
                .filter_map(Result::ok)
                .find_map(|c| match c {
                    Contact::Addr(a) => Some(a),
                    Contact::Star => None,
                })
        })
    }

    /// Route values, in order (each must be a bracketed name-addr, §20.34).
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.route_list(HeaderName::Route)
    }

    /// Record-Route values, in order (§20.30).
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.route_list(HeaderName::RecordRoute)
    }

    fn route_list(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.values(name).map(move |v| match NameAddr::parse(v) {
            Ok(na) if na.is_bracketed() => Ok(na),
            _ => Err(ParseError::BadHeader(name.as_str())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let n = NameAddr::parse(
            b"\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(&*n.display_name_unquoted().unwrap(), b"J Rosenberg \\\"");
        assert_eq!(n.tag(), Some(&b"98asjd8"[..]));

        let n = NameAddr::parse(b"caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name(), Some(&b"caller"[..]));
        assert_eq!(n.uri().user(), Some(&b"caller"[..]));

        let n = NameAddr::parse(b"sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert!(n.uri().params().is_empty());
        assert!(n.params().contains("unknownparam"));
        let n = NameAddr::parse(b"<sip:+19725552222@gw1.example.net;unknownparam>").unwrap();
        assert!(n.uri().params().contains("unknownparam"));
        assert!(n.params().is_empty());

        let n =
            NameAddr::parse(b"\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:x@example.com>").unwrap();
        assert_eq!(
            &*n.display_name_unquoted().unwrap(),
            b"BEL:\x07 NUL:\x00 DEL:\x7f"
        );

        let n = NameAddr::parse(b"\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33").unwrap();
        assert_eq!(n.q(), Some(Ok(330)));
        assert!(n.params().contains("secondparam"));

        let n = NameAddr::parse(b"<sip:user@example.com?Route=%3Csip:sip.example.com%3E>").unwrap();
        assert_eq!(
            n.uri().headers(),
            Some(&b"Route=%3Csip:sip.example.com%3E"[..])
        );

        for bad in [
            &b"\"Mr. J. User <sip:j.user@example.com>"[..],
            b"\"Watson, Thomas\" < sip:t.watson@example.org >",
            b"Watson, Thomas <sip:t.watson@example.org>",
            b"sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            b"\"Joe\" <sip:joe@example.org>;;;;",
            b"alan@jasomi.com",
            b"<sip:x@y",
            b"",
        ] {
            assert!(
                NameAddr::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_qvalue(b"1.000"), Some(1000));
        assert_eq!(parse_qvalue(b"1.1"), None);
        assert_eq!(parse_qvalue(b"0"), Some(0));
    }

    /// `header_tag` agrees with a full parse on every value that parses,
    /// whatever hides a `;`, `>` or `tag` before the header parameters.
    #[test]
    fn header_tag_is_the_parsed_tag() {
        let values: &[&[u8]] = &[
            b"<sip:a@b>;tag=1",
            b"<sip:a@b;tag=uri-param>",
            b"<sip:a@b;tag=uri-param>;tag=header",
            b"sip:a@b;tag=unbracketed",
            b"sip:a@b",
            b"\"x;tag=no>\" <sip:a@b>;tag=yes",
            b"\"J Rosenberg \\\\\\\"\"  <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
            b"caller<sip:caller@example.com>;tag=323",
            b"<sip:a@b> ; foo ; TAG=Upper ; tag=second",
            b"<sip:a@b>;tag",
            b"  <sip:user@example.com?Route=%3Csip:x%3E>;tag=h  ",
            b"\"Joe\" <sip:joe@example.org>;;;;",
            b"<sip:x@y",
            b"",
        ];
        for &v in values {
            let parsed = NameAddr::parse(v).ok();
            if let Some(n) = parsed {
                assert_eq!(header_tag(v), n.tag(), "{}", String::from_utf8_lossy(v));
            } else {
                assert_eq!(header_tag(v), None, "{}", String::from_utf8_lossy(v));
            }
        }
        assert_eq!(header_tag(b"<sip:a@b;tag=u>;tag=h"), Some(&b"h"[..]));
        assert_eq!(header_tag(b"<sip:a@b;tag=u>"), None);
        // A URI alone malformed: validation's business, not the tag's.
        assert_eq!(header_tag(b"<sip:@>;tag=t"), Some(&b"t"[..]));
        assert!(NameAddr::parse(b"<sip:@>;tag=t").is_err());
    }
}
