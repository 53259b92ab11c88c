//! SIP transactions (RFC 3261 §17, with the RFC 6026 corrections).
//!
//! * Pure state machines, one file each: [`client_invite`],
//!   [`client_non_invite`], [`server_invite`], [`server_non_invite`]. They
//!   take an event and return [`Action`]s; they never touch I/O or clocks.
//! * [`TransactionLayer`]: matching (§17.1.3, §17.2.3, with the RFC 2543
//!   fallback), timers, retransmissions, 100 Trying, hop-by-hop ACK,
//!   merged-request detection (§8.2.2.2, 482) and overload shedding (503).
//!
//! The table is split into N shards by a hash of the Call-ID: a request,
//! its retransmissions, its ACK and CANCEL, the responses to a client
//! transaction and any merged copy of a request all carry the same Call-ID,
//! so every lookup stays inside one shard. A shard runs inline in the task
//! that feeds it, under its own lock (never held across an await), and
//! owns its timers (per-duration queues of deadlines, one task sleeping
//! until the earliest), so timers are driven by the layer itself on tokio
//! time. Events for the TU leave through one queue, [`TuEvents`].
//!
//! This module knows nothing of dialogs, sessions or storage: the TU gets
//! [`TuEvent`]s and answers through [`TransactionLayer::respond`].

pub mod action;
pub mod client_invite;
pub mod client_non_invite;
mod key;
mod layer;
mod messages;
pub mod server_invite;
pub mod server_non_invite;
mod shard;
#[cfg(test)]
mod sim;
pub mod timers;
mod tu_queue;

pub use action::{Action, Actions, ClientEvent, ServerEvent};
pub use layer::{RequestError, TransactionLayer};
pub use messages::ack_for;
pub use timers::{Timer, TimerConfig};
pub use tu_queue::TuEvents;

use crate::sip::message::Message;
use crate::sip::transport::Flow;

/// A server transaction, as the TU names it in [`TransactionLayer::respond`].
/// Unique for the layer's lifetime (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(pub(crate) u64);

/// A client transaction started with [`TransactionLayer::request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(pub(crate) u64);

/// What the layer tells the transaction user.
#[derive(Debug, Clone)]
pub enum TuEvent {
    /// A new request (never a retransmission, never an ACK). For a CANCEL,
    /// `cancels` names the live INVITE server transaction it matches
    /// (§9.2); `None` means the TU should answer 481.
    Request {
        tx: ServerTxId,
        message: Message,
        /// Where the response goes (see [`crate::sip::transport::Incoming`]).
        flow: Flow,
        /// The socket peer address the request really came from.
        source: std::net::SocketAddr,
        cancels: Option<ServerTxId>,
    },
    /// An ACK for a 2xx: it matched no transaction, or matched an INVITE
    /// server transaction in the RFC 6026 "Accepted" state.
    Ack { message: Message, flow: Flow },
    /// A response for a client transaction (retransmissions of a non-2xx
    /// final are absorbed; 2xx retransmissions are passed, RFC 6026).
    Response {
        tx: ClientTxId,
        message: Message,
        flow: Flow,
    },
    /// Timer B or F fired (§17.1.1.2, §17.1.2.2): act as if a 408 arrived.
    Timeout { tx: ClientTxId },
    /// The transport could not send the request (or the ACK).
    TransportError { tx: ClientTxId },
    /// Timer H fired: no ACK came for our non-2xx final response.
    ServerTimeout { tx: ServerTxId },
    /// The transport could not send a response (§17.2.4).
    ServerTransportError { tx: ServerTxId },
}

