//! URIs: `sip:`/`sips:` (RFC 3261 §19.1, §25.1), `tel:` (RFC 3966) and any
//! other `absoluteURI`, kept opaque so the engine can answer 416 Unsupported
//! URI Scheme (RFC 3261 §8.2.2.1, RFC 4475 unkscm/novelsc).
//!
//! Views borrow from the message; %-escapes are kept as received (relaying
//! must not re-encode) and decoded on demand by [`unescape`], which never
//! stops at `%00` (RFC 4475 escnull). Host literals follow RFC 2732/5118:
//! IPv6 references are bracketed, `[2001:db8::1]:5060`.

use super::params::{take_escaped, Mode, Params, ParamsAt};
use super::scan::{self, is, HNV_UNRES, HOSTNAME, PASS_UNRES, SCHEME, UNRESERVED, USER_UNRES};
use super::views::Rel;
use super::ParseError;
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    /// Any other scheme; see [`Uri::scheme_raw`].
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    Domain,
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
}

/// A host as it appears in a URI or Via sent-by. `raw` keeps the original
/// spelling (brackets included for IPv6) for byte-exact relaying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host<'a> {
    raw: &'a [u8],
    kind: HostKind,
}

impl<'a> Host<'a> {
    /// `hostname / IPv4address / IPv6reference` (RFC 3261 §25.1; IPv6 only
    /// bracketed, RFC 2732/5118, since ':' introduces the port).
    pub fn parse(raw: &'a [u8]) -> Result<Host<'a>, ParseError> {
        Host::parse_raw(raw).map_err(|_| ParseError::BadUri)
    }

    pub(crate) fn parse_raw(raw: &'a [u8]) -> Result<Host<'a>, ()> {
        if raw.is_empty() {
            return Err(());
        }
        if raw[0] == b'[' {
            if raw.len() < 3 || raw[raw.len() - 1] != b']' {
                return Err(());
            }
            let ip = parse_ip::<Ipv6Addr>(&raw[1..raw.len() - 1])?;
            return Ok(Host {
                raw,
                kind: HostKind::Ipv6(ip),
            });
        }
        if raw.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
            let ip = parse_ipv4(raw)?;
            return Ok(Host {
                raw,
                kind: HostKind::Ipv4(ip),
            });
        }
        // hostname = *( domainlabel "." ) toplabel [ "." ]
        if !raw[0].is_ascii_alphanumeric()
            || !raw.iter().all(|&b| is(b, HOSTNAME))
            || raw.windows(2).any(|w| w == b"..")
        {
            return Err(());
        }
        Ok(Host {
            raw,
            kind: HostKind::Domain,
        })
    }

    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The host as text (hosts are ASCII by construction).
    pub fn as_str(&self) -> &'a str {
        std::str::from_utf8(self.raw).unwrap_or("")
    }

    pub fn kind(&self) -> HostKind {
        self.kind
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self.kind {
            HostKind::Domain => None,
            HostKind::Ipv4(a) => Some(IpAddr::V4(a)),
            HostKind::Ipv6(a) => Some(IpAddr::V6(a)),
        }
    }

    /// Domain name (without trailing dot), `None` for IP literals.
    pub fn domain(&self) -> Option<&'a [u8]> {
        match self.kind {
            HostKind::Domain => Some(self.raw.strip_suffix(b".").unwrap_or(self.raw)),
            _ => None,
        }
    }
}

/// A [`Host`] kept by offsets (see `views`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct HostAt {
    raw: Rel,
    kind: HostKind,
}

impl<'a> Host<'a> {
    pub(crate) fn keep_in(&self, base: &[u8]) -> Option<HostAt> {
        Some(HostAt {
            raw: Rel::of(base, self.raw)?,
            kind: self.kind,
        })
    }

