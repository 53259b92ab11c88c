//! Parallel fan-out (SPEC §2, claim 7): a service with strategy `parallel`
//! inquires every available app server of its pool at once.
//!
//! Switchboard stays a B2BUA, not a forking proxy: the client's INVITE is
//! one server transaction, but each app server gets its own session (own
//! id in `X-Switchboard-Session`, own CDR), all sharing one `request_id`.
//! Each session is its own dialog with the client, told apart by our To
//! tag (RFC 3261 §12): its provisional responses create an early dialog
//! with that tag, its 2xx a confirmed one. The first 2xx is the
//! transaction's final response; later ones go out on the same
//! transaction in its "Accepted" state (RFC 6026 §8.7), each with its own
//! tag, and each is ACKed (and may be ended) by the client on its own.
//!
//! Every provisional response is relayed with its session's tag, not only
//! the first: early media (183 with SDP) belongs to the early dialog of the
//! app server that sent it, and a client can only match it to the later
//! 2xx by that tag (RFC 3261 §13.2.2.4, RFC 3960). After a 2xx the
//! transaction no longer sends provisional responses.
//!
//! Unlike a forking proxy (RFC 3261 §16.7 step 10), a 2xx does not cancel
//! the other inquiries: each further 2xx is a session the client may take
//! (SPEC claim 7). A session refused after a 2xx went out simply ends; a
//! 6xx before any 2xx cancels the others (§16.7 step 5); when every session
//! is refused, the client gets the best refusal (§16.7 step 6). A CANCEL
//! cancels every session still waiting (RFC 3261 §9.2, as a proxy does in
//! §16.10) and, without a 2xx sent, answers the INVITE 487. Every leg gets
//! the service's ring timeout from the same instant: it bounds the whole
//! fan-out.

use ahash::HashMap;
use std::sync::Arc;

use super::*;
use crate::relay::refusal::{best_response, relayable};
use crate::relay::session::Direction;
use crate::store::clients::Client;

/// What the search (SPEC §2 step 3) chose for a client's INVITE.
pub(super) struct Search {
    pub service_id: String,
    pub rule_id: String,
    pub attributes: Vec<(String, String)>,
    /// The app servers to inquire, all at once.
    pub candidates: Vec<String>,
}

/// One client INVITE fanned out, until each of its sessions has a final
/// answer from its app server.
#[derive(Debug)]
struct Group {
    /// One session per app server, in pool order.
    sessions: Vec<String>,
    /// Final refusals so far: status, reason, and the session refused.
    refusals: Vec<(u16, String, String)>,
    /// A 2xx went to the client: no other final response may follow.
    answered: bool,
    /// The client cancelled: its INVITE is answered 487 (RFC 3261 §9.2).
    cancelled: bool,
}

/// The fan-outs of a relay core still waiting for answers, by the client's
/// INVITE transaction.
#[derive(Debug, Default)]
pub struct FanOuts {
    groups: HashMap<ServerTxId, Group>,
}

impl Core {
    /// Opens one session per app server for the client's INVITE, then
    /// inquires them all. The sessions exist before the first inquiry so
    /// that a leg failing at once does not settle the fan-out early.
    pub(super) fn fan_out(
        &mut self,
        tx: ServerTxId,
        msg: Message,
        flow: Flow,
        client: Arc<Client>,
        search: Search,
    ) {
        let request_id = new_id();
        let total = search.candidates.len();
        let mut ids = Vec::with_capacity(total);
        for (n, as_id) in search.candidates.into_iter().enumerate() {
            let Some(mut session) = self.new_session(
                tx,
                msg.clone(),
                flow,
                Direction::FromClient,
                Some(client.clone()),
            ) else {
                // Malformed dialog headers: answered 400 already.
                return;
            };
            session.request_id = request_id.clone();
            session.fanout = true;
            session.service_id = Some(search.service_id.clone());
            session.rule_id = Some(search.rule_id.clone());
            session.attributes = search.attributes.clone();
            session.candidates = vec![as_id];
            let detail = format!(
                "rule {} service {} (fan-out {} of {total}, request {request_id})",
                search.rule_id,
                search.service_id,
                n + 1
            );
            ids.push(self.open_session(session, detail));
        }
        self.fanouts.groups.insert(
            tx,
            Group {
                sessions: ids.clone(),
                refusals: Vec::new(),
                answered: false,
                cancelled: false,
            },
        );
        for id in &ids {
            self.inquire_next(id);
        }
    }

