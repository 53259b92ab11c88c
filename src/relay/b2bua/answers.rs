//! Step 5: what app servers answer, relayed to the client; failover when
//! they refuse or stay silent.

use super::*;
use crate::relay::refusal::relayable;

impl Core {
    /// Step 5: responses of app servers (and of our BYEs and CANCELs).
    pub(in crate::relay) fn on_response(&mut self, tx: ClientTxId, msg: &Message) {
        let Some((id, purpose)) = self.sessions.tx(&tx) else {
            return;
        };
        let Some(code) = msg.status() else { return };
        let index = match purpose {
            Purpose::AsInvite(index) => index,
            Purpose::Takeover(index) => {
                self.on_takeover_response(tx, &id, index, msg);
                return;
            }
            Purpose::Relay(server) => {
                self.on_relayed_response(tx, &id, server, Some(msg));
                return;
            }
            Purpose::TransferReinvite => {
                self.on_transfer_reinvite_response(tx, &id, Some(msg));
                return;
            }
            Purpose::Closing => {
                if code >= 200 {
                    self.sessions.forget_tx(&tx);
                }
                return;
            }
        };
        let Some(leg) = self.sessions.leg_mut(&id, index) else {
            return;
        };
        leg.responded = true;
        settle_inquiry_timers(&mut self.timers, leg, code);
        if code < 200 && leg.cancel_wanted {
            // The CANCEL held back until now (RFC 3261 §9.1).
            self.cancel_leg(&id, index);
            return;
        }
        if code == 100 {
            return;
        }
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let leg_live = matches!(
            session.as_legs.get(index).map(|l| l.state),
            Some(LegState::Calling | LegState::Early)
        );
        if (200..300).contains(&code) {
            self.on_as_answer(&id, index, msg, leg_live);
            return;
        }
        if !leg_live || session.state != State::Proceeding {
            return;
        }
        let Some(leg) = session.as_legs.get_mut(index) else {
            return;
        };
        if code < 200 {
            leg.state = LegState::Early;
            leg.remote_tag = msg.to_tag().map(text);
            let reason = text(msg.reason().unwrap_or(b"Ringing"));
            self.relay_to_client(&id, code, &reason, Some(msg));
            if code == 180 || code == 183 {
                self.event(&id, "ringing", Some(code.to_string()));
            }
            return;
        }
        let reason = self.leg_refused(tx, &id, index, msg);
        self.event(
            &id,
            "as_rejected",
            Some([itoa::Buffer::new().format(code), " ", &reason].concat()),
        );
        self.after_leg_failure(&id, code, &reason);
    }

    /// Outbound leg `index` got the final refusal `msg` on its INVITE
    /// transaction `tx`: the leg is over and published; its reason phrase.
    pub(in crate::relay) fn leg_refused(
        &mut self,
        tx: ClientTxId,
        id: &str,
        index: usize,
        msg: &Message,
    ) -> String {
        self.sessions.forget_tx(&tx);
        let record = self.sessions.get_mut(id).and_then(|s| {
            let leg = s.as_legs.get_mut(index)?;
            leg.state = LegState::Failed;
            leg.ended_at = Some(Timestamp::now());
            s.leg_record(index)
        });
        if let Some(record) = record {
            self.publish(SessionChange::Leg(Box::new(record)));
        }
        text(msg.reason().unwrap_or(b"Failed"))
    }