    pub(crate) fn load_in(at: &HostAt, base: &'a [u8]) -> Option<Host<'a>> {
        Some(Host {
            raw: at.raw.get(base)?,
            kind: at.kind,
        })
    }
}

pub(crate) fn parse_ip<T: std::str::FromStr>(s: &[u8]) -> Result<T, ()> {
    std::str::from_utf8(s)
        .map_err(|_| ())?
        .parse()
        .map_err(|_| ())
}

/// `IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT` (RFC
/// 3261 §25.1), each at most 255 and, as `std` parses them, without leading
/// zeros. Hand-written because a host is parsed dozens of times per call and
/// `std` only parses `str` (a UTF-8 check first) through a general parser.
pub(crate) fn parse_ipv4(s: &[u8]) -> Result<Ipv4Addr, ()> {
    let mut octets = [0u8; 4];
    let mut parts = s.split(|&b| b == b'.');
    for octet in &mut octets {
        let part = parts.next().ok_or(())?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return Err(());
        }
        let mut value = 0u16;
        for &b in part {
            if !b.is_ascii_digit() {
                return Err(());
            }
            value = value * 10 + u16::from(b - b'0');
        }
        *octet = u8::try_from(value).map_err(|_| ())?;
    }
    if parts.next().is_some() {
        return Err(());
    }
    Ok(Ipv4Addr::from(octets))
}

/// `port = 1*DIGIT`, bounded to u16 (never wraps).
pub(crate) fn parse_port(s: &[u8]) -> Result<u16, ()> {
    if s.is_empty() || s.len() > 5 {
        return Err(());
    }
    let v = scan::parse_u64(s).ok_or(())?;
    u16::try_from(v).map_err(|_| ())
}

/// `hostport = host [ ":" port ]`.
pub(crate) fn parse_hostport(s: &[u8]) -> Result<(Host<'_>, Option<u16>), ()> {
    let split = if s.first() == Some(&b'[') {
        memchr::memchr(b']', s).ok_or(())? + 1
    } else {
        memchr::memchr(b':', s).unwrap_or(s.len())
    };
    let host = Host::parse_raw(&s[..split])?;
    let port = match &s[split..] {
        [] => None,
        [b':', p @ ..] => Some(parse_port(p)?),
        _ => return Err(()),
    };
    Ok((host, port))
}

/// A parsed URI view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    raw: &'a [u8],
    scheme: Scheme,
    scheme_len: usize,
    user: Option<&'a [u8]>,
    password: Option<&'a [u8]>,
    host: Option<Host<'a>>,
    port: Option<u16>,
    params: Params<'a>,
    headers: Option<&'a [u8]>,
}

/// Splits `scheme ":"` off (`scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`).
pub(crate) fn split_scheme(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    if !raw.first()?.is_ascii_alphabetic() {
        return None;
    }
    let end = scan::take_while(raw, 1, |b| is(b, SCHEME));
    if raw.get(end) != Some(&b':') {
        return None;
    }
    Some((&raw[..end], &raw[end + 1..]))
}

