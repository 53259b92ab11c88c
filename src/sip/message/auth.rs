//! Authorization / Proxy-Authorization credentials (RFC 3261 §20.7, §20.28,
//! §25.1; digest per RFC 2617 §3.2.2 / RFC 8760).
//!
//! `credentials = ("Digest" LWS digest-response) / other-response`, both a
//! scheme token followed by comma-separated `name EQUAL (token /
//! quoted-string)` parameters. Unknown schemes parse the same way (RFC 4475
//! regaut01) and the engine decides what to do with them.

use super::header::HeaderName;
use super::msg::Message;
use super::scan::{self, is_token, quoted_end, skip_ws, take_while, trim_ws, CommaSplit};
use super::ParseError;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    scheme: &'a [u8],
    params: &'a [u8],
    /// Raw values of the digest parameters, found while validating: a
    /// digest check reads ten of them, and looking each up walked the list
    /// again (a fifth of the authentication's cost).
    digest: [Option<&'a [u8]>; DIGEST_PARAMS.len()],
}

/// The parameters [`Credentials`] keeps at hand, in the order of its table.
const DIGEST_PARAMS: [&str; 10] = [
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "cnonce",
    "opaque",
    "qop",
    "nc",
];

/// Splits `name = value` (value token or quoted-string, raw).
fn auth_param(p: &[u8]) -> Result<(&[u8], &[u8]), ()> {
    let ne = take_while(p, 0, is_token);
    let eq = skip_ws(p, ne);
    if ne == 0 || p.get(eq) != Some(&b'=') {
        return Err(());
    }
    let v = skip_ws(p, eq + 1);
    let ve = if p.get(v) == Some(&b'"') {
        quoted_end(p, v).ok_or(())?
    } else {
        take_while(p, v, is_token)
    };
    if ve == v || ve != p.len() {
        return Err(());
    }
    Ok((&p[..ne], &p[v..ve]))
}

impl<'a> Credentials<'a> {
    pub fn parse(v: &'a [u8]) -> Result<Credentials<'a>, ParseError> {
        const BAD: ParseError = ParseError::BadHeader("Authorization");
        let v = trim_ws(v);
        let se = take_while(v, 0, is_token);
        let ps = skip_ws(v, se);
        if se == 0 || ps == se || ps == v.len() {
            return Err(BAD);
        }
        let params = &v[ps..];
        let mut digest = [None; DIGEST_PARAMS.len()];
        for p in CommaSplit::new(params) {
            let (name, value) = auth_param(p).map_err(|_| BAD)?;
            // The first occurrence counts, as a lookup by name would find.
            if let Some(slot) = DIGEST_PARAMS
                .iter()
                .position(|known| scan::eq_ic(name, known.as_bytes()))
                .and_then(|k| digest.get_mut(k))
                .filter(|slot| slot.is_none())
            {
                *slot = Some(value);
            }
        }
        Ok(Credentials {
            scheme: &v[..se],
            params,
            digest,
        })
    }

    /// Auth scheme as received (`Digest`, or anything else).
    pub fn scheme(&self) -> &'a [u8] {
        self.scheme
    }

    pub fn is_digest(&self) -> bool {
        scan::eq_ic(self.scheme, b"Digest")
    }

    /// All parameters, raw values (quotes kept).
    pub fn params(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        CommaSplit::new(self.params).filter_map(|p| auth_param(p).ok())
    }

