//! Session change (SPEC §2 claim 5): a re-INVITE or UPDATE from the client
//! with a new offer is a new service request. The rules are searched again
//! with the session's original Request-URI and the new request's headers
//! and SDP. When the app server serving the session is in the pool of the
//! service found, the request is relayed to it as any in-dialog request;
//! otherwise another app server of that service is inquired with the new
//! offer on a leg of its own (a takeover leg). Its 2xx answers the client,
//! the old app server gets BYE and billing opens a new segment; its
//! failure goes back to the client and the session stays as it was.

use std::borrow::Cow;

use super::answers::learn_dialog;
use super::midcall::build_response;
use super::outbound::{to_app_server, Offer};
use super::segments::Takeover;
use super::*;
use crate::relay::refusal::relayable;
use crate::relay::request_view::RequestView;
use crate::relay::session::{Change, Direction, ReInvite};

/// The request a session change is searched with: the original INVITE's
/// method and Request-URI, the new request's headers (the original's when
/// the new one lacks a header) and its SDP.
struct ChangedRequest<'a> {
    original: &'a Message,
    change: &'a Message,
}

impl RequestView for ChangedRequest<'_> {
    fn method(&self) -> Cow<'_, str> {
        RequestView::method(self.original)
    }

    fn request_uri_user(&self) -> Option<Cow<'_, str>> {
        self.original.request_uri_user()
    }

    fn request_uri_host(&self) -> Cow<'_, str> {
        self.original.request_uri_host()
    }

    fn any_header_value(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        if self.change.any_header_value(name, &mut |_| true) {
            self.change.any_header_value(name, f)
        } else {
            self.original.any_header_value(name, f)
        }
    }

    fn sdp(&self) -> Option<&[u8]> {
        self.change.sdp()
    }
}

impl Core {
    /// A re-INVITE or UPDATE with an offer from the client of an established
    /// session: true when it was taken as a change to another app server
    /// (or refused), false when it is to be relayed on the current AS leg.
    pub(in crate::relay) fn change_service(
        &mut self,
        tx: &ServerTxId,
        id: &str,
        msg: &Message,
    ) -> bool {
        let catalog = self.d.catalog.snapshot();
        let Some(session) = self.sessions.get_mut(id) else {
            return false;
        };
        if session.direction != Direction::FromClient || msg.body().is_empty() {
            return false;
        }
        let Some(original) = &session.client_leg.invite else {
            return false;
        };
        let view = ChangedRequest {
            original,
            change: msg,
        };
        let ctx = RequestContext {
            client_id: session.client.as_ref().map(|c| c.id.as_str()),
            source: Some(session.client_leg.flow.remote.ip()),
        };
        // No rule for the changed request: the current service stays in
        // charge, as a change the operator did not route elsewhere.
        let Some(rule) = catalog.rules.search(&view, &ctx) else {
            return false;
        };
        let Some(entry) = catalog.services.get(&rule.rule.service_id) else {
            return false;
        };
        let current = session
            .answered_leg()
            .and_then(|i| session.as_legs.get(i))
            .and_then(|l| l.app_server_id.as_deref());
        if current.is_some_and(|a| entry.service.app_server_ids.iter().any(|p| p == a)) {
            return false;
        }
        let candidates = catalog.candidate_ids(entry);
        let detail = format!("rule {} service {}", rule.rule.id, entry.service.id);
        if candidates.is_empty() {
            self.respond(
                tx,
                msg,
                503,
                "No Application Server Available",
                &[("Retry-After", "30".into())],
            );
            self.event(
                id,
                "change_refused",
                Some(format!("{detail}: no app server")),
            );
            return true;
        }
        session.change = Some(Box::new(Change {
            request: msg.clone(),
            server_tx: *tx,
            leg: usize::MAX,
            service_id: entry.service.id.clone(),
            rule_id: rule.rule.id.clone(),
            attributes: rule.attributes(),
            candidates,
        }));
        self.event(id, "change", Some(detail));
        self.inquire_change(id);
        true
    }

