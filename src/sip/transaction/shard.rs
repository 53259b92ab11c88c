//! One shard of the transaction table: a task owning its transactions, their
//! keys and their timers. Nothing here is shared but the outbound handle and
//! the live-transaction counter, so no lock exists, let alone one held
//! across an await.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

// aHash, randomly keyed per table: keys come from the network (branches,
// Call-IDs), so the hash must resist flooding, and SipHash (std's) was
// 3 % of the CPU at 2,000 calls/s.
use ahash::HashMap;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

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
use super::{ClientTxId, LayerConfig, ServerTxId, TuEvent};
use crate::sip::message::Message;
use crate::sip::transport::{Flow, Incoming, Outbound};

/// State shared by the handle and every shard.
pub(crate) struct Shared {
    pub outbound: Arc<dyn Outbound>,
    pub config: LayerConfig,
    pub live_server: AtomicUsize,
}

/// Commands from the TU (through the handle).
pub(crate) enum Command {
    Respond {
        tx: ServerTxId,
        status: u16,
        response: Bytes,
    },
    Request {
        tx: ClientTxId,
        request: Message,
        flow: Flow,
        /// Computed by the handle, which had to check it exists anyway
        /// (boxed: the other commands are a fraction of its size).
        key: Box<ClientKey>,
    },
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
/// so heap entries of the old instance are recognised as stale when popped.
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
    tu: mpsc::Sender<TuEvent>,
    /// TU events produced while handling one input, sent after it.
    pending: Vec<TuEvent>,
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
    pub fn new(index: usize, count: usize, shared: Arc<Shared>, tu: mpsc::Sender<TuEvent>) -> Self {
        Shard {
            index: index as u64,
            count: count as u64,
            shared,
            tu,
            pending: Vec::new(),
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

    /// The shard's task: inputs from the transports and the TU, and its own
    /// timers. Ends when every handle is dropped.
    pub async fn run(
        mut self,
        mut net: mpsc::Receiver<Incoming>,
        mut cmd: mpsc::UnboundedReceiver<Command>,
    ) {
        let sleep = tokio::time::sleep(Duration::from_secs(86_400));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let (mut net_open, mut cmd_open) = (true, true);
        while net_open || cmd_open {
            self.fire_due(Instant::now());
            self.flush().await;
            let next = self.timers.next_at();
            if next != armed {
                if let Some(at) = next {
                    sleep.as_mut().reset(at);
                }
                armed = next;
            }
            tokio::select! {
                biased;
                c = cmd.recv(), if cmd_open => match c {
                    Some(c) => {
                        // Timers due at this instant go first: a message
                        // arriving as Timer M/J/... expires meets a finished
                        // transaction, whichever task tokio woke first.
                        self.fire_due(Instant::now());
                        self.on_command(c)
                    }
                    None => cmd_open = false,
                },
                m = net.recv(), if net_open => match m {
                    Some(m) => {
                        self.fire_due(Instant::now());
                        self.on_incoming(m)
                    }
                    None => net_open = false,
                },
                () = &mut sleep, if armed.is_some() => armed = None,
            }
        }
    }

    /// Sends the TU events of the last input. Awaiting here (TU slow) pushes
    /// back on the bounded input queue, which then sheds load with 503s;
    /// the TU never waits for a shard (commands are unbounded), so the two
    /// cannot deadlock.
    async fn flush(&mut self) {
        let tu = &self.tu;
        for ev in self.pending.drain(..) {
            if tu.send(ev).await.is_err() {
                break; // TU gone: nothing to tell.
            }
        }
        self.pending.clear();
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Respond {
                tx,
                status,
                response,
            } => {
                let Some(t) = self.server.get_mut(&tx.0) else {
                    tracing::debug!(?tx, status, "response for a finished server transaction");
                    return;
                };
                let flow = t.flow;
                let actions = t.machine.handle(ServerEvent::Respond { status, response });
                self.apply_server(tx.0, flow, actions, None);
            }
            Command::Request {
                tx,
                request,
                flow,
                key,
            } => self.start_client(tx, request, flow, *key),
        }
    }

    fn on_incoming(&mut self, inc: Incoming) {
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