/// Layer settings.
#[derive(Debug, Clone)]
pub struct LayerConfig {
    pub timers: TimerConfig,
    /// Number of shards (default: the number of CPUs).
    pub shards: usize,
    /// Live server transactions beyond which new requests get a stateless
    /// 503 (RFC 3261 §21.5.4) before any state is allocated: the bound on
    /// their memory under a flood. It counts the finished ones that still
    /// absorb retransmissions, so it must hold what a sustained rate leaves
    /// behind: a call keeps its challenged INVITE's for T4 after the ACK
    /// (Timer I, RFC 3261 §17.2.1), its answered INVITE's for 64*T1 after
    /// the 2xx (Timer L, RFC 6026 §8.7) and its BYE's for 64*T1 (Timer J,
    /// RFC 3261 §17.2.2): some 69 s of server-transaction lifetime per call
    /// on UDP, so 1,000,000 holds some 14,000 calls/s.
    pub max_server_transactions: usize,
    /// Retry-After seconds in that 503 (§20.33).
    pub retry_after: u32,
    /// [`TuEvent`]s waiting for the TU beyond which new requests from the
    /// network are shed with a stateless 503 (and ACKs for 2xx dropped);
    /// at least 1.
    pub tu_queue: usize,
}

impl Default for LayerConfig {
    fn default() -> Self {
        LayerConfig {
            timers: TimerConfig::default(),
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_server_transactions: 1_000_000,
            retry_after: 5,
            tu_queue: 8192,
        }
    }
}

/// A fresh RFC 3261 branch (§8.1.1.7): the magic cookie plus 128 random
/// bits, unique in space and time.
pub fn new_branch() -> String {
    let mut branch = String::with_capacity(39);
    push_branch(&mut branch);
    branch
}

/// [`new_branch`] written at the end of `out`.
pub fn push_branch(out: &mut String) {
    out.push_str("z9hG4bK");
    push_hex(out, rand::random::<u128>(), 32);
}

/// A random tag (RFC 3261 §19.3: 64 random bits), for the layer's own
/// answers and the relay's legs.
pub fn new_tag() -> String {
    let mut tag = String::with_capacity(16);
    push_hex(&mut tag, u128::from(rand::random::<u64>()), 16);
    tag
}

/// The low `digits` hex digits of `value`, lowercase, zero-padded. By hand:
/// `format!("{:032x}")` cost more than drawing the random number, and ids
/// are made several times per call.
pub fn push_hex(out: &mut String, value: u128, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..digits.min(32)).rev() {
        out.push(char::from(HEX[((value >> (shift * 4)) & 0xf) as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_read_as_format_writes_them() {
        for v in [
            0u128,
            1,
            0xabc,
            u128::from(u64::MAX),
            u128::MAX,
            0x0123_4567_89ab_cdef,
        ] {
            let mut out = String::new();
            push_hex(&mut out, v, 32);
            assert_eq!(out, format!("{v:032x}"));
            let mut low = String::new();
            push_hex(&mut low, v, 16);
            assert_eq!(low, format!("{:016x}", v as u64));
        }
        let b = new_branch();
        assert!(b.starts_with("z9hG4bK") && b.len() == 39, "{b}");
        assert_ne!(b, new_branch(), "random");
    }

    /// The finished server transactions a steady rate leaves behind must
    /// fit under the overload cap, or the layer sheds a load it can carry:
    /// at 200,000 it answered every request with 503 after 23 s of 4,000
    /// calls/s. Per call on UDP: the challenged INVITE's Timer I (RFC 3261
    /// §17.2.1), the answered INVITE's Timer L (64*T1, RFC 6026 §8.7: no
    /// helper of its own, hence `t1x64`) and the BYE's Timer J (§17.2.2).
    #[test]
    fn the_default_cap_holds_what_ten_thousand_calls_a_second_leave_behind() {
        let config = LayerConfig::default();
        let t = config.timers;
        let held_per_call = t.timer_i(false) + t.t1x64() + t.timer_j(false);
        let held = 10_000 * held_per_call.as_secs() as usize;
        assert!(
            config.max_server_transactions >= held,
            "{} < {held}",
            config.max_server_transactions
        );
    }
}
