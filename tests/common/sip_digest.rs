//! Client side of HTTP digest as SIP uses it (RFC 2617, RFC 7616, RFC 8760):
//! challenge parsing and response computation for the test UA.
//!
//! The hashing is written here on purpose instead of calling the server's
//! `relay::auth`: a test oracle must not share the code it checks. Only the
//! `name=value` tokenizer of the message layer is reused (challenges and
//! credentials have the same grammar).

#![allow(dead_code)]

use md5::Md5;
use sha2::{Digest, Sha256};
use switchboard::config::DigestAlgorithm;
use switchboard::sip::message::{Credentials, Message};

/// One `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// True for `Proxy-Authenticate` (answer with `Proxy-Authorization`).
    pub proxy: bool,
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// The `algorithm` parameter as sent (`None` when absent, meaning MD5).
    pub algorithm_raw: Option<String>,
    /// qop options (`auth`, `auth-int`), empty when the parameter is absent.
    pub qop: Vec<String>,
    pub stale: bool,
    /// The header value as received.
    pub raw: String,
}

impl Challenge {
    /// Parses a Digest challenge; `None` for other schemes or garbage.
    pub fn parse(value: &[u8], proxy: bool) -> Option<Challenge> {
        let c = Credentials::parse(value).ok()?;
        if !c.is_digest() {
            return None;
        }
        let text = |name: &str| {
            c.param(name)
                .map(|v| String::from_utf8_lossy(&v).into_owned())
        };
        Some(Challenge {
            proxy,
            realm: text("realm")?,
            nonce: text("nonce")?,
            opaque: text("opaque"),
            algorithm_raw: text("algorithm"),
            qop: text("qop")
                .map(|q| q.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
            stale: text("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
            raw: String::from_utf8_lossy(value).into_owned(),
        })
    }

    /// Every Digest challenge of a 401 or 407, in header order.
    pub fn all_from(resp: &Message) -> Vec<Challenge> {
        let mut out = Vec::new();
        for (name, proxy) in [("WWW-Authenticate", false), ("Proxy-Authenticate", true)] {
            for h in resp.headers_named(name) {
                out.extend(Challenge::parse(h.value, proxy));
            }
        }
        out
    }

    /// The algorithm if it is one we can answer (MD5 when absent).
    pub fn algorithm(&self) -> Option<DigestAlgorithm> {
        match self.algorithm_raw.as_deref() {
            None => Some(DigestAlgorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("MD5") => Some(DigestAlgorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Some(DigestAlgorithm::Sha256),
            Some(_) => None,
        }
    }

    pub fn offers_qop_auth(&self) -> bool {
        self.qop.iter().any(|q| q.eq_ignore_ascii_case("auth"))
    }

    /// Name of the header carrying the answer.
    pub fn answer_header(&self) -> &'static str {
        if self.proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        }
    }
}

/// Picks the challenge for `algorithm`, or the first answerable one.
pub fn choose(challenges: &[Challenge], algorithm: Option<DigestAlgorithm>) -> Option<&Challenge> {
    challenges.iter().find(|c| match algorithm {
        Some(a) => c.algorithm() == Some(a),
        None => c.algorithm().is_some(),
    })
}

/// Lowercase hex digest of `data` with `algorithm`.
pub fn hash_hex(algorithm: DigestAlgorithm, data: &str) -> String {
    match algorithm {
        DigestAlgorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
        DigestAlgorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
    }
}

/// HA1 = H(username ":" realm ":" password).
pub fn ha1(algorithm: DigestAlgorithm, username: &str, realm: &str, password: &str) -> String {
    hash_hex(algorithm, &format!("{username}:{realm}:{password}"))
}

/// The `response` value (RFC 7616 §3.4.1): with `qop = Some((qop, nc,
/// cnonce))` KD(HA1, nonce:nc:cnonce:qop:HA2), else (RFC 2069)
/// KD(HA1, nonce:HA2); HA2 = H(method ":" uri).
pub fn response(
    algorithm: DigestAlgorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<(&str, u32, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = hash_hex(algorithm, &format!("{method}:{uri}"));
    match qop {
        Some((qop, nc, cnonce)) => hash_hex(
            algorithm,
            &format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}"),
        ),
        None => hash_hex(algorithm, &format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// Everything a client chooses when it answers a challenge.
#[derive(Clone, Debug)]
pub struct Answer<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    /// digest-uri: the Request-URI.
    pub uri: &'a str,
    pub nc: u32,
    pub cnonce: &'a str,
}

/// The `Authorization` / `Proxy-Authorization` value answering `ch`
/// (qop=auth when offered, else RFC 2069 style; opaque echoed).
pub fn authorization(ch: &Challenge, a: &Answer<'_>) -> String {
    let alg = ch
        .algorithm()
        .unwrap_or_else(|| panic!("cannot answer digest algorithm {:?}", ch.algorithm_raw));
    let h1 = ha1(alg, a.username, &ch.realm, a.password);
    let qop = ch.offers_qop_auth().then_some(("auth", a.nc, a.cnonce));
    let resp = response(alg, &h1, &ch.nonce, qop, a.method, a.uri);
    let mut v = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{resp}\"",
        a.username, ch.realm, ch.nonce, a.uri
    );
    if let Some(alg) = &ch.algorithm_raw {
        v.push_str(&format!(", algorithm={alg}"));
    }
    if qop.is_some() {
        v.push_str(&format!(
            ", qop=auth, nc={:08x}, cnonce=\"{}\"",
            a.nc, a.cnonce
        ));
    }
    if let Some(o) = &ch.opaque {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    v
}
