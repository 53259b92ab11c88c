//! Digest authentication of requests (RFC 3261 §22.4, RFC 7616, RFC 8760):
//! challenges with one header per offered algorithm, `qop=auth` required so
//! that nonce-counts protect against replay, constant-time comparison, and
//! the same answer for an unknown user as for a wrong password.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::limiter::FailureLimiter;
use super::nonce::{NonceState, Nonces};
use crate::config::{DigestAlgorithm, DigestChallenges};
use crate::relay::catalog::Catalog;
use crate::sip::message::{Credentials, Message};
use crate::store::clients::Client;

/// The result of checking a request's credentials.
#[derive(Debug, Clone)]
pub enum AuthOutcome {
    /// Authenticated as this client.
    Authenticated(Arc<Client>),
    /// No usable credentials, wrong ones, or an unknown user: challenge
    /// (`stale` when only the nonce had expired).
    Challenge { stale: bool },
    /// Credentials present but malformed.
    BadRequest(&'static str),
    /// Authenticated but refused, or the source is blocked.
    Forbidden(&'static str),
}

/// Digest settings and state of one realm.
pub struct DigestAuth {
    realm: String,
    algorithms: Vec<DigestAlgorithm>,
    /// How many of `algorithms` are challenged (the first, or all).
    challenged: usize,
    nonces: Nonces,
    limiter: FailureLimiter,
}

/// Failed attempts per source and window before it is refused outright.
pub const MAX_FAILURES: u32 = 20;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

impl DigestAuth {
    pub fn new(
        realm: String,
        algorithms: Vec<DigestAlgorithm>,
        challenges: DigestChallenges,
        key: [u8; 32],
        nonce_ttl: Duration,
    ) -> Self {
        let challenged = match challenges {
            DigestChallenges::First => 1,
            DigestChallenges::All => algorithms.len(),
        };
        Self {
            realm,
            algorithms,
            challenged,
            nonces: Nonces::new(key, nonce_ttl),
            limiter: FailureLimiter::new(MAX_FAILURES, FAILURE_WINDOW),
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Challenge header values: one per algorithm in the configured order
    /// (RFC 8760 §2.4: clients use the first they support), or only the
    /// first's (see [`DigestChallenges`]).
    pub fn challenges(&self, stale: bool) -> Vec<String> {
        let nonce = self.nonces.issue();
        self.algorithms
            .iter()
            .take(self.challenged)
            .map(|alg| {
                let name = match alg {
                    DigestAlgorithm::Md5 => "MD5",
                    DigestAlgorithm::Sha256 => "SHA-256",
                };
                let stale = if stale { ", stale=true" } else { "" };
                [
                    "Digest realm=\"",
                    &self.realm,
                    "\", nonce=\"",
                    &nonce,
                    "\", algorithm=",
                    name,
                    ", qop=\"auth\"",
                    stale,
                ]
                .concat()
            })
            .collect()
    }

    /// Checks the credentials of `msg` (in Proxy-Authorization when `proxy`,
    /// else Authorization) against the clients of `catalog`.
    pub fn verify(
        &self,
        msg: &Message,
        proxy: bool,
        catalog: &Catalog,
        source: IpAddr,
    ) -> AuthOutcome {
        if self.limiter.is_blocked(source) {
            return AuthOutcome::Forbidden("Too many failed authentication attempts");
        }
        let creds = if proxy {
            msg.proxy_authorizations()
                .filter_map(Result::ok)
                .find(|c| self.is_ours(c))
        } else {
            msg.authorizations()
                .filter_map(Result::ok)
                .find(|c| self.is_ours(c))
        };
        let Some(creds) = creds else {
            return AuthOutcome::Challenge { stale: false };
        };
        let (Some(username), Some(nonce), Some(uri), Some(response)) = (
            creds.username(),
            creds.nonce(),
            creds.uri(),
            creds.response(),
        ) else {
            return AuthOutcome::BadRequest("Incomplete credentials");
        };
        let algorithm = match creds.algorithm().as_deref() {
            None => DigestAlgorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case(b"MD5") => DigestAlgorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case(b"SHA-256") => DigestAlgorithm::Sha256,
            Some(_) => return AuthOutcome::Challenge { stale: false },
        };
        if !self.algorithms.contains(&algorithm) {
            return AuthOutcome::Challenge { stale: false };
        }
        // qop=auth is required: without it nonce-counts cannot stop replays.
        let (Some(qop), Some(cnonce), Some(nc)) = (creds.qop(), creds.cnonce(), creds.nc_value())
        else {
            return AuthOutcome::Challenge { stale: false };
        };
        if !qop.eq_ignore_ascii_case(b"auth") {
            return AuthOutcome::Challenge { stale: false };
        }
        // The digest-uri is not compared with the Request-URI (RFC 7616
        // §3.4.6 says SHOULD): common clients, sipp among them, put the next
        // hop there; the response still covers it, and nonce-counts stop
        // replays.
        let opened = match self.nonces.state(&nonce) {
            NonceState::Fresh(opened) => opened,
            NonceState::Stale => return AuthOutcome::Challenge { stale: true },
            NonceState::Invalid => return AuthOutcome::Challenge { stale: false },
        };
        let client = std::str::from_utf8(&username)
            .ok()
            .and_then(|u| catalog.clients_by_username.get(u));
        // An unknown user costs the same work and gets the same answer.
        let ha1 = match (client, algorithm) {
            (Some(c), DigestAlgorithm::Md5) => c.ha1_md5.as_str(),
            (Some(c), DigestAlgorithm::Sha256) => c.ha1_sha256.as_str(),
            (None, DigestAlgorithm::Md5) => "00000000000000000000000000000000",
            (None, DigestAlgorithm::Sha256) => {
                "0000000000000000000000000000000000000000000000000000000000000000"
            }
        };
        let method = msg.method().map(|m| m.as_str()).unwrap_or_default();
        let nc_text = creds.nc().unwrap_or_default();
        let expected = expected_response(
            algorithm,
            ha1,
            &nonce,
            nc_text,
            &cnonce,
            &qop,
            method.as_bytes(),
            &uri,
        );
        let matches = bool::from(
            expected
                .as_bytes()
                .ct_eq(response.to_ascii_lowercase().as_slice()),
        );
        let Some(client) = client.filter(|c| matches && c.realm == self.realm) else {
            self.limiter.record_failure(source);
            return AuthOutcome::Challenge { stale: false };
        };
        if !self.nonces.accept_count(&opened, nc) {
            // A replayed (or reordered) nonce-count: make the client start over.
            return AuthOutcome::Challenge { stale: true };
        }
        if !client.enabled {
            return AuthOutcome::Forbidden("Client disabled");
        }
        AuthOutcome::Authenticated(Arc::clone(client))
    }

    fn is_ours(&self, c: &Credentials<'_>) -> bool {
        c.is_digest()
            && c.realm()
                .is_some_and(|r| r.as_ref() == self.realm.as_bytes())
    }
}

/// `H(HA1:nonce:nc:cnonce:qop:H(method:uri))` as lowercase hex (RFC 7616 §3.4.1).
#[allow(clippy::too_many_arguments)]
pub fn expected_response(
    algorithm: DigestAlgorithm,
    ha1: &str,
    nonce: &[u8],
    nc: &[u8],
    cnonce: &[u8],
    qop: &[u8],
    method: &[u8],
    uri: &[u8],
) -> String {
    match algorithm {
        DigestAlgorithm::Md5 => response_with::<Md5>(ha1, nonce, nc, cnonce, qop, method, uri),
        DigestAlgorithm::Sha256 => {
            response_with::<Sha256>(ha1, nonce, nc, cnonce, qop, method, uri)
        }
    }
}

fn response_with<D: Digest>(
    ha1: &str,
    nonce: &[u8],
    nc: &[u8],
    cnonce: &[u8],
    qop: &[u8],
    method: &[u8],
    uri: &[u8],
) -> String {
    let mut h2 = D::new();
    h2.update(method);
    h2.update(b":");
    h2.update(uri);
    let ha2 = hex::encode(h2.finalize());
    let mut h = D::new();
    for (i, part) in [ha1.as_bytes(), nonce, nc, cnonce, qop, ha2.as_bytes()]
        .iter()
        .enumerate()
    {
        if i > 0 {
            h.update(b":");
        }
        h.update(part);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::auth::ha1;

    #[test]
    fn rfc_7616_sha256_example() {
        let ha1 = ha1(
            DigestAlgorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        let r = expected_response(
            DigestAlgorithm::Sha256,
            &ha1,
            b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            b"00000001",
            b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            b"auth",
            b"GET",
            b"/dir/index.html",
        );
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc_7616_md5_example() {
        let ha1 = ha1(
            DigestAlgorithm::Md5,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        let r = expected_response(
            DigestAlgorithm::Md5,
            &ha1,
            b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            b"00000001",
            b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            b"auth",
            b"GET",
            b"/dir/index.html",
        );
        assert_eq!(r, "8ca523f5e9506fed4657c9700eebdbec");
    }
}