impl<'a> Uri<'a> {
    /// Parses and validates a URI (no surrounding `<>`, no white space).
    pub fn parse(raw: &'a [u8]) -> Result<Uri<'a>, ParseError> {
        Uri::parse_raw(raw).map_err(|_| ParseError::BadUri)
    }

    pub(crate) fn parse_raw(raw: &'a [u8]) -> Result<Uri<'a>, ()> {
        let (scheme_raw, rest) = split_scheme(raw).ok_or(())?;
        let scheme = if scan::eq_ic(scheme_raw, b"sip") {
            Scheme::Sip
        } else if scan::eq_ic(scheme_raw, b"sips") {
            Scheme::Sips
        } else if scan::eq_ic(scheme_raw, b"tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        };
        let mut uri = Uri {
            raw,
            scheme,
            scheme_len: scheme_raw.len(),
            user: None,
            password: None,
            host: None,
            port: None,
            params: Params::default(),
            headers: None,
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => uri.parse_sip(rest)?,
            Scheme::Tel => {
                let semi = memchr::memchr(b';', rest).unwrap_or(rest.len());
                let number = &rest[..semi];
                if number.is_empty() || !number.iter().all(|&b| is_opaque(b) && b != b'?') {
                    return Err(());
                }
                uri.user = Some(number);
                uri.params = Params::parse(&rest[semi..], Mode::Uri)?;
            }
            Scheme::Other => {
                if rest.is_empty() || !rest.iter().all(|&b| is_opaque(b)) {
                    return Err(());
                }
            }
        }
        Ok(uri)
    }

    fn parse_sip(&mut self, rest: &'a [u8]) -> Result<(), ()> {
        // '@' cannot occur unescaped after the userinfo (not in paramchar nor
        // hnv chars), so the first '@' ends the userinfo. The user part may
        // contain ';' '?' ',' (user-unreserved, RFC 4475 semiuri/intmeth).
        let mut hp = rest;
        if let Some(at) = memchr::memchr(b'@', rest) {
            let ui = &rest[..at];
            let uend = take_escaped(ui, 0, |b| is(b, UNRESERVED | USER_UNRES))?;
            if uend == 0 {
                return Err(());
            }
            self.user = Some(&ui[..uend]);
            if uend < ui.len() {
                if ui[uend] != b':' {
                    return Err(());
                }
                let pw = &ui[uend + 1..];
                if take_escaped(pw, 0, |b| is(b, UNRESERVED | PASS_UNRES))? != pw.len() {
                    return Err(());
                }
                self.password = Some(pw);
            }
            hp = &rest[at + 1..];
        }
        let hp_end = memchr::memchr2(b';', b'?', hp).unwrap_or(hp.len());
        let (host, port) = parse_hostport(&hp[..hp_end])?;
        self.host = Some(host);
        self.port = port;
        let after = &hp[hp_end..];
        let q = memchr::memchr(b'?', after).unwrap_or(after.len());
        self.params = Params::parse(&after[..q], Mode::Uri)?;
        if q < after.len() {
            let h = &after[q + 1..];
            validate_uri_headers(h)?;
            self.headers = Some(h);
        }
        Ok(())
    }

    /// The whole URI as received.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
    /// The scheme as written (e.g. `soap.beep`).
    pub fn scheme_raw(&self) -> &'a [u8] {
        &self.raw[..self.scheme_len]
    }
    /// Everything after `scheme:`.
    pub fn opaque(&self) -> &'a [u8] {
        &self.raw[self.scheme_len + 1..]
    }
    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }
    /// SIP user part, still escaped; for `tel:` the telephone number.
    pub fn user(&self) -> Option<&'a [u8]> {
        self.user
    }
    /// User part with %-escapes decoded (RFC 3261 §19.1.4 comparison form).
    pub fn user_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.user.map(unescape)
    }
    pub fn password(&self) -> Option<&'a [u8]> {
        self.password
    }
    /// Host of a SIP/SIPS URI; `None` for tel and other schemes.
    pub fn host(&self) -> Option<Host<'a>> {
        self.host
    }
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// URI parameters (for tel: the tel parameters).
    pub fn params(&self) -> Params<'a> {
        self.params
    }
    /// Raw `hname=hvalue&...` after '?', still escaped.
    pub fn headers(&self) -> Option<&'a [u8]> {
        self.headers
    }
    /// `transport` URI parameter.
    pub fn transport(&self) -> Option<&'a [u8]> {
        self.params.get("transport").flatten()
    }
    /// Loose-routing flag (`;lr`, RFC 3261 §19.1.1).
    pub fn lr(&self) -> bool {
        self.params.contains("lr")
    }
    pub fn maddr(&self) -> Option<&'a [u8]> {
        self.params.get("maddr").flatten()
    }
}

/// A [`Uri`] kept by offsets (see `views`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct UriAt {
    raw: Rel,
    scheme: Scheme,
    scheme_len: usize,
    user: Option<Rel>,
    password: Option<Rel>,
    host: Option<HostAt>,
    port: Option<u16>,
    params: ParamsAt,
    headers: Option<Rel>,
}

impl<'a> Uri<'a> {
    /// This URI as offsets into its own text.
    pub(crate) fn keep(&self) -> Option<UriAt> {
        self.keep_in(self.raw)
    }

