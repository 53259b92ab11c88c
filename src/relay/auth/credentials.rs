//! Digest credentials (RFC 7616, RFC 8760).
//!
//! Client passwords are never stored: at provisioning time we keep HA1 =
//! H(username ":" realm ":" password) for each algorithm we may offer, which
//! is all a digest server needs to verify a response.

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::config::DigestAlgorithm;

/// HA1 for `algorithm` as lowercase hex (RFC 7616 §3.4.2).
pub fn ha1(algorithm: DigestAlgorithm, username: &str, realm: &str, password: &str) -> String {
    match algorithm {
        DigestAlgorithm::Md5 => hex_digest::<Md5>(&[username, ":", realm, ":", password]),
        DigestAlgorithm::Sha256 => hex_digest::<Sha256>(&[username, ":", realm, ":", password]),
    }
}

fn hex_digest<D: Digest>(parts: &[&str]) -> String {
    let mut h = D::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ha1_matches_rfc_2617_example() {
        // RFC 2617 §3.5: Mufasa / testrealm@host.com / Circle Of Life.
        assert_eq!(
            ha1(
                DigestAlgorithm::Md5,
                "Mufasa",
                "testrealm@host.com",
                "Circle Of Life"
            ),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }

    #[test]
    fn ha1_matches_rfc_7616_sha256_example() {
        // RFC 7616 §3.9.1 uses realm "http-auth@example.org", password
        // "Circle of Life"; its published response 753927fa… is computed
        // from exactly this HA1.
        let h = ha1(
            DigestAlgorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert_eq!(
            h,
            "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
        );
    }
}