    /// A 2xx from an AS: relayed once; a retransmission re-sends our 2xx
    /// as it was while the session lasts (or our ACK); a late answer on a
    /// leg we gave up is ACKed and hung up (RFC 3261 §15: a dialog nobody
    /// wants is confirmed, then ended).
    pub(in crate::relay) fn on_as_answer(
        &mut self,
        id: &str,
        index: usize,
        msg: &Message,
        leg_live: bool,
    ) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let proceeding = session.state == State::Proceeding;
        let Some(leg) = session.as_legs.get_mut(index) else {
            return;
        };
        if !leg_live {
            match leg.state {
                LegState::Answered => {
                    if let Some((code, ok)) = session.client_leg.final_response.clone() {
                        self.send_2xx(id, code, ok);
                    }
                }
                _ => self.late_answer(id, index, msg),
            }
            return;
        }
        learn_dialog(leg, msg);
        leg.state = LegState::Answered;
        if !proceeding {
            // Answered after we gave up (a CANCEL crossed the 2xx).
            self.hang_up_as_leg(id, index);
            return;
        }
        let code = msg.status().unwrap_or(200);
        let reason = text(msg.reason().unwrap_or(b"OK"));
        let client_flow = self.sessions_flow(id);
        let client_local = self.local_for(&client_flow);
        // Session timers (RFC 4028), each leg on its own.
        // The floor is read first: the session stays borrowed, and its
        // INVITE is read where it is, not copied.
        let min_se = self.d.config.min_session_expires;
        let inbound_timer = match self.sessions.get_mut(id) {
            Some(s) => s
                .client_leg
                .invite
                .as_ref()
                .and_then(|i| super::session_timer::inbound_timer_of(i, min_se)),
            None => return,
        };
        let outbound_timer = self.outbound_timer(msg);
        let timer_headers = inbound_timer
            .map(|t| super::session_timer::timer_headers_for(&t, false))
            .unwrap_or_default();
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let relayed = match legs::client_response(
            &client_local,
            &session.client_leg,
            code,
            &reason,
            Some(msg),
            &timer_headers,
        ) {
            Ok(bytes) => {
                session.client_leg.final_response = Some((code, bytes.clone()));
                Some(bytes)
            }
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "cannot relay the answer");
                None
            }
        };
        session.state = State::Answered;
        session.final_status = Some(code);
        if let Some(record) = session.leg_record(index) {
            self.publish(SessionChange::Leg(Box::new(record)));
        }
        if let Some(bytes) = relayed {
            self.send_2xx(id, code, bytes);
        }
        self.publish_by_id(id);
        self.event(
            id,
            "answered",
            Some([itoa::Buffer::new().format(code), " ", &reason].concat()),
        );
        self.fanout_answered(id);
        // Forked to several contacts: the first answer wins (RFC 3261 §16.7).
        self.cancel_pending(id);
        self.start_timers(id, inbound_timer, outbound_timer);
        self.schedule(
            self.d.config.ack_timeout,
            CoreTimer::NoAck {
                session: id.to_string(),
            },
        );
    }

    /// A 2xx on leg `index` that is no longer waiting for one (and not
    /// answered-unACKed, which its caller handles): our ACK was lost, the
    /// same again (RFC 3261 §13.2.2.4; a BYE we sent is retransmitted by
    /// its own transaction); on a leg we gave up, the dialog nobody wants
    /// is confirmed, then ended (§15).
    pub(in crate::relay) fn late_answer(&mut self, id: &str, index: usize, msg: &Message) {
        let Some(leg) = self.sessions.leg_mut(id, index) else {
            return;
        };
        match leg.state {
            LegState::Acked | LegState::Ended => self.ack_as_leg(id, index, None),
            LegState::Failed | LegState::Cancelled => {
                learn_dialog(leg, msg);
                leg.state = LegState::Answered;
                self.hang_up_as_leg(id, index);
            }
            LegState::Calling | LegState::Early | LegState::Answered => {}
        }
    }

    pub(in crate::relay) fn sessions_flow(&mut self, id: &str) -> Flow {
        self.sessions
            .get_mut(id)
            .map(|s| s.client_leg.flow)
            .unwrap_or_else(|| Flow::udp(self.d.listen, self.d.listen))
    }

    /// A provisional response of the AS relayed to the client.
    pub(in crate::relay) fn relay_to_client(
        &mut self,
        id: &str,
        code: u16,
        reason: &str,
        answer: Option<&Message>,
    ) {
        let client_flow = self.sessions_flow(id);
        let local = self.local_for(&client_flow);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        match legs::client_response(&local, &session.client_leg, code, reason, answer, &[]) {
            Ok(bytes) => self
                .d
                .layer
                .respond(&session.client_leg.invite_tx, code, bytes),
            Err(e) => tracing::warn!(session = %id, error = %e, code, "cannot relay a response"),
        }
    }

    /// No answer, or a transport error, on one of our requests.
    pub(in crate::relay) fn on_request_failed(&mut self, tx: ClientTxId) {
        let Some((id, purpose)) = self.sessions.tx(&tx) else {
            return;
        };
        match purpose {
            Purpose::AsInvite(index) => {
                self.sessions.forget_tx(&tx);
                self.give_up_leg(&id, index, "timeout");
            }
            Purpose::Takeover(index) => {
                self.sessions.forget_tx(&tx);
                self.takeover_gave_up(&id, index);
            }
            Purpose::Relay(server) => self.on_relayed_response(tx, &id, server, None),
            Purpose::TransferReinvite => self.on_transfer_reinvite_response(tx, &id, None),
            Purpose::Closing => self.sessions.forget_tx(&tx),
        }
    }

    /// An AS leg that will not answer: failover, or 408 to the client.
    pub(in crate::relay) fn give_up_leg(&mut self, id: &str, index: usize, why: &str) {
        if self.takeover_gave_up(id, index) {
            return;
        }
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let Some(leg) = session.as_legs.get_mut(index) else {
            return;
        };
        if session.state != State::Proceeding
            || !matches!(leg.state, LegState::Calling | LegState::Early)
        {
            return;
        }
        leg.state = LegState::Failed;
        leg.ended_at = Some(Timestamp::now());
        let record = session.leg_record(index);
        self.cancel_leg(id, index);
        if let Some(record) = record {
            self.publish(SessionChange::Leg(Box::new(record)));
        }
        self.event(id, "as_timeout", Some(why.to_string()));
        self.after_leg_failure(id, 408, "Request Timeout");
    }

    /// An outbound leg failed with `code`: other legs still pending are
    /// waited for; then the next app server (failover on 408 and 5xx, SPEC
    /// §2), or the best failure to the client (RFC 3261 §16.7).
    fn after_leg_failure(&mut self, id: &str, code: u16, reason: &str) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        session.note_failure(code, reason);
        if session.pending_legs() > 0 {
            return;
        }
        let failover = code == 408 || (500..600).contains(&code);
        if failover && !session.candidates.is_empty() {
            self.inquire_next(id);
            return;
        }
        // A fan-out session keeps its app server's own answer: the client
        // hears only the best of the group's, mapped once (see fanout).
        let (code, reason) = if session.fanout {
            session
                .best_failure
                .clone()
                .unwrap_or((code, reason.to_string()))
        } else {
            session.refusal().unwrap_or_else(|| relayable(code, reason))
        };
        let why = if failover { "as_failure" } else { "rejected" };
        self.fail(id, code, &reason, why);
    }
}

/// The dialog a 2xx creates on an outbound leg (RFC 3261 §12.1.2): the
/// peer's tag, its Contact as remote target, and the Record-Route values
/// in reverse order as route set.
pub(super) fn learn_dialog(leg: &mut AsLeg, answer: &Message) {
    leg.remote_tag = answer.to_tag().map(text);
    leg.remote_target = contact_of(answer);
    let mut routes = legs::record_routes(answer);
    routes.reverse();
    leg.route_set = routes;
}