    /// Raw value (quotes kept) of a parameter, name case-insensitive.
    pub fn param_raw(&self, name: &str) -> Option<&'a [u8]> {
        match DIGEST_PARAMS
            .iter()
            .position(|known| known.eq_ignore_ascii_case(name))
        {
            Some(k) => self.digest.get(k).copied().flatten(),
            None => self
                .params()
                .find(|(n, _)| scan::eq_ic(n, name.as_bytes()))
                .map(|(_, v)| v),
        }
    }

    /// Value with quotes and quoted-pair escapes removed.
    pub fn param(&self, name: &str) -> Option<Cow<'a, [u8]>> {
        self.param_raw(name).map(scan::unquote)
    }

    pub fn username(&self) -> Option<Cow<'a, [u8]>> {
        self.param("username")
    }
    pub fn realm(&self) -> Option<Cow<'a, [u8]>> {
        self.param("realm")
    }
    pub fn nonce(&self) -> Option<Cow<'a, [u8]>> {
        self.param("nonce")
    }
    /// digest-uri (quoted in the grammar; compare it with the Request-URI).
    pub fn uri(&self) -> Option<Cow<'a, [u8]>> {
        self.param("uri")
    }
    pub fn response(&self) -> Option<Cow<'a, [u8]>> {
        self.param("response")
    }
    pub fn algorithm(&self) -> Option<Cow<'a, [u8]>> {
        self.param("algorithm")
    }
    pub fn cnonce(&self) -> Option<Cow<'a, [u8]>> {
        self.param("cnonce")
    }
    pub fn opaque(&self) -> Option<Cow<'a, [u8]>> {
        self.param("opaque")
    }
    pub fn qop(&self) -> Option<Cow<'a, [u8]>> {
        self.param("qop")
    }
    /// nonce-count exactly as sent (8 LHEX, used verbatim in the digest).
    pub fn nc(&self) -> Option<&'a [u8]> {
        self.param_raw("nc")
    }
    /// nonce-count as a number (`None` unless exactly 8 hex digits).
    pub fn nc_value(&self) -> Option<u32> {
        let nc = self.nc()?;
        if nc.len() != 8 {
            return None;
        }
        u32::from_str_radix(std::str::from_utf8(nc).ok()?, 16).ok()
    }
}

impl Message {
    /// Authorization credentials, one per value.
    pub fn authorizations(&self) -> impl Iterator<Item = Result<Credentials<'_>, ParseError>> + '_ {
        self.get_all(HeaderName::Authorization).map(|h| {
            Credentials::parse(h.value).map_err(|_| ParseError::BadHeader("Authorization"))
        })
    }

    /// Proxy-Authorization credentials.
    pub fn proxy_authorizations(
        &self,
    ) -> impl Iterator<Item = Result<Credentials<'_>, ParseError>> + '_ {
        self.get_all(HeaderName::ProxyAuthorization).map(|h| {
            Credentials::parse(h.value).map_err(|_| ParseError::BadHeader("Proxy-Authorization"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest() {
        let c = Credentials::parse(
            b"Digest username=\"bob\", realm=\"biloxi.com\",\r\n nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:bob@biloxi.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", algorithm=MD5",
        )
        .unwrap();
        assert!(c.is_digest());
        assert_eq!(&*c.username().unwrap(), b"bob");
        assert_eq!(&*c.uri().unwrap(), b"sip:bob@biloxi.com");
        assert_eq!(&*c.qop().unwrap(), b"auth");
        assert_eq!(c.nc(), Some(&b"00000001"[..]));
        assert_eq!(c.nc_value(), Some(1));
        assert_eq!(&*c.algorithm().unwrap(), b"MD5");
        let c = Credentials::parse(b"NoOneKnowsThisScheme opaque-data=here").unwrap();
        assert_eq!(c.scheme(), b"NoOneKnowsThisScheme");
        assert_eq!(c.param_raw("opaque-data"), Some(&b"here"[..]));
        assert!(Credentials::parse(b"Digest").is_err());
        assert!(Credentials::parse(b"Digest username=\"x").is_err());
        assert!(Credentials::parse(b"Digest a=b c").is_err());
    }

    #[test]
    fn kept_parameters_read_as_a_lookup_by_name_would() {
        let c = Credentials::parse(
            b"Digest NONCE=\"n1\", Username=bob, nonce=\"n2\", x-extra=1, URI=\"sip:a@b\"",
        )
        .unwrap();
        assert_eq!(c.param_raw("nonce"), Some(&b"\"n1\""[..]), "the first one");
        assert_eq!(&*c.nonce().unwrap(), b"n1");
        assert_eq!(
            &*c.username().unwrap(),
            b"bob",
            "names are case-insensitive"
        );
        assert_eq!(c.param_raw("Uri"), Some(&b"\"sip:a@b\""[..]));
        assert_eq!(
            c.param_raw("x-extra"),
            Some(&b"1"[..]),
            "others are looked up"
        );
        assert_eq!(c.response(), None);
        assert_eq!(c.nc_value(), None);
    }
}
