//! Nonces that expire and cannot be replayed.
//!
//! A nonce carries its issue time and a MAC over it, so any node that holds
//! the key can check it without state (RFC 7616 §3.3 leaves the format to
//! the server). Replay protection needs state: the highest nonce-count
//! accepted per nonce, kept until the nonce expires. Entries are also queued
//! by when they may be forgotten, and swept from the front of that queue, so
//! each check costs amortized O(1).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

const RAW_LEN: usize = 8 + 8 + 16;
/// Longer nonce text is refused before decoding (ours is 43 characters).
const MAX_NONCE_TEXT: usize = 64;
/// Entries kept for replay checks at most; beyond, the oldest go first.
const MAX_TRACKED: usize = 1 << 20;

/// What a nonce presented by a client is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    /// Ours and still valid; what [`Nonces::accept_count`] needs of it.
    Fresh(Opened),
    /// Ours but expired: challenge again with `stale=true` (RFC 7616 §3.3).
    Stale,
    /// Not one of ours.
    Invalid,
}

/// A nonce whose MAC was checked: its issue time and MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    issued: u64,
    mac: [u8; 16],
}

pub struct Nonces {
    key: [u8; 32],
    ttl: Duration,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    /// nonce MAC → highest nc accepted.
    highest: HashMap<[u8; 16], u32>,
    /// (ms after which the nonce is stale, nonce MAC), in non-decreasing
    /// time order.
    order: VecDeque<(u64, [u8; 16])>,
}

impl Counts {
    fn sweep(&mut self, now: u64) {
        while let Some(&(stale_at, mac)) = self.order.front() {
            if stale_at > now {
                break;
            }
            self.order.pop_front();
            self.highest.remove(&mac);
        }
    }

