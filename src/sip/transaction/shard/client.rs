//! Client transactions in a shard (RFC 3261 §17.1).

use super::{shrink_idle, Action, Actions, ClientEvent, ClientMachine, ClientTx, Shard, Side};
use crate::sip::message::{Message, Method};
use crate::sip::transaction::client_invite::ClientInvite;
use crate::sip::transaction::client_non_invite::ClientNonInvite;
use crate::sip::transaction::key::ClientKey;
use crate::sip::transaction::timers::Timer;
use crate::sip::transaction::{ClientTxId, TuEvent};
use crate::sip::transport::Flow;

impl Shard {
    pub(crate) fn start_client(
        &mut self,
        tx: ClientTxId,
        request: Message,
        flow: Flow,
        key: ClientKey,
    ) {
        if self.client_keys.contains_key(&key) {
            // A reused branch would make responses ambiguous (§17.1.3).
            tracing::warn!(?tx, "client transaction with a branch already in use");
            self.pending.push(TuEvent::TransportError { tx });
            return;
        }
        let reliable = flow.protocol.is_reliable();
        let timers = self.shared.config.timers;
        let (machine, actions) = if request.method() == Some(Method::Invite) {
            let (m, a) = ClientInvite::start(request, timers, reliable);
            (ClientMachine::Invite(m), a)
        } else {
            let (m, a) = ClientNonInvite::start(request.bytes().clone(), timers, reliable);
            (ClientMachine::NonInvite(m), a)
        };
        self.client_keys.insert(key.clone(), tx.0);
        self.client.insert(
            tx.0,
            Box::new(ClientTx {
                machine,
                flow,
                key,
                gens: [0; Timer::COUNT],
            }),
        );
        self.apply_client(tx.0, flow, actions, None);
    }

    /// §17.1.3: a response matches by top Via branch and CSeq method.
    pub(super) fn on_response(&mut self, msg: Message, flow: Flow) {
        let Some(&id) = ClientKey::encode(&msg).and_then(|k| self.client_keys.get(&*k)) else {
            // §17.1.3 would pass it to the core; a UA core has no use for
            // a response without a transaction (2xx retransmissions are
            // covered by the Accepted state, RFC 6026), so it is dropped.
            tracing::trace!(%flow, "response without a transaction dropped");
            return;
        };
        let Some(t) = self.client.get_mut(&id) else {
            return;
        };
        let tx_flow = t.flow;
        let actions = t.machine.handle(ClientEvent::Response(&msg));
        self.apply_client(id, tx_flow, actions, Some((msg, flow)));
    }

    pub(super) fn remove_client(&mut self, id: u64) {
        if let Some(t) = self.client.remove(&id) {
            if self.client_keys.get(&t.key) == Some(&id) {
                self.client_keys.remove(&t.key);
            }
            shrink_idle(&mut self.client);
            shrink_idle(&mut self.client_keys);
        }
    }

    /// Carries out a client machine's actions; `tu` is the response of the
    /// current event, for [`Action::PassToTu`].
    pub(super) fn apply_client(
        &mut self,
        id: u64,
        flow: Flow,
        actions: Actions,
        mut tu: Option<(Message, Flow)>,
    ) {
        let tx = ClientTxId(id);
        let mut failed = false;
        for a in actions {
            match a {
                Action::Send(b) => failed |= self.shared.outbound.send(&flow, b).is_err(),
                Action::Start(t, d) => self.start_timer(Side::Client, id, t, d),
                Action::Stop(t) => self.stop_timer(Side::Client, id, t),
                Action::PassToTu => {
                    if let Some((message, flow)) = tu.take() {
                        self.pending.push(TuEvent::Response { tx, message, flow });
                    }
                }
                Action::Timeout => self.pending.push(TuEvent::Timeout { tx }),
                Action::TransportError => self.pending.push(TuEvent::TransportError { tx }),
                Action::Terminate => self.remove_client(id),
            }
        }
        if failed {
            if let Some(t) = self.client.get_mut(&id) {
                let actions = t.machine.handle(ClientEvent::TransportError);
                self.apply_client(id, flow, actions, None);
            }
        }
    }
}
