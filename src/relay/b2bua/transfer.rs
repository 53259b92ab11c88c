//! Session transfer (SPEC §2 claim 6), by REFER from the client (RFC 3515)
//! and by INVITE with Replaces (RFC 3891, in `replaces`).
//!
//! A REFER in the client's dialog whose Refer-To names a service is handled
//! here, never forwarded: the rules are searched with the original INVITE
//! whose Request-URI is the Refer-To URI. No service, no app server: the
//! REFER itself is refused (404, 503), as an INVITE would be, and no
//! subscription is created (RFC 3515 §2.4.2 allows any 4xx-6xx). Else 202,
//! and the implicit subscription (§2.4.4) reports progress in NOTIFYs with
//! `message/sipfrag` bodies (§2.4.5): `100 Trying`, `180 Ringing` when the
//! app server rings, and the final status, after which the subscription is
//! terminated.
//!
//! The new app server is inquired on a takeover leg (the machinery of a
//! session change) with an offerless INVITE (RFC 3725 flow I). Its 2xx
//! carries its offer, which goes to the client in our re-INVITE; the
//! client's 2xx carries the answer: the client is ACKed, the new app server
//! gets its ACK with the client's answer, the old one gets BYE and billing
//! opens a new segment (`move_to_leg`). The client keeps its one dialog.
//! A refusal by the app server (after failover on 408/5xx) or by the client
//! is reported in the final NOTIFY and the session goes on with the first
//! app server; an app server that answered is ACKed with an answer that
//! rejects every stream (RFC 3261 §13.2.2.4, RFC 3264 §6) and gets BYE.

use super::outbound::{to_app_server, with_user, Offer};
use super::refer::{refer_target, rejecting_answer, ReferredRequest};
use super::*;
use crate::relay::session::{Direction, Transfer, TransferBy};
use crate::sip::message::{HeaderName, Uri};

/// `expires` of the implicit subscription while the transfer runs (RFC
/// 3515 §2.4.4): longer than an app server may ring (Timer C).
const SUBSCRIPTION_SECONDS: u32 = 180;

impl Core {
    /// A REFER in an established session (RFC 3515).
    pub(in crate::relay) fn on_refer(
        &mut self,
        tx: ServerTxId,
        id: &str,
        msg: &Message,
        inbound: bool,
    ) {
        let catalog = self.d.catalog.snapshot();
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        // Only a client names services; an app server ends its own leg.
        if !inbound || session.direction != Direction::FromClient {
            self.respond(&tx, msg, 403, "Only The Client May Transfer", &[]);
            return;
        }
        // RFC 3261 §14.2: the transfer needs a re-INVITE of the client,
        // and one INVITE is already in progress.
        if session.busy() {
            let retry = [("Retry-After", "1".to_string())];
            self.respond(&tx, msg, 491, "Request Pending", &retry);
            return;
        }
        let target = match refer_target(msg) {
            Ok(t) => t,
            Err((code, reason)) => {
                self.respond(&tx, msg, code, reason, &[]);
                self.event(id, "transfer_refused", Some(format!("{code} {reason}")));
                return;
            }
        };
        let Ok(uri) = Uri::parse(target.as_bytes()) else {
            return;
        };
        let Some(original) = &session.client_leg.invite else {
            return;
        };
        let view = ReferredRequest {
            original,
            target: uri,
        };
        let ctx = RequestContext {
            client_id: session.client.as_ref().map(|c| c.id.as_str()),
            source: Some(session.client_leg.flow.remote.ip()),
        };
        let Some(search) = super::replaces::search(&catalog, &view, &ctx) else {
            self.respond(&tx, msg, 404, "No Service Matches", &[]);
            self.event(id, "transfer_refused", Some(format!("{target}: no rule")));
            return;
        };
        if search.candidates.is_empty() {
            let retry = [("Retry-After", "30".to_string())];
            self.respond(&tx, msg, 503, "No Application Server Available", &retry);
            let detail = format!("{target}: no app server");
            self.event(id, "transfer_refused", Some(detail));
            return;
        }
        let refer_cseq = msg.cseq().map(|c| c.seq).unwrap_or_default();
        let detail = format!(
            "REFER to {target}: rule {} service {}",
            search.rule_id, search.service_id
        );
        session.best_failure = None;
        session.transfer = Some(Box::new(Transfer {
            how: TransferBy::Refer {
                refer_cseq,
                offer: None,
                reinvite: None,
            },
            leg: usize::MAX,
            service_id: search.service_id,
            rule_id: search.rule_id,
            attributes: search.attributes,
            candidates: search.candidates,
            target,
            ack: None,
        }));
        self.respond(&tx, msg, 202, "Accepted", &[]);
        self.event(id, "transfer", Some(detail));
        self.notify(id, refer_cseq, 100, "Trying", false);
        self.inquire_transfer(id);
    }

