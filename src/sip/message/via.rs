//! Via (RFC 3261 §20.42, §18.2.1; RFC 3581 rport/received; RFC 5118 IPv6).
//!
//! `via-parm = sent-protocol LWS sent-by *( SEMI via-params )` where
//! `sent-protocol = protocol-name SLASH protocol-version SLASH transport`
//! and SLASH/COLON/SEMI/EQUAL all allow LWS around them, so
//! `SIP  /   2.0 /UDP` folded over lines is legal (RFC 4475 wsinv).

use super::header::HeaderName;
use super::msg::Message;
use super::params::{Mode, Params, ParamsAt};
use super::scan::{self, is, skip_ws, take_while, HOSTNAME};
use super::uri::{parse_ip, parse_port, Host, HostAt};
use super::views::Rel;
use super::ParseError;
use std::net::IpAddr;

const BAD: ParseError = ParseError::BadHeader("Via");

/// The RFC 3261 branch magic cookie (§8.1.1.7).
pub const BRANCH_MAGIC: &[u8] = b"z9hG4bK";

/// `rport` (RFC 3581): a request asks for it with a valueless parameter; the
/// server fills in the source port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rport {
    Requested,
    Port(u16),
}

/// One Via value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    raw: &'a [u8],
    protocol: &'a [u8],
    version: &'a [u8],
    transport: &'a [u8],
    host: Host<'a>,
    port: Option<u16>,
    params: Params<'a>,
    /// The first `branch` and `rport`, noted during the parameter walk the
    /// parse makes anyway: transactions ask for them on every message.
    branch: Option<&'a [u8]>,
    rport: Option<Rport>,
}

fn expect(s: &[u8], i: usize, c: u8) -> Result<usize, ParseError> {
    let i = skip_ws(s, i);
    if s.get(i) == Some(&c) {
        Ok(skip_ws(s, i + 1))
    } else {
        Err(BAD)
    }
}

fn token_at(s: &[u8], i: usize) -> Result<(&[u8], usize), ParseError> {
    let e = take_while(s, i, scan::is_token);
    if e == i {
        return Err(BAD);
    }
    Ok((&s[i..e], e))
}

impl<'a> Via<'a> {
    /// Parses one via-parm (a single element of a comma list).
    pub fn parse(s: &'a [u8]) -> Result<Via<'a>, ParseError> {
        let s = scan::trim_ws(s);
        let (protocol, i) = token_at(s, 0)?;
        let i = expect(s, i, b'/')?;
        let (version, i) = token_at(s, i)?;
        let i = expect(s, i, b'/')?;
        let (transport, i) = token_at(s, i)?;
        let h = skip_ws(s, i);
        if h == i {
            return Err(BAD); // LWS is mandatory before sent-by
        }
        let he = if s.get(h) == Some(&b'[') {
            memchr::memchr(b']', &s[h..]).ok_or(BAD)? + h + 1
        } else {
            take_while(s, h, |b| is(b, HOSTNAME))
        };
        let host = Host::parse(&s[h..he]).map_err(|_| BAD)?;
        let mut i = skip_ws(s, he);
        let mut port = None;
        if s.get(i) == Some(&b':') {
            let p = skip_ws(s, i + 1);
            let pe = take_while(s, p, |b| b.is_ascii_digit());
            port = Some(parse_port(&s[p..pe]).map_err(|_| BAD)?);
            i = pe;
        } else {
            i = he;
        }
        // Typed checks of the parameters the transport layer relies on,
        // made while the list is walked.
        let (mut branch, mut rport) = (None, None);
        let params = Params::parse_checked(&s[i..], Mode::Header, |p| {
            let name = p.name;
            let needs_value = [&b"branch"[..], b"received", b"maddr", b"ttl"]
                .iter()
                .any(|n| scan::eq_ic(name, n));
            if needs_value && p.value.is_none() {
                return Err(());
            }
            if scan::eq_ic(name, b"ttl")
                && p.value.and_then(scan::parse_u64).is_none_or(|t| t > 255)
            {
                return Err(());
            }
            if scan::eq_ic(name, b"rport") {
                let value = match p.value {
                    Some(v) => Rport::Port(parse_port(v).map_err(|_| ())?),
                    None => Rport::Requested,
                };
                rport = rport.or(Some(value));
            }
            if branch.is_none() && scan::eq_ic(name, b"branch") {
                branch = p.value;
            }
            Ok(())
        })
        .map_err(|_| BAD)?;
        let via = Via {
            raw: s,
            protocol,
            version,
            transport,
            host,
            port,
            params,
            branch,
            rport,
        };
        Ok(via)
    }

    /// The via-parm as received (trimmed).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
    /// protocol-name, normally `SIP`.
    pub fn protocol(&self) -> &'a [u8] {
        self.protocol
    }
    /// protocol-version, normally `2.0`.
    pub fn version(&self) -> &'a [u8] {
        self.version
    }
    /// Transport token as received (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or an
    /// unknown one, which must not make the message invalid: RFC 4475
    /// transports).
    pub fn transport(&self) -> &'a [u8] {
        self.transport
    }
    /// Case-insensitive transport check.
    pub fn transport_is(&self, t: &str) -> bool {
        scan::eq_ic(self.transport, t.as_bytes())
    }
    /// sent-by host.
    pub fn host(&self) -> Host<'a> {
        self.host
    }
    /// sent-by port, if given (default 5060/5061 is the caller's business,
    /// RFC 3261 §18.2.2).
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    pub fn params(&self) -> Params<'a> {
        self.params
    }
    /// Branch parameter (may be non-RFC 3261 or even just the magic cookie,
    /// RFC 4475 badbranch; see [`Via::has_rfc3261_branch`]).
    pub fn branch(&self) -> Option<&'a [u8]> {
        self.branch
    }
    /// True if the branch starts with the magic cookie and carries at least
    /// one more character (§17.2.3 matching applies).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > BRANCH_MAGIC.len() && b.starts_with(BRANCH_MAGIC))
    }
    /// `received` as received (an IP address, IPv6 possibly bracketed).
    pub fn received(&self) -> Option<&'a [u8]> {
        self.params.get("received").flatten()
    }
    /// `received` parsed as an IP address (with or without brackets).
    pub fn received_ip(&self) -> Option<IpAddr> {
        let r = self.received()?;
        let r = r
            .strip_prefix(b"[")
            .and_then(|r| r.strip_suffix(b"]"))
            .unwrap_or(r);
        parse_ip(r).ok()
    }
    /// `rport` (RFC 3581 §3/§4).
    pub fn rport(&self) -> Option<Rport> {
        self.rport
    }
    pub fn maddr(&self) -> Option<&'a [u8]> {
        self.params.get("maddr").flatten()
    }
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(scan::parse_u64)
            .and_then(|t| u8::try_from(t).ok())
    }
}

