//! Server transactions in a shard (RFC 3261 §17.2, §8.2.2.2, §9.2).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use super::{shrink_idle, Action, Actions, ServerEvent, ServerMachine, ServerTx, Shard, Side};
use crate::sip::message::{Message, Method};
use crate::sip::transaction::key::{MergeKey, ServerKey};
use crate::sip::transaction::messages;
use crate::sip::transaction::server_invite::ServerInvite;
use crate::sip::transaction::server_non_invite::ServerNonInvite;
use crate::sip::transaction::timers::Timer;
use crate::sip::transaction::{new_tag, ServerTxId, TuEvent};
use crate::sip::transport::Flow;

impl Shard {
    pub(super) fn on_request(&mut self, msg: Message, flow: Flow, source: SocketAddr) {
        let Some(key) = ServerKey::encode(&msg) else {
            tracing::debug!(%flow, "request without matching headers dropped");
            return;
        };
        let method = msg.method();
        let is_ack = method == Some(Method::Ack);
        if let Some(&id) = self.server_keys.get(&*key) {
            // §17.2.3 match: a retransmission, or the ACK of our INVITE.
            let Some(t) = self.server.get_mut(&id) else {
                return;
            };
            let ev = if is_ack {
                ServerEvent::Ack
            } else {
                ServerEvent::Request
            };
            let tx_flow = t.flow;
            let actions = t.machine.handle(ev);
            self.apply_server(id, tx_flow, actions, Some((msg, flow)));
            return;
        }
        let tu_behind = self.shared.tu.waiting() >= self.shared.config.tu_queue;
        if is_ack {
            // §17.2.3 / RFC 6026: an unmatched ACK is for a 2xx: the TU's.
            // A TU that is behind loses it; its sender sends it again for
            // each retransmission of the 2xx (§13.2.2.4).
            if !tu_behind {
                self.pending.push(TuEvent::Ack { message: msg, flow });
            }
            return;
        }
        let cancels = if method == Some(Method::Cancel) {
            // §9.2: the CANCEL is its own transaction but names the INVITE.
            ServerKey::encode_cancelled_invite(&msg)
                .and_then(|invite| self.server_keys.get(&*invite))
                .map(|&id| ServerTxId(id))
        } else {
            None
        };
        let cfg = &self.shared.config;
        let overloaded = tu_behind
            || self.shared.live_server.load(Ordering::Relaxed) >= cfg.max_server_transactions;
        // A CANCEL of a live INVITE ends work rather than adding it, and an
        // INVITE has at most one (it carries the INVITE's branch, §9.1): it
        // is never shed.
        if overloaded && cancels.is_none() {
            // §21.5.4: overloaded (the TU is behind, or the table is
            // full); answered statelessly, no state kept. Only new
            // requests get here: retransmissions and ACKs of live
            // transactions were matched above.
            if let Some(b) = messages::overloaded(&msg, cfg.retry_after, &new_tag()) {
                let _ = self.shared.outbound.send(&flow, b);
            }
            return;
        }
        let merge = MergeKey::encode(&msg);
        if merge
            .as_ref()
            .is_some_and(|m| self.merges.contains_key(&**m))
        {
            // §8.2.2.2: same From tag, Call-ID and CSeq as a live
            // transaction, another branch: a merged request. Answered 482
            // inside its own transaction (retransmissions re-get the 482,
            // the ACK is absorbed); the TU never sees it.
            let id = self.create_server(&msg, ServerKey::from(&key), None, flow, false);
            if let (Some(t), Some(b)) = (
                self.server.get_mut(&id),
                messages::loop_detected(&msg, &new_tag()),
            ) {
                let actions = t.machine.handle(ServerEvent::Respond {
                    status: 482,
                    response: b,
                });
                self.apply_server(id, flow, actions, None);
            }
            return;
        }
        let merge = merge.as_ref().map(MergeKey::from);
        let id = self.create_server(&msg, ServerKey::from(&key), merge, flow, true);
        self.pending.push(TuEvent::Request {
            tx: ServerTxId(id),
            message: msg,
            flow,
            source,
            cancels,
        });
    }

    /// Creates a server transaction; an INVITE one sends 100 Trying at once
    /// when `trying` (§17.2.1: within 200 ms; at once stops Timer A).
    fn create_server(
        &mut self,
        msg: &Message,
        key: ServerKey,
        merge: Option<MergeKey>,
        flow: Flow,
        trying: bool,
    ) -> u64 {
        let id = self.next_server * self.count + self.index;
        self.next_server += 1;
        let reliable = flow.protocol.is_reliable();
        let timers = self.shared.config.timers;
        let (machine, actions) = if msg.method() == Some(Method::Invite) {
            let t = if trying { messages::trying(msg) } else { None };
            let (m, a) = ServerInvite::new(t, timers, reliable);
            (ServerMachine::Invite(m), a)
        } else {
            let m = ServerNonInvite::new(timers, reliable);
            (ServerMachine::NonInvite(m), Actions::new())
        };
        self.server_keys.insert(key.clone(), id);
        if let Some(m) = &merge {
            self.merges.insert(m.clone(), id);
        }
        self.server.insert(
            id,
            Box::new(ServerTx {
                machine,
                flow,
                key,
                merge,
                gens: [0; Timer::COUNT],
            }),
        );
        self.shared.live_server.fetch_add(1, Ordering::Relaxed);
        self.apply_server(id, flow, actions, None);
        id
    }

    fn remove_server(&mut self, id: u64) {
        let Some(t) = self.server.remove(&id) else {
            return;
        };
        if self.server_keys.get(&t.key) == Some(&id) {
            self.server_keys.remove(&t.key);
        }
        if let Some(m) = t.merge {
            if self.merges.get(&m) == Some(&id) {
                self.merges.remove(&m);
            }
        }
        self.shared.live_server.fetch_sub(1, Ordering::Relaxed);
        shrink_idle(&mut self.server);
        shrink_idle(&mut self.server_keys);
        shrink_idle(&mut self.merges);
    }

    /// Carries out a server machine's actions. `tu` is the message of the
    /// current event (an ACK), for [`Action::PassToTu`].
    pub(super) fn apply_server(
        &mut self,
        id: u64,
        flow: Flow,
        actions: Actions,
        mut tu: Option<(Message, Flow)>,
    ) {
        let mut failed = false;
        for a in actions {
            match a {
                Action::Send(b) => failed |= self.shared.outbound.send(&flow, b).is_err(),
                Action::Start(t, d) => self.start_timer(Side::Server, id, t, d),
                Action::Stop(t) => self.stop_timer(Side::Server, id, t),
                Action::PassToTu => {
                    if let Some((message, flow)) = tu.take() {
                        self.pending.push(TuEvent::Ack { message, flow });
                    }
                }
                Action::Timeout => self
                    .pending
                    .push(TuEvent::ServerTimeout { tx: ServerTxId(id) }),
                Action::TransportError => self
                    .pending
                    .push(TuEvent::ServerTransportError { tx: ServerTxId(id) }),
                Action::Terminate => self.remove_server(id),
            }
        }
        if failed {
            if let Some(t) = self.server.get_mut(&id) {
                let actions = t.machine.handle(ServerEvent::TransportError);
                self.apply_server(id, flow, actions, None);
            }
        }
    }
}
