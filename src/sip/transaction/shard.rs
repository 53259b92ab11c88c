//! One shard of the transaction table: its transactions, their keys and
//! their timers. It runs inline in whichever task feeds it, behind the lock
//! of its [`cell::ShardCell`], which is never held across an await; the
//! cell's own task only fires its timers.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

// aHash, randomly keyed per table: keys come from the network (branches,
// Call-IDs), so the hash must resist flooding, and SipHash (std's) was
// 3 % of the CPU at 2,000 calls/s.
use ahash::HashMap;

use bytes::Bytes;
use tokio::time::Instant;

pub(crate) mod cell;
mod client;
mod server;
mod timer_queues;
mod timers;

use super::action::{Action, Actions, ClientEvent, ServerEvent};
use super::client_invite::ClientInvite;
use super::client_non_invite::ClientNonInvite;
use super::key::{ClientKey, MergeKey, ServerKey};
use super::server_invite::ServerInvite;
use super::server_non_invite::ServerNonInvite;
use super::timers::Timer;
use super::tu_queue::TuSender;
use super::{LayerConfig, ServerTxId, TuEvent};
use crate::sip::transport::{Flow, Incoming, Outbound};

/// State shared by the handle and every shard.
pub(crate) struct Shared {
    pub outbound: Arc<dyn Outbound>,
    pub config: LayerConfig,
    pub live_server: AtomicUsize,
    pub tu: TuSender,
}

enum ServerMachine {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

impl ServerMachine {
    fn handle(&mut self, ev: ServerEvent) -> Actions {
        match self {
            ServerMachine::Invite(m) => m.handle(ev),
            ServerMachine::NonInvite(m) => m.handle(ev),
        }
    }
}

enum ClientMachine {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

impl ClientMachine {
    fn handle(&mut self, ev: ClientEvent<'_>) -> Actions {
        match self {
            ClientMachine::Invite(m) => m.handle(ev),
            ClientMachine::NonInvite(m) => m.handle(ev),
        }
    }
}

/// Timer generations: restarting or stopping a timer bumps its generation,
/// so queued entries of the old instance are recognised as stale.
type Gens = [u32; Timer::COUNT];

struct ServerTx {
    machine: ServerMachine,
    flow: Flow,
    key: ServerKey,
    merge: Option<MergeKey>,
    gens: Gens,
}

struct ClientTx {
    machine: ClientMachine,
    flow: Flow,
    key: ClientKey,
    gens: Gens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Server,
    Client,
}

/// A scheduled timer; due by deadline, then by scheduling order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    at: Instant,
    seq: u64,
    side: Side,
    id: u64,
    timer: Timer,
    gen: u32,
}

/// Tables at most this large are never shrunk.
const SHRINK_MIN: usize = 1024;

/// Gives back most of a table's slots once it is three quarters empty;
/// amortised O(1) per removal, as the next shrink needs the table to
/// halve again.
fn shrink_idle<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > SHRINK_MIN && map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

/// Below this many pending entries, stale ones are left to expire.
const COMPACT_MIN: usize = 4096;

pub(crate) struct Shard {
    index: u64,
    count: u64,
    shared: Arc<Shared>,
    /// TU events produced while handling one input, sent after it.
    pending: Vec<TuEvent>,
    /// The deadline the timer task sleeps until (`None`: no timer pending
    /// when it last looked).
    armed: Option<Instant>,
    next_server: u64,
    /// Boxed, and shrunk when mostly empty ([`shrink_idle`]): a burst
    /// leaves tens of thousands of transactions behind for 32 s (Timer
    /// H/J/L, RFC 6026), and a table of inline machines would keep its
    /// peak size, hundreds of bytes a slot, for the rest of the process.
    server: HashMap<u64, Box<ServerTx>>,
    server_keys: HashMap<ServerKey, u64>,
    merges: HashMap<MergeKey, u64>,
    client: HashMap<u64, Box<ClientTx>>,
    client_keys: HashMap<ClientKey, u64>,
    timers: timer_queues::TimerQueues,
    timer_seq: u64,
    compact_at: usize,
}

impl Shard {
    pub fn new(index: usize, count: usize, shared: Arc<Shared>) -> Self {
        Shard {
            index: index as u64,
            count: count as u64,
            shared,
            pending: Vec::new(),
            armed: None,
            next_server: 0,
            server: HashMap::default(),
            server_keys: HashMap::default(),
            merges: HashMap::default(),
            client: HashMap::default(),
            client_keys: HashMap::default(),
            timers: Default::default(),
            timer_seq: 0,
            compact_at: COMPACT_MIN,
        }
    }