    /// A session of a fan-out that will not be answered: it ends on its
    /// own, and the client hears of it only through the best refusal once
    /// every session has its answer. False for any other session.
    pub(in crate::relay) fn fanout_fail(
        &mut self,
        id: &str,
        code: u16,
        reason: &str,
        why: &str,
    ) -> bool {
        let Some(session) = self.sessions.get_mut(id) else {
            return false;
        };
        if !session.fanout {
            return false;
        }
        let tx = session.client_leg.invite_tx;
        let mut declined_for_all = Vec::new();
        if let Some(group) = self.fanouts.groups.get_mut(&tx) {
            group
                .refusals
                .push((code, reason.to_string(), id.to_string()));
            // RFC 3261 §16.7 step 5: a 6xx says no app server will do, so
            // the others still waiting are cancelled (once a 2xx went out,
            // the client has its session and the rest just ring on).
            if (600..700).contains(&code) && !group.answered && !group.cancelled {
                declined_for_all = group.sessions.clone();
            }
        }
        self.end(id, why, Some(code));
        for other in declined_for_all.iter().filter(|o| *o != id) {
            if self
                .sessions
                .get_mut(other)
                .is_some_and(|s| s.state == State::Proceeding)
            {
                self.cancel_pending(other);
                self.event(other, "declined", Some(format!("{code} elsewhere")));
                self.end(other, "declined", Some(487));
            }
        }
        self.settle(tx, id);
        true
    }

    /// Sends session `id`'s 2xx (or its retransmission) to the client. The
    /// first 2xx for the client's INVITE goes through its server
    /// transaction, which enters "Accepted" (RFC 6026 §8.5). A fan-out's
    /// later 2xx may come after Timer L has ended that transaction (an app
    /// server may ring for minutes after the first answered); they go to
    /// the transport directly over the same flow, as the transaction would
    /// have passed them (RFC 6026 §8.7; sending 2xx is the TU's job,
    /// RFC 3261 §13.3.1.4).
    pub(in crate::relay) fn send_2xx(&mut self, id: &str, code: u16, bytes: bytes::Bytes) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let leg = &session.client_leg;
        let first = !session.fanout
            || self
                .fanouts
                .groups
                .get(&leg.invite_tx)
                .is_some_and(|g| !g.answered);
        if first {
            self.d.layer.respond(&leg.invite_tx, code, bytes);
        } else if let Err(e) = self.d.layer.send_stateless(&leg.flow, bytes) {
            tracing::debug!(session = %id, error = %e, "cannot send a 2xx");
        }
    }

    /// A session of a fan-out sent its 2xx to the client.
    pub(in crate::relay) fn fanout_answered(&mut self, id: &str) {
        let Some(tx) = self
            .sessions
            .get_mut(id)
            .filter(|s| s.fanout)
            .map(|s| s.client_leg.invite_tx)
        else {
            return;
        };
        if let Some(group) = self.fanouts.groups.get_mut(&tx) {
            group.answered = true;
        }
        self.settle(tx, id);
    }

    /// CANCEL of a fanned-out INVITE: 200 to the CANCEL, and every session
    /// still waiting is cancelled (reason `cancel`). Sessions already
    /// answered stay: the client ends those with BYE (RFC 3261 §9.2, a
    /// final response was sent for them). False when `invite` is not a
    /// fan-out.
    pub(in crate::relay) fn fanout_cancel(
        &mut self,
        tx: &ServerTxId,
        msg: &Message,
        invite: &ServerTxId,
    ) -> bool {
        let Some(group) = self.fanouts.groups.get_mut(invite) else {
            return false;
        };
        group.cancelled = true;
        let members = group.sessions.clone();
        self.respond(tx, msg, 200, "OK", &[]);
        for id in &members {
            if self
                .sessions
                .get_mut(id)
                .is_some_and(|s| s.state == State::Proceeding)
            {
                self.cancel_pending(id);
                self.fail(id, 487, "Request Terminated", "cancel");
            }
        }
        if let Some(first) = members.first() {
            self.settle(*invite, first);
        }
        true
    }

    /// Once no session of the fan-out waits any more, the group is done;
    /// without a 2xx sent, the client gets the best refusal (or 487 after
    /// its CANCEL), through the dialog of the session that got it.
    fn settle(&mut self, tx: ServerTxId, last: &str) {
        let members = match self.fanouts.groups.get(&tx) {
            Some(group) => group.sessions.clone(),
            None => return,
        };
        let waiting = members.iter().any(|id| {
            self.sessions
                .get_mut(id)
                .is_some_and(|s| s.state == State::Proceeding)
        });
        if waiting {
            return;
        }
        let Some(group) = self.fanouts.groups.remove(&tx) else {
            return;
        };
        if group.answered {
            return;
        }
        let (code, reason, via) = if group.cancelled {
            (487, "Request Terminated".to_string(), last.to_string())
        } else {
            let codes: Vec<u16> = group.refusals.iter().map(|r| r.0).collect();
            match best_response(&codes).and_then(|i| group.refusals.get(i)) {
                Some((code, reason, via)) => {
                    let (code, reason) = relayable(*code, reason);
                    (code, reason, via.clone())
                }
                None => (500, "Server Internal Error".into(), last.to_string()),
            }
        };
        // The chosen session may have been forgotten if other app servers
        // rang for long; any session of the request carries the response.
        let via = if self.sessions.contains(&via) {
            via
        } else {
            last.to_string()
        };
        self.relay_to_client(&via, code, &reason, None);
        self.event(&via, "fanout_final", Some(format!("{code} {reason}")));
    }
}