    /// INVITEs the next app server for the pending change; with none left
    /// the client gets the best failure seen.
    fn inquire_change(&mut self, id: &str) {
        let catalog = self.d.catalog.snapshot();
        loop {
            let Some(session) = self.sessions.get_mut(id) else {
                return;
            };
            let Some(change) = session.change.as_mut() else {
                return;
            };
            if change.candidates.is_empty() {
                let (code, reason) = session
                    .refusal()
                    .unwrap_or((503, "No Application Server Available".into()));
                session.best_failure = None;
                self.change_failed(id, code, &reason);
                return;
            }
            let as_id = change.candidates.remove(0);
            let attributes = change.attributes.clone();
            let offer = Offer::Of(change.request.clone());
            let Some(mut out) = to_app_server(&catalog, session, &as_id, self.d.listen, offer)
            else {
                continue;
            };
            out.attributes = Some(attributes);
            if let Some(leg) = self.open_takeover_leg(id, out) {
                if let Some(c) = self.sessions.get_mut(id).and_then(|s| s.change.as_mut()) {
                    c.leg = leg;
                }
                return;
            }
        }
    }

    /// Opens an outbound leg that is to take an established session over
    /// (a change or a transfer); its INVITE's answers come to
    /// [`Core::on_takeover_response`]. Returns the leg's index.
    pub(super) fn open_takeover_leg(
        &mut self,
        id: &str,
        out: super::outbound::Outbound,
    ) -> Option<usize> {
        if !self.open_leg(id, out) {
            return None;
        }
        let session = self.sessions.get_mut(id)?;
        let index = session.as_legs.len() - 1;
        let tx = session.as_legs.get(index)?.invite_tx;
        self.sessions.index_tx(tx, id, Purpose::Takeover(index));
        Some(index)
    }

    /// A response on a takeover leg.
    pub(in crate::relay) fn on_takeover_response(
        &mut self,
        tx: ClientTxId,
        id: &str,
        index: usize,
        msg: &Message,
    ) {
        let Some(code) = msg.status() else { return };
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let mine = session.takeover_leg() == Some(index);
        let transfer = session.change.is_none();
        let Some(leg) = session.as_legs.get_mut(index) else {
            return;
        };
        leg.responded = true;
        settle_inquiry_timers(&mut self.timers, leg, code);
        if code < 200 && leg.cancel_wanted {
            self.cancel_leg(id, index);
            return;
        }
        let live = matches!(leg.state, LegState::Calling | LegState::Early);
        if (200..300).contains(&code) && !live {
            // A retransmitted 2xx: our ACK again, or our 2xx to the client
            // again while it has not ACKed (RFC 3261 §13.3.1.4).
            if leg.state == LegState::Answered {
                self.reinvite_retransmission(id, tx);
            } else {
                self.late_answer(id, index, msg);
            }
            return;
        }
        if !live || code == 100 {
            return;
        }
        if code < 200 {
            leg.state = LegState::Early;
            self.transfer_progress(id, index, msg);
            return;
        }
        if !mine {
            // Not (or no longer) wanted: a 2xx is confirmed and ended.
            if (200..300).contains(&code) {
                learn_dialog(leg, msg);
                leg.state = LegState::Answered;
                self.hang_up_as_leg(id, index);
            }
            return;
        }
        if (200..300).contains(&code) {
            learn_dialog(leg, msg);
            leg.state = LegState::Answered;
            if transfer {
                self.transfer_answered(tx, id, index, msg);
            } else {
                self.change_answered(tx, id, index, msg);
            }
            return;
        }
        let reason = self.leg_refused(tx, id, index, msg);
        self.takeover_leg_failed(id, code, &reason);
    }

    /// A takeover leg will not answer (timeout, transport error): true
    /// when `index` was one (its CANCEL is sent).
    pub(in crate::relay) fn takeover_gave_up(&mut self, id: &str, index: usize) -> bool {
        let Some(session) = self.sessions.get_mut(id) else {
            return false;
        };
        if session.takeover_leg() != Some(index) {
            return false;
        }
        let Some(leg) = session.as_legs.get_mut(index) else {
            return false;
        };
        if matches!(leg.state, LegState::Calling | LegState::Early) {
            leg.state = LegState::Failed;
            leg.ended_at = Some(Timestamp::now());
            self.cancel_leg(id, index);
            self.takeover_leg_failed(id, 408, "Request Timeout");
        }
        true
    }