    /// Sends the TU events of the last input, in the order they arose.
    fn flush(&mut self) {
        for ev in self.pending.drain(..) {
            self.shared.tu.send(ev);
        }
    }

    /// Whether a timer now falls due before the deadline the timer task
    /// sleeps until, which must then be woken to re-arm.
    fn deadline_moved_up(&mut self) -> bool {
        let next = self.timers.next_at();
        let moved_up = next.is_some_and(|n| self.armed.is_none_or(|a| n < a));
        if moved_up {
            self.armed = next;
        }
        moved_up
    }

    /// The TU's response for server transaction `tx`; dropped when the
    /// transaction has ended.
    pub fn respond(&mut self, tx: ServerTxId, status: u16, response: Bytes) {
        let Some(t) = self.server.get_mut(&tx.0) else {
            tracing::debug!(?tx, status, "response for a finished server transaction");
            return;
        };
        let flow = t.flow;
        let actions = t.machine.handle(ServerEvent::Respond { status, response });
        self.apply_server(tx.0, flow, actions, None);
    }

    /// A message from the transports.
    pub fn on_incoming(&mut self, inc: Incoming) {
        let Incoming {
            message,
            flow,
            source,
        } = inc;
        if message.is_request() {
            self.on_request(message, flow, source);
        } else {
            self.on_response(message, flow);
        }
    }
}

/// A shard of its own, sending nowhere, for unit tests.
#[cfg(test)]
pub(super) fn lone_shard() -> Shard {
    struct Nowhere;
    impl Outbound for Nowhere {
        fn send(&self, _: &Flow, _: Bytes) -> Result<(), crate::sip::transport::SendError> {
            Ok(())
        }
    }
    let (tu, _) = super::tu_queue::tu_queue();
    let shared = Arc::new(Shared {
        outbound: Arc::new(Nowhere),
        config: LayerConfig::default(),
        live_server: AtomicUsize::new(0),
        tu,
    });
    Shard::new(0, 1, shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_left_mostly_empty_after_a_burst_gives_its_slots_back() {
        let mut map: HashMap<u64, Box<u64>> = HashMap::default();
        for i in 0..20_000 {
            map.insert(i, Box::new(i));
        }
        let peak = map.capacity();
        for i in 0..19_900 {
            map.remove(&i);
            shrink_idle(&mut map);
        }
        assert_eq!(map.len(), 100);
        assert!(
            map.capacity() <= SHRINK_MIN,
            "capacity {} of {peak} kept for 100 entries",
            map.capacity()
        );
        assert!((19_900..20_000).all(|i| map.get(&i).is_some_and(|v| **v == i)));
    }

    #[test]
    fn a_small_table_is_left_alone() {
        let mut map: HashMap<u64, u64> = (0..SHRINK_MIN as u64 / 2).map(|i| (i, i)).collect();
        map.retain(|k, _| *k < 3);
        // Read after the removals: their tombstones lower `capacity()` by
        // an amount that depends on the (randomly keyed) hashes.
        let cap = map.capacity();
        assert!(map.len() * 4 < cap, "mostly empty: only the size spares it");
        shrink_idle(&mut map);
        assert_eq!(map.capacity(), cap);
    }
}

#[cfg(test)]
mod footprint {
    /// A call leaves up to three server transactions behind for 64*T1
    /// (Timers L and J): at 4,000 calls/s that is some 260,000 of them, so
    /// each byte here is a quarter megabyte. 264 bytes when written
    /// (504 while keys were inline slices of the datagram).
    #[test]
    fn a_server_transaction_stays_small() {
        assert!(std::mem::size_of::<super::ServerTx>() <= 272);
    }
}
