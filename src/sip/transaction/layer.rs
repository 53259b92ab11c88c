//! The handle the engine and the TU hold.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

// aHash, randomly keyed per layer: as resistant as std's SipHash to a peer
// aiming its Call-IDs at one shard, at a fraction of the cost per message.
use ahash::RandomState;
use bytes::Bytes;

use super::key::ClientKey;
use super::shard::cell::ShardCell;
use super::shard::{Shard, Shared};
use super::tu_queue::{tu_queue, TuEvents};
use super::{ClientTxId, LayerConfig, ServerTxId};
use crate::sip::message::{Message, Method};
use crate::sip::transport::{Flow, Incoming, Outbound, SendError};

/// Why [`TransactionLayer::request`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("not a request")]
    NotARequest,
    /// ACK is never sent in a transaction of its own (§17.1.1.3, §13.2.2.4):
    /// use [`TransactionLayer::send_stateless`].
    #[error("ACK is sent statelessly")]
    Ack,
    /// The top Via needs a branch (see [`super::new_branch`]), and Call-ID
    /// and CSeq must be valid.
    #[error("request lacks a top Via branch, Call-ID or CSeq")]
    Unmatchable,
}

struct Inner {
    shards: Box<[Arc<ShardCell>]>,
    shared: Arc<Shared>,
    hasher: RandomState,
    next_client: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for shard in &self.shards {
            shard.close();
        }
    }
}

/// The transaction layer. Cheap to clone; the shards' timer tasks stop, and
/// the TU's queue closes, when the last clone is dropped. (In the server the
/// transports and the engine hold clones of each other, so it is stopping
/// the SIP runtime that ends them.)
#[derive(Clone)]
pub struct TransactionLayer {
    inner: Arc<Inner>,
}

impl TransactionLayer {
    /// Spawns the shards' timer tasks (on the current tokio runtime) and
    /// returns the handle and the TU's event stream.
    pub fn start(
        outbound: Arc<dyn Outbound>,
        mut config: LayerConfig,
    ) -> (TransactionLayer, TuEvents) {
        let n = config.shards.max(1);
        // 0 would shed every request for good.
        config.tu_queue = config.tu_queue.max(1);
        let (tu, tu_events) = tu_queue();
        let shared = Arc::new(Shared {
            outbound,
            config,
            live_server: AtomicUsize::new(0),
            tu,
        });
        let shards = (0..n)
            .map(|i| ShardCell::start(Shard::new(i, n, shared.clone())))
            .collect();
        let layer = TransactionLayer {
            inner: Arc::new(Inner {
                shards,
                shared,
                hasher: RandomState::new(),
                next_client: AtomicU64::new(0),
            }),
        };
        (layer, tu_events)
    }

    /// The shard of a Call-ID (keyed hash: a peer cannot aim every call at
    /// one shard).
    fn shard_of(&self, call_id: &[u8]) -> usize {
        (self.inner.hasher.hash_one(call_id) % self.inner.shards.len() as u64) as usize
    }

    /// Every valid message from the transports (parsed and `validate()`d),
    /// handled before this returns. While the TU has
    /// [`LayerConfig::tu_queue`] events still to take, a request that would
    /// start a transaction is answered 503 statelessly and an ACK for a 2xx
    /// is dropped; retransmissions, ACKs and CANCELs of live transactions
    /// and the responses to the TU's own requests go on as usual.
    pub fn receive(&self, incoming: Incoming) {
        let Ok(call_id) = incoming.message.call_id() else {
            return;
        };
        self.inner.shards[self.shard_of(call_id)].with(|s| s.on_incoming(incoming));
    }

    /// The TU answers a server transaction with a rendered response, sent
    /// before this returns. A response for a transaction that has ended is
    /// dropped.
    pub fn respond(&self, tx: &ServerTxId, status: u16, response: Bytes) {
        let shard = &self.inner.shards[(tx.0 % self.inner.shards.len() as u64) as usize];
        shard.with(|s| s.respond(*tx, status, response));
    }

    /// Sends `request` in a new client transaction on `flow`. Its top Via
    /// must carry a unique branch ([`super::new_branch`]; a CANCEL reuses
    /// its INVITE's, §9.1). Responses, timeouts and transport errors come
    /// back as [`TuEvent`]s with the returned id.
    pub fn request(&self, request: Message, flow: Flow) -> Result<ClientTxId, RequestError> {
        match request.method() {
            None => return Err(RequestError::NotARequest),
            Some(Method::Ack) => return Err(RequestError::Ack),
            Some(_) => {}
        }
        let key = ClientKey::of(&request).ok_or(RequestError::Unmatchable)?;
        let call_id = request.call_id().map_err(|_| RequestError::Unmatchable)?;
        let n = self.inner.shards.len() as u64;
        let index = self.shard_of(call_id);
        let seq = self.inner.next_client.fetch_add(1, Ordering::Relaxed);
        let tx = ClientTxId(seq * n + index as u64);
        self.inner.shards[index].with(|s| s.start_client(tx, request, flow, key));
        Ok(tx)
    }

    /// Sends without a transaction: the ACK for a 2xx (§13.2.2.4), 2xx
    /// retransmissions after the transaction ended, stateless answers.
    pub fn send_stateless(&self, flow: &Flow, bytes: Bytes) -> Result<(), SendError> {
        self.inner.shared.outbound.send(flow, bytes)
    }

    /// Live server transactions (the overload measure).
    pub fn server_transactions(&self) -> usize {
        self.inner.shared.live_server.load(Ordering::Relaxed)
    }
}