    /// INVITEs the next app server for the pending transfer (offerless
    /// after a REFER, with the new INVITE's offer for Replaces); with none
    /// left the transfer fails with the best failure seen.
    pub(super) fn inquire_transfer(&mut self, id: &str) {
        let catalog = self.d.catalog.snapshot();
        loop {
            let Some(session) = self.sessions.get_mut(id) else {
                return;
            };
            let Some(t) = session.transfer.as_mut().filter(|t| t.pending()) else {
                return;
            };
            if t.candidates.is_empty() {
                let failure = session.best_failure.take();
                let (code, reason) =
                    failure.unwrap_or((503, "No Application Server Available".into()));
                self.transfer_failed(id, code, &reason);
                return;
            }
            let as_id = t.candidates.remove(0);
            let attributes = t.attributes.clone();
            let user = Uri::parse(t.target.as_bytes())
                .ok()
                .and_then(|u| u.user().map(text));
            let to = format!("<{}>", t.target);
            let offer = match &t.how {
                TransferBy::Refer { .. } => Offer::Offerless,
                TransferBy::Replaces { leg } => match &leg.invite {
                    Some(invite) => Offer::Of(invite.clone()),
                    None => Offer::Offerless,
                },
            };
            let Some(mut out) = to_app_server(&catalog, session, &as_id, self.d.listen, offer)
            else {
                continue;
            };
            if let Some(app_server) = catalog.app_servers.get(&as_id) {
                out.request_uri = with_user(&app_server.uri, user.as_deref());
            }
            out.to = to;
            out.attributes = Some(attributes);
            if let Some(leg) = self.open_takeover_leg(id, out) {
                if let Some(t) = self.sessions.get_mut(id).and_then(|s| s.transfer.as_mut()) {
                    t.leg = leg;
                }
                return;
            }
        }
    }

    /// A provisional response on a takeover leg: a transfer reports the
    /// app server ringing (a NOTIFY, or a 18x to the new INVITE).
    pub(super) fn transfer_progress(&mut self, id: &str, index: usize, msg: &Message) {
        let code = msg.status().unwrap_or(100);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let Some(t) = session.transfer.as_ref().filter(|t| t.pending()) else {
            return;
        };
        if t.leg != index || !(code == 180 || code == 183) {
            return;
        }
        let reason = text(msg.reason().unwrap_or(b"Ringing"));
        match &t.how {
            TransferBy::Refer { refer_cseq, .. } => {
                let cseq = *refer_cseq;
                self.notify(id, cseq, code, &reason, false);
            }
            TransferBy::Replaces { .. } => self.answer_replacing(id, code, &reason, Some(msg)),
        }
    }

    /// The app server of a transfer answered 2xx.
    pub(super) fn transfer_answered(
        &mut self,
        tx: ClientTxId,
        id: &str,
        index: usize,
        answer: &Message,
    ) {
        let Some(t) = self.sessions.get_mut(id).and_then(|s| s.transfer.as_mut()) else {
            return;
        };
        let TransferBy::Refer { offer, .. } = &mut t.how else {
            self.replacing_answered(tx, id, index, answer);
            return;
        };
        if answer.body().is_empty() {
            // RFC 3725 flow I wants the offer in this 2xx.
            self.drop_takeover_leg(id, index, None);
            self.transfer_failed(id, 488, "Not Acceptable Here");
            return;
        }
        *offer = Some(answer.clone());
        let headers = self.timer_headers(id, true, true);
        let content_type = answer
            .get(HeaderName::ContentType)
            .and_then(|h| h.value_str())
            .unwrap_or("application/sdp");
        let body = Some((content_type, answer.body()));
        let Some(sent) = self.send_to_client(id, Method::Invite, &headers, body) else {
            self.drop_takeover_leg(id, index, Some(answer));
            self.transfer_failed(id, 500, "Cannot Re-INVITE The Client");
            return;
        };
        if let Some(t) = self.sessions.get_mut(id).and_then(|s| s.transfer.as_mut()) {
            if let TransferBy::Refer { reinvite, .. } = &mut t.how {
                *reinvite = Some(sent);
            }
        }
        self.sessions
            .index_tx(sent.0, id, Purpose::TransferReinvite);
    }