/// A [`Via`] kept by offsets into its value (see `views`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ViaAt {
    protocol: Rel,
    version: Rel,
    transport: Rel,
    host: HostAt,
    port: Option<u16>,
    params: ParamsAt,
    branch: Option<Rel>,
    rport: Option<Rport>,
}

impl<'a> Via<'a> {
    pub(crate) fn keep(&self) -> Option<ViaAt> {
        let base = self.raw;
        Some(ViaAt {
            protocol: Rel::of(base, self.protocol)?,
            version: Rel::of(base, self.version)?,
            transport: Rel::of(base, self.transport)?,
            host: self.host.keep_in(base)?,
            port: self.port,
            params: self.params.keep_in(base)?,
            branch: Rel::of_opt(base, self.branch)?,
            rport: self.rport,
        })
    }

    /// The via-parm kept by [`Via::keep`], in its text `raw`.
    pub(crate) fn load(at: &ViaAt, raw: &'a [u8]) -> Option<Via<'a>> {
        Some(Via {
            raw,
            protocol: at.protocol.get(raw)?,
            version: at.version.get(raw)?,
            transport: at.transport.get(raw)?,
            host: Host::load_in(&at.host, raw)?,
            port: at.port,
            params: Params::load_in(&at.params, raw)?,
            branch: Rel::get_opt(at.branch, raw)?,
            rport: at.rport,
        })
    }
}

impl Message {
    /// Every Via value, top first, across all Via lines.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ParseError>> + '_ {
        self.values(HeaderName::Via).map(Via::parse)
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Result<Via<'_>, ParseError> {
        if let Some(kept) = self.kept_top_via() {
            return Ok(kept);
        }
        self.vias()
            .next()
            .unwrap_or(Err(ParseError::MissingHeader("Via")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_forms() {
        let v = Via::parse(b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport(), b"UDP");
        assert_eq!(v.host().raw(), b"192.0.2.2");
        assert_eq!(v.branch(), Some(&b"390skdjuw"[..]));
        assert!(!v.has_rfc3261_branch());

        let v = Via::parse(b"SIP/2.0/TCP [2001:db8::1]:5062;branch=z9hG4bKx;rport;received=2001:db8::2;ttl=16;maddr=224.0.0.1").unwrap();
        assert_eq!(v.port(), Some(5062));
        assert_eq!(v.rport(), Some(Rport::Requested));
        assert_eq!(v.received_ip(), Some("2001:db8::2".parse().unwrap()));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some(&b"224.0.0.1"[..]));
        assert!(v.has_rfc3261_branch());

        // The first of repeated parameters counts, whatever their case.
        let v = Via::parse(b"SIP/2.0/UDP h;BRANCH=z9hG4bKa;rport=5;branch=b;RPORT").unwrap();
        assert_eq!(v.branch(), Some(&b"z9hG4bKa"[..]));
        assert_eq!(v.rport(), Some(Rport::Port(5)));
        assert_eq!(v.params().get("branch"), Some(Some(&b"z9hG4bKa"[..])));
        let v = Via::parse(b"SIP/2.0/UDP h;rport;rport=7").unwrap();
        assert_eq!((v.branch(), v.rport()), (None, Some(Rport::Requested)));

        let v = Via::parse(
            b"SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        )
        .unwrap();
        assert_eq!(v.host().raw(), b"spindle.example.com");
        assert_eq!(v.branch(), Some(&b"z9hG4bK9ikj8"[..]));
        let v = Via::parse(b"SIP/2.0/UDP host : 5060 ;rport=5070").unwrap();
        assert_eq!(v.port(), Some(5060));
        assert_eq!(v.rport(), Some(Rport::Port(5070)));

        for bad in [
            &b"SIP/2.0/UDP 192.0.2.15;;"[..],
            b"",
            b";",
            b"SIP/2.0/UDP",
            b"SIP/2.0 host",
            b"SIP/2.0/UDP host:99999",
            b"SIP/2.0/UDP host;ttl=256",
            b"SIP/2.0/UDP host;branch",
            b"SIP/2.0/UDP host;rport=x",
            b"SIP/2.0/UDP h,o",
        ] {
            assert!(Via::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