    fn cap(&mut self, max: usize) {
        while self.highest.len() > max {
            let Some((_, mac)) = self.order.pop_front() else {
                break;
            };
            self.highest.remove(&mac);
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Nonces {
    pub fn new(key: [u8; 32], ttl: Duration) -> Self {
        Self {
            key,
            ttl,
            counts: Mutex::new(Counts::default()),
        }
    }

    fn mac(&self, issued: u64, salt: u64) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(issued.to_be_bytes());
        h.update(salt.to_be_bytes());
        let full = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    pub fn issue(&self) -> String {
        let issued = now_ms();
        let salt: u64 = rand::random();
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&issued.to_be_bytes());
        raw[8..16].copy_from_slice(&salt.to_be_bytes());
        raw[16..].copy_from_slice(&self.mac(issued, salt));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks that `nonce` is ours and unexpired.
    pub fn state(&self, nonce: &[u8]) -> NonceState {
        self.decode(nonce).map_or(NonceState::Invalid, |opened| {
            if now_ms().saturating_sub(opened.issued) > self.ttl.as_millis() as u64 {
                NonceState::Stale
            } else {
                NonceState::Fresh(opened)
            }
        })
    }

    fn decode(&self, nonce: &[u8]) -> Option<Opened> {
        if nonce.len() > MAX_NONCE_TEXT {
            return None;
        }
        // Decoded on the stack; a nonce of any other length is not ours.
        let mut room = [0u8; MAX_NONCE_TEXT / 4 * 3];
        let n = URL_SAFE_NO_PAD.decode_slice(nonce, &mut room).ok()?;
        let raw: [u8; RAW_LEN] = room.get(..n)?.try_into().ok()?;
        let issued = u64::from_be_bytes(raw[..8].try_into().ok()?);
        let salt = u64::from_be_bytes(raw[8..16].try_into().ok()?);
        let mac: [u8; 16] = raw[16..].try_into().ok()?;
        let expected = self.mac(issued, salt);
        // Constant time: the MAC is a secret-derived value.
        use subtle::ConstantTimeEq;
        bool::from(mac.ct_eq(&expected)).then_some(Opened { issued, mac })
    }

    /// Records nonce-count `nc` for a fresh nonce whose response was
    /// correct; false when it is not above every count seen before (a
    /// replay, RFC 7616 §3.4). Takes the nonce as [`Nonces::state`] opened it, so that it is not
    /// decoded and hashed a second time.
    pub fn accept_count(&self, nonce: &Opened, nc: u32) -> bool {
        self.accept_count_at(nonce, nc, now_ms())
    }

    fn accept_count_at(&self, nonce: &Opened, nc: u32, now: u64) -> bool {
        let Opened { issued, mac } = *nonce;
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.sweep(now);
        let highest = match counts.highest.get(&mac) {
            Some(n) => *n,
            None => {
                // Stale once older than the TTL (see `state`); kept in time
                // order, never before an entry queued earlier.
                let stale_at = issued
                    .saturating_add(self.ttl.as_millis() as u64)
                    .saturating_add(1);
                let stale_at = counts
                    .order
                    .back()
                    .map_or(stale_at, |(last, _)| stale_at.max(*last));
                counts.order.push_back((stale_at, mac));
                counts.highest.insert(mac, 0);
                counts.cap(MAX_TRACKED);
                0
            }
        };
        if nc <= highest {
            return false;
        }
        counts.highest.insert(mac, nc);
        true
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.highest.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_nonces_are_fresh_and_forgeries_invalid() {
        let n = Nonces::new([7; 32], Duration::from_secs(30));
        let nonce = n.issue();
        assert!(matches!(n.state(nonce.as_bytes()), NonceState::Fresh(_)));
        let other = Nonces::new([8; 32], Duration::from_secs(30));
        assert_eq!(other.state(nonce.as_bytes()), NonceState::Invalid);
        assert_eq!(n.state(b"not-a-nonce"), NonceState::Invalid);
    }

    #[test]
    fn expired_nonces_are_stale() {
        let n = Nonces::new([7; 32], Duration::from_millis(0));
        let nonce = n.issue();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(n.state(nonce.as_bytes()), NonceState::Stale);
    }

    fn opened(n: &Nonces, nonce: &str) -> Opened {
        match n.state(nonce.as_bytes()) {
            NonceState::Fresh(o) => o,
            other => panic!("not fresh: {other:?}"),
        }
    }

    #[test]
    fn a_nonce_of_another_length_is_invalid() {
        let n = Nonces::new([7; 32], Duration::from_secs(30));
        let nonce = n.issue();
        for bad in [
            &nonce[..nonce.len() - 4],
            &format!("{nonce}AAAA")[..],
            "",
            "A",
        ] {
            assert_eq!(n.state(bad.as_bytes()), NonceState::Invalid, "{bad}");
        }
        let longest = "A".repeat(MAX_NONCE_TEXT);
        assert_eq!(n.state(longest.as_bytes()), NonceState::Invalid);
    }

    #[test]
    fn nonce_counts_must_increase() {
        let n = Nonces::new([7; 32], Duration::from_secs(30));
        let nonce = n.issue();
        let nonce = opened(&n, &nonce);
        assert!(n.accept_count(&nonce, 1));
        assert!(!n.accept_count(&nonce, 1), "replay");
        assert!(n.accept_count(&nonce, 3));
        assert!(!n.accept_count(&nonce, 2), "going back");
    }

    #[test]
    fn counts_of_stale_nonces_are_swept() {
        let n = Nonces::new([7; 32], Duration::from_secs(30));
        let first = n.issue();
        let now = now_ms();
        assert!(n.accept_count_at(&opened(&n, &first), 1, now));
        let second = n.issue();
        assert!(n.accept_count_at(&opened(&n, &second), 1, now + 10_000));
        assert_eq!(n.tracked(), 2);
        // Past the TTL both are stale (`state` refuses them first): the
        // next check forgets them.
        let third = n.issue();
        assert!(n.accept_count_at(&opened(&n, &third), 1, now + 40_000));
        assert_eq!(n.tracked(), 1);
    }
}