    /// The app server asked for a change refused (or failed): the next one
    /// on 408 and 5xx (failover), else the failure to the client.
    fn takeover_leg_failed(&mut self, id: &str, code: u16, reason: &str) {
        if self.transfer_leg_failed(id, code, reason) {
            return;
        }
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        session.note_failure(code, reason);
        let failover = code == 408 || (500..600).contains(&code);
        let more = session
            .change
            .as_ref()
            .is_some_and(|c| !c.candidates.is_empty());
        let best = session.best_failure.take();
        self.event(id, "change_rejected", Some(format!("{code} {reason}")));
        if failover && more {
            if let Some(s) = self.sessions.get_mut(id) {
                s.best_failure = best;
            }
            self.inquire_change(id);
            return;
        }
        let (code, reason) = best
            .map(|(c, r)| relayable(c, &r))
            .unwrap_or_else(|| relayable(code, reason));
        self.change_failed(id, code, &reason);
    }

    /// The change is over without a new app server: the client's request
    /// gets `code`; the session goes on as before (SPEC §2 claim 5).
    fn change_failed(&mut self, id: &str, code: u16, reason: &str) {
        let Some(change) = self.sessions.get_mut(id).and_then(|s| s.change.take()) else {
            return;
        };
        self.respond(&change.server_tx, &change.request, code, reason, &[]);
    }

    /// The new app server answered 2xx: the client gets that answer, the
    /// session moves to the new leg. After a re-INVITE the new leg's ACK
    /// waits for the client's (end to end, as any relayed re-INVITE); after
    /// an UPDATE the leg is ACKed at once.
    fn change_answered(&mut self, tx: ClientTxId, id: &str, index: usize, answer: &Message) {
        let Some(change) = self.sessions.get_mut(id).and_then(|s| s.change.take()) else {
            return;
        };
        let flow = self.sessions_flow(id);
        let local = self.local_for(&flow);
        let mut headers = self.timer_headers(id, true, false);
        headers.push(("Contact", local.contact(&flow)));
        let code = answer.status().unwrap_or(200);
        let reason = text(answer.reason().unwrap_or(b"OK"));
        let Some(bytes) = build_response(&change.request, code, &reason, &headers, Some(answer))
        else {
            return;
        };
        self.d.layer.respond(&change.server_tx, code, bytes.clone());
        let is_invite = change.request.method() == Some(Method::Invite);
        if let Some(session) = self.sessions.get_mut(id) {
            if let Some(target) = contact_of(&change.request) {
                session.client_leg.retarget(target);
            }
            if is_invite {
                let previous = session.reinvite.replace(Box::new(ReInvite {
                    inbound: true,
                    leg: index,
                    server_tx: change.server_tx,
                    cseq: change.request.cseq().map(|c| c.seq).unwrap_or_default(),
                    copy_tx: tx,
                    copy_cseq: 1,
                    offerless: false,
                    relayed: Some((code, bytes)),
                    ack: None,
                }));
                if let Some(old) = previous {
                    self.sessions.forget_tx(&old.copy_tx);
                }
            }
        }
        if !is_invite {
            self.ack_as_leg(id, index, None);
        }
        let timer = self.outbound_timer(answer);
        let to = Takeover {
            service_id: change.service_id,
            rule_id: change.rule_id,
            attributes: change.attributes,
        };
        self.move_to_leg(id, index, to, timer, "moved");
    }

    /// The session ends while a change is pending: the request gets 487
    /// (RFC 3261 §15.1.2) and the new leg is cancelled.
    pub(in crate::relay) fn abandon_change(&mut self, id: &str) {
        let Some(change) = self.sessions.get_mut(id).and_then(|s| s.change.take()) else {
            return;
        };
        self.respond(
            &change.server_tx,
            &change.request,
            487,
            "Request Terminated",
            &[],
        );
        self.cancel_pending(id);
    }
}