    /// The client's answer to our re-INVITE with the new app server's offer.
    pub(in crate::relay) fn on_transfer_reinvite_response(
        &mut self,
        tx: ClientTxId,
        id: &str,
        msg: Option<&Message>,
    ) {
        let code = msg.and_then(Message::status).unwrap_or(408);
        if code < 200 {
            return;
        }
        let client_flow = self.sessions_flow(id);
        let Some(t) = self.sessions.get_mut(id).and_then(|s| s.transfer.as_mut()) else {
            self.sessions.forget_tx(&tx);
            return;
        };
        if let Some(ack) = t.ack.clone() {
            // A retransmitted 2xx: the same ACK again (RFC 3261 §13.2.2.4).
            if (200..300).contains(&code) {
                let _ = self.d.layer.send_stateless(&client_flow, ack);
            }
            return;
        }
        let TransferBy::Refer {
            offer, reinvite, ..
        } = &mut t.how
        else {
            return;
        };
        let Some((_, cseq)) = reinvite.filter(|r| r.0 == tx) else {
            return;
        };
        let offer = offer.take();
        let index = t.leg;
        let Some(answer) = msg.filter(|_| (200..300).contains(&code)) else {
            self.sessions.forget_tx(&tx);
            let reason = msg
                .and_then(Message::reason)
                .map(text)
                .unwrap_or_else(|| "Request Timeout".into());
            self.drop_takeover_leg(id, index, offer.as_ref());
            self.transfer_failed(id, code, &reason);
            return;
        };
        // RFC 3261 §13.2.2.4: our ACK of the client's 2xx, kept for its
        // retransmissions.
        let local = self.local_for(&client_flow);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let Ok(ack) = legs::client_request(
            &local,
            &session.client_leg,
            &legs::InDialog::bare(Method::Ack, cseq),
        )
        .map(Message::into_bytes) else {
            return;
        };
        let _ = self.d.layer.send_stateless(&client_flow, ack.clone());
        if let Some(target) = contact_of(answer) {
            session.client_leg.retarget(target);
        }
        let Some(t) = session.transfer.as_mut() else {
            return;
        };
        t.ack = Some(ack);
        let to = super::segments::Takeover {
            service_id: t.service_id.clone(),
            rule_id: t.rule_id.clone(),
            attributes: t.attributes.clone(),
        };
        let TransferBy::Refer { refer_cseq, .. } = t.how else {
            return;
        };
        // RFC 3725 flow I: the client's answer goes to the new app server
        // in the ACK of its 2xx.
        let content_type = answer
            .get(HeaderName::ContentType)
            .and_then(|h| h.value_str())
            .unwrap_or("application/sdp");
        self.ack_as_leg(id, index, Some((content_type, answer.body())));
        let timer = offer.as_ref().and_then(|o| self.outbound_timer(o));
        self.move_to_leg(id, index, to, timer, "transferred");
        self.notify(id, refer_cseq, 200, "OK", true);
    }

    /// The transfer's app server failed with `code`: true when a transfer
    /// was pending (then the next app server on 408 and 5xx, else the end
    /// of the transfer).
    pub(super) fn transfer_leg_failed(&mut self, id: &str, code: u16, reason: &str) -> bool {
        let Some(session) = self.sessions.get_mut(id) else {
            return false;
        };
        if session.change.is_some() {
            return false;
        }
        let Some(t) = session.transfer.as_ref().filter(|t| t.pending()) else {
            return false;
        };
        let more = !t.candidates.is_empty();
        session.note_failure(code, reason);
        self.event(id, "transfer_rejected", Some(format!("{code} {reason}")));
        if more && (code == 408 || (500..600).contains(&code)) {
            self.inquire_transfer(id);
        } else {
            let best = self
                .sessions
                .get_mut(id)
                .and_then(|s| s.best_failure.take());
            let (code, reason) = best.unwrap_or((code, reason.to_string()));
            self.transfer_failed(id, code, &reason);
        }
        true
    }

