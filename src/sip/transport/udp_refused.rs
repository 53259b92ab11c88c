//! Destinations the kernel refused a datagram to, remembered for a while
//! so that later sends to them fail at once (the way Kamailio's
//! destination blocklist does). A refusal reaches the UDP sending task
//! after `send` returned; without this, every transaction to an
//! unreachable app server would wait for its timer before the relay
//! tried the next one.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ahash::HashMap;
use tokio::time::Instant;

use super::lock;

/// How long a destination the kernel refused stays refused at once.
pub(super) const REFUSAL_MEMORY: Duration = Duration::from_secs(30);

/// Destinations remembered at most; more refusals are not remembered.
pub(super) const MAX_REFUSED: usize = 1024;

/// The refused destinations of one socket.
#[derive(Default)]
pub(super) struct RefusedDestinations {
    refused: Mutex<Refused>,
    /// Whether `refused` holds any: the common case takes no lock.
    any: AtomicBool,
}

#[derive(Default)]
struct Refused {
    at: HashMap<SocketAddr, Instant>,
    /// The earliest of `at`, so that forgetting costs a pass over the map
    /// only when one is due.
    oldest: Option<Instant>,
}

impl Refused {
    fn forget_old(&mut self, now: Instant) {
        match self.oldest {
            Some(oldest) if now.duration_since(oldest) >= REFUSAL_MEMORY => {
                self.at
                    .retain(|_, at| now.duration_since(*at) < REFUSAL_MEMORY);
                self.oldest = self.at.values().min().copied();
            }
            _ => {}
        }
    }
}

impl RefusedDestinations {
    /// Whether the kernel refused `remote` less than [`REFUSAL_MEMORY`]
    /// ago.
    pub(super) fn contains(&self, remote: SocketAddr) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return false;
        }
        let mut refused = lock(&self.refused);
        refused.forget_old(Instant::now());
        self.any.store(!refused.at.is_empty(), Ordering::Relaxed);
        refused.at.contains_key(&remote)
    }

    /// Remembers `remote` when the kernel's answer `error` is about the
    /// destination, not about the moment.
    pub(super) fn remember(&self, remote: SocketAddr, error: &io::Error) {
        if !is_about_destination(error) {
            return;
        }
        let mut refused = lock(&self.refused);
        let now = Instant::now();
        refused.forget_old(now);
        if refused.at.len() < MAX_REFUSED {
            refused.at.insert(remote, now);
            refused.oldest = Some(refused.oldest.map_or(now, |o| o.min(now)));
        }
        self.any.store(!refused.at.is_empty(), Ordering::Relaxed);
    }

    /// Destinations remembered now, expired ones included until the next
    /// lookup forgets them.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.refused).at.len()
    }
}

/// Whether a send error is about the destination and will come again
/// (no route, an address we cannot send to, a broadcast address), not
/// about the moment (a full buffer, no memory, a firewall rule that drops
/// under load: netfilter answers EPERM for those, so EPERM is not here).
fn is_about_destination(error: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    {
        matches!(
            error.raw_os_error(),
            Some(
                libc::EACCES
                    | libc::ENETUNREACH
                    | libc::EHOSTUNREACH
                    | libc::EADDRNOTAVAIL
                    | libc::EINVAL
                    | libc::EAFNOSUPPORT
            )
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        use io::ErrorKind::*;
        matches!(
            error.kind(),
            NetworkUnreachable | HostUnreachable | AddrNotAvailable | InvalidInput
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn only_errors_about_the_destination_are_remembered() {
        for code in [
            libc::EACCES,
            libc::ENETUNREACH,
            libc::EHOSTUNREACH,
            libc::EINVAL,
        ] {
            assert!(is_about_destination(&io::Error::from_raw_os_error(code)));
        }
        for code in [
            libc::EPERM,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EAGAIN,
            libc::EINTR,
        ] {
            assert!(!is_about_destination(&io::Error::from_raw_os_error(code)));
        }
    }
}