    /// The URI kept by [`Uri::keep`], in its text `raw`.
    pub(crate) fn load(at: &UriAt, raw: &'a [u8]) -> Option<Uri<'a>> {
        Uri::load_in(at, raw)
    }

    /// This URI as offsets into `base`, a text that holds it.
    pub(crate) fn keep_in(&self, base: &[u8]) -> Option<UriAt> {
        Some(UriAt {
            raw: Rel::of(base, self.raw)?,
            scheme: self.scheme,
            scheme_len: self.scheme_len,
            user: Rel::of_opt(base, self.user)?,
            password: Rel::of_opt(base, self.password)?,
            host: match &self.host {
                Some(h) => Some(h.keep_in(base)?),
                None => None,
            },
            port: self.port,
            params: self.params.keep_in(base)?,
            headers: Rel::of_opt(base, self.headers)?,
        })
    }

    pub(crate) fn load_in(at: &UriAt, base: &'a [u8]) -> Option<Uri<'a>> {
        Some(Uri {
            raw: at.raw.get(base)?,
            scheme: at.scheme,
            scheme_len: at.scheme_len,
            user: Rel::get_opt(at.user, base)?,
            password: Rel::get_opt(at.password, base)?,
            host: match &at.host {
                Some(h) => Some(Host::load_in(h, base)?),
                None => None,
            },
            port: at.port,
            params: Params::load_in(&at.params, base)?,
            headers: Rel::get_opt(at.headers, base)?,
        })
    }
}

/// Opaque URI bytes: visible ASCII except the delimiters that end a URI in
/// a header (`<`, `>`, `"`) and white space.
fn is_opaque(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !matches!(b, b'<' | b'>' | b'"')
}

fn validate_uri_headers(h: &[u8]) -> Result<(), ()> {
    let chars = |b| is(b, UNRESERVED | HNV_UNRES);
    let mut i = 0;
    loop {
        let n = take_escaped(h, i, chars)?;
        if n == i || h.get(n) != Some(&b'=') {
            return Err(());
        }
        i = take_escaped(h, n + 1, chars)?;
        match h.get(i) {
            None => return Ok(()),
            Some(b'&') => i += 1,
            Some(_) => return Err(()),
        }
    }
}

/// Decodes %HH escapes. Malformed escapes are kept literally; `%00` becomes
/// a NUL byte and does not end the string (RFC 4475 escnull).
pub fn unescape(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.contains(&b'%') {
        return Cow::Borrowed(s);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    Cow::Owned(out)
}

impl std::fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uris() {
        let u = Uri::parse(b"sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user(), Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(u.host().unwrap().raw(), b"example.com");
        assert!(u.params().is_empty());

        let u = Uri::parse(b"sips:[2001:db8::1]:5061;transport=tls;lr?Subject=x&Foo=").unwrap();
        assert_eq!(u.scheme(), Scheme::Sips);
        assert_eq!(u.host().unwrap().ip(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(u.port(), Some(5061));
        assert_eq!(u.transport(), Some(&b"tls"[..]));
        assert!(u.lr());
        assert_eq!(u.headers(), Some(&b"Subject=x&Foo="[..]));

        let u = Uri::parse(
            b"sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        )
        .unwrap();
        assert_eq!(
            u.user(),
            Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
        );
        assert_eq!(
            u.password(),
            Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..])
        );

        let u = Uri::parse(b"sip:null-%00-null@example.com").unwrap();
        assert_eq!(&*u.user_unescaped().unwrap(), b"null-\0-null");
        let u = Uri::parse(b"sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(&*u.user_unescaped().unwrap(), b"sips:user@example.com");

        for bad in [
            &b"<sip:user@example.com>"[..],
            b"sip:user@example.com; lr",
            b"sip:t.watson@example.org ",
            b"sip:host:99999",
            b"sip:host:",
            b"sip:@host",
            b"sip:us%zzer@host",
            b"sip:[2001:db8::1",
            b"sip:2001:db8::1",
            b"sip:",
            b"sip:a..b",
        ] {
            assert!(Uri::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn other_uris() {
        let u = Uri::parse(b"nobodyKnowsThisScheme:totallyopaquecontent").unwrap();
        assert_eq!(u.scheme(), Scheme::Other);
        assert_eq!(u.scheme_raw(), b"nobodyKnowsThisScheme");
        let u = Uri::parse(b"soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(u.scheme(), Scheme::Other);
        let u = Uri::parse(b"tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme(), Scheme::Tel);
        assert_eq!(u.user(), Some(&b"+1-201-555-0123"[..]));
        assert!(u.params().contains("phone-context"));
        assert!(Uri::parse(b"1abc:x").is_err());
    }

    #[test]
    fn unescape_malformed_kept() {
        assert_eq!(&*unescape(b"a%4"), b"a%4");
        assert_eq!(&*unescape(b"%41%zz%"), b"A%zz%");
    }

    #[test]
    fn ipv4_literals_parse_as_std_parses_them() {
        for text in [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "192.0.2.10",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..3.4",
            "1.2.3.",
            ".1.2.3",
            "1234.1.1.1",
            "",
            "1.2.3.4a",
            "00.1.1.1",
            "10.0.0.010",
        ] {
            assert_eq!(
                parse_ipv4(text.as_bytes()).ok(),
                text.parse::<Ipv4Addr>().ok(),
                "{text:?}"
            );
        }
    }
}