    /// The transfer is over without a new app server: the REFER's
    /// subscription ends with `code`, or the new INVITE gets it; the
    /// session goes on as it was.
    pub(super) fn transfer_failed(&mut self, id: &str, code: u16, reason: &str) {
        let Some(t) = self.sessions.get_mut(id).and_then(|s| s.transfer.take()) else {
            return;
        };
        match t.how {
            TransferBy::Refer { refer_cseq, .. } => self.notify(id, refer_cseq, code, reason, true),
            TransferBy::Replaces { leg } => {
                let flow = leg.flow;
                let local = self.local_for(&flow);
                if let Ok(bytes) = legs::client_response(&local, &leg, code, reason, None, &[]) {
                    self.d.layer.respond(&leg.invite_tx, code, bytes);
                }
            }
        }
        self.event(id, "transfer_failed", Some(format!("{code} {reason}")));
    }

    /// The session ends while a transfer is pending: its app server leg is
    /// given up; a new INVITE with Replaces gets 603 (its dialog to
    /// replace is gone, RFC 3891 §3).
    pub(in crate::relay) fn abandon_transfer(&mut self, id: &str) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let Some(t) = session.transfer.as_ref().filter(|t| t.pending()) else {
            return;
        };
        let index = t.leg;
        let offer = match &t.how {
            TransferBy::Refer { offer, .. } => offer.clone(),
            TransferBy::Replaces { .. } => None,
        };
        self.drop_takeover_leg(id, index, offer.as_ref());
        self.transfer_failed(id, 603, "Declined");
    }

    /// Gives up takeover leg `index`: cancelled while it rings; once
    /// answered, ACKed (rejecting the streams of `offer`, the 2xx's offer
    /// nobody answered, RFC 3261 §13.2.2.4) and hung up.
    pub(super) fn drop_takeover_leg(&mut self, id: &str, index: usize, offer: Option<&Message>) {
        let Some(leg) = self.sessions.leg_mut(id, index) else {
            return;
        };
        match leg.state {
            LegState::Calling | LegState::Early => {
                leg.state = LegState::Cancelled;
                leg.ended_at = Some(Timestamp::now());
                self.cancel_leg(id, index);
            }
            LegState::Answered => {
                let answer = offer.map(|o| rejecting_answer(o.body()));
                let body = answer.as_deref().map(|a| ("application/sdp", a));
                self.ack_as_leg(id, index, body);
                self.hang_up_as_leg(id, index);
            }
            LegState::Acked => self.hang_up_as_leg(id, index),
            LegState::Cancelled | LegState::Failed | LegState::Ended => {}
        }
    }

    /// NOTIFY of the REFER's subscription (RFC 3515 §2.4.4-2.4.5): the
    /// status line of the transfer's progress as `message/sipfrag`; `done`
    /// terminates the subscription (RFC 6665 §4.2.2, reason `noresource`).
    fn notify(&mut self, id: &str, refer_cseq: u32, code: u16, reason: &str, done: bool) {
        let flow = self.sessions_flow(id);
        let state = if done {
            "terminated;reason=noresource".to_string()
        } else {
            format!("active;expires={SUBSCRIPTION_SECONDS}")
        };
        // RFC 6665 §4.1.3: a NOTIFY carries the notifier's Contact.
        let headers = [
            ("Event", format!("refer;id={refer_cseq}")),
            ("Subscription-State", state),
            ("Contact", self.local_for(&flow).contact(&flow)),
        ];
        let frag = format!("SIP/2.0 {code} {reason}\r\n");
        let body = Some(("message/sipfrag;version=2.0", frag.as_bytes()));
        if let Some((ctx, _)) = self.send_to_client(id, Method::Notify, &headers, body) {
            self.sessions.index_tx(ctx, id, Purpose::Closing);
        }
    }

    /// Sends a request of ours in the client's dialog; its transaction and
    /// CSeq number.
    fn send_to_client(
        &mut self,
        id: &str,
        method: Method<'static>,
        headers: &[(&str, String)],
        body: Option<(&str, &[u8])>,
    ) -> Option<(ClientTxId, u32)> {
        let flow = self.sessions_flow(id);
        let local = self.local_for(&flow);
        let leg = &mut self.sessions.get_mut(id)?.client_leg;
        leg.local_cseq += 1;
        let mut r = legs::InDialog::with_headers(method, leg.local_cseq, headers);
        r.body = body;
        let request = legs::client_request(&local, leg, &r).ok()?;
        let ctx = self.d.layer.request(request, flow).ok()?;
        Some((ctx, r.cseq))
    }
}
