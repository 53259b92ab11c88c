//! Step 5: what app servers answer, relayed to the client; failover when
//! they refuse or stay silent.

use super::*;

impl Core {
    /// Step 5: responses of app servers (and of our BYEs and CANCELs).
    pub(in crate::relay) fn on_response(&mut self, tx: ClientTxId, msg: &Message) {
        let Some((id, purpose)) = self.sessions.tx(&tx) else {
            return;
        };
        let Some(code) = msg.status() else { return };
        let index = match purpose {
            Purpose::AsInvite(index) => index,
            Purpose::Relay(server) => {
                self.on_relayed_response(tx, server, Some(msg));
                return;
            }
            Purpose::Closing => {
                if code >= 200 {
                    self.sessions.forget_tx(&tx);
                }
                return;
            }
        };
        if let Some(leg) = self
            .sessions
            .get_mut(&id)
            .and_then(|s| s.as_legs.get_mut(index))
        {
            leg.responded = true;
        }
        if code == 100 {
            return;
        }
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let leg_live = matches!(
            session.as_legs[index].state,
            LegState::Calling | LegState::Early
        );
        if (200..300).contains(&code) {
            self.on_as_answer(&id, index, msg, leg_live);
            return;
        }
        if !leg_live || session.state != State::Proceeding {
            return;
        }
        let leg = &mut session.as_legs[index];
        if code < 200 {
            leg.state = LegState::Early;
            leg.remote_tag = msg.to_header().ok().and_then(|t| t.tag().map(text));
            let reason = text(msg.reason().unwrap_or(b"Ringing"));
            self.relay_to_client(&id, code, &reason, Some(msg));
            if code == 180 || code == 183 {
                self.event(&id, "ringing", Some(code.to_string()));
            }
            return;
        }
        leg.state = LegState::Failed;
        leg.ended_at = Some(Timestamp::now());
        let record = session.as_leg_record(&session.as_legs[index]);
        self.sessions.forget_tx(&tx);
        self.publish(SessionChange::Leg(Box::new(record)));
        let reason = text(msg.reason().unwrap_or(b"Failed"));
        self.event(&id, "as_rejected", Some(format!("{code} {reason}")));
        self.after_leg_failure(&id, code, &reason);
    }

    /// A 2xx from an AS: relayed once, retransmissions re-send our 2xx (or
    /// our ACK); a late answer on a leg we gave up is ACKed and hung up.
    pub(in crate::relay) fn on_as_answer(
        &mut self,
        id: &str,
        index: usize,
        msg: &Message,
        leg_live: bool,
    ) {
        let local = {
            let Some(s) = self.sessions.get_mut(id) else {
                return;
            };
            let flow = s.as_legs[index].flow;
            self.local_for(&flow)
        };
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let leg = &mut session.as_legs[index];
        if !leg_live {
            match leg.state {
                LegState::Answered => {
                    if let Some(ok) = session.client_leg.final_response.clone() {
                        self.d.layer.respond(&session.client_leg.invite_tx, 200, ok);
                    }
                }
                LegState::Acked => {
                    if let Ok(ack) = legs::as_ack(&local, leg) {
                        let _ = self.d.layer.send_stateless(&leg.flow, ack);
                    }
                }
                LegState::Failed | LegState::Cancelled => {
                    // An AS we gave up on answered after all (§15: a
                    // dialog nobody wants is confirmed, then ended).
                    leg.remote_tag = msg.to_header().ok().and_then(|t| t.tag().map(text));
                    leg.remote_target = contact_of(msg);
                    if let Ok(ack) = legs::as_ack(&local, leg) {
                        let _ = self.d.layer.send_stateless(&leg.flow, ack);
                    }
                    self.hang_up_as_leg(id, index);
                }
                _ => {}
            }
            return;
        }
        leg.remote_tag = msg.to_header().ok().and_then(|t| t.tag().map(text));
        leg.remote_target = contact_of(msg);
        if session.state != State::Proceeding {
            // Answered after we gave up (CANCEL crossed the 200): ACK, BYE.
            leg.state = LegState::Ended;
            if let Ok(ack) = legs::as_ack(&local, leg) {
                let _ = self.d.layer.send_stateless(&leg.flow, ack);
            }
            self.hang_up_as_leg(id, index);
            return;
        }
        leg.state = LegState::Answered;
        let code = msg.status().unwrap_or(200);
        let reason = text(msg.reason().unwrap_or(b"OK"));
        let client_flow = self.sessions_flow(id);
        let client_local = self.local_for(&client_flow);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        // Session timers (RFC 4028), each leg on its own.
        let inbound_timer = Core::inbound_timer(&session.client_leg.invite);
        let outbound_timer = Core::outbound_timer(msg);
        let timer_headers: Vec<(&'static str, String)> = inbound_timer
            .map(|t| {
                vec![
                    ("Session-Expires", format!("{};refresher=uac", t.interval)),
                    ("Require", "timer".to_string()),
                ]
            })
            .unwrap_or_default();
        match legs::client_response(
            &client_local,
            &session.client_leg,
            code,
            &reason,
            Some(msg),
            &timer_headers,
        ) {
            Ok(bytes) => {
                session.client_leg.final_response = Some(bytes.clone());
                self.d
                    .layer
                    .respond(&session.client_leg.invite_tx, code, bytes);
            }
            Err(e) => tracing::warn!(session = %id, error = %e, "cannot relay the answer"),
        }
        session.state = State::Answered;
        session.final_status = Some(code);
        let record = session.as_leg_record(&session.as_legs[index]);
        self.publish(SessionChange::Leg(Box::new(record)));
        self.publish_by_id(id);
        self.event(id, "answered", Some(format!("{code} {reason}")));
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
            Purpose::Relay(server) => self.on_relayed_response(tx, server, None),
            Purpose::Closing => self.sessions.forget_tx(&tx),
        }
    }

    /// An AS leg that will not answer: failover, or 408 to the client.
    pub(in crate::relay) fn give_up_leg(&mut self, id: &str, index: usize, why: &str) {
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
        if leg.state == LegState::Early {
            if let Ok(Ok(cancel)) =
                legs::as_cancel(leg).map(|b| parse_datagram(b, &Limits::default()))
            {
                if let Ok(ctx) = self.d.layer.request(cancel, leg.flow) {
                    self.sessions.index_tx(ctx, id, Purpose::Closing);
                }
            }
        }
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let leg = &mut session.as_legs[index];
        leg.state = LegState::Failed;
        leg.ended_at = Some(Timestamp::now());
        let record = session.as_leg_record(&session.as_legs[index]);
        self.publish(SessionChange::Leg(Box::new(record)));
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
        let (code, reason) = session
            .best_failure
            .clone()
            .unwrap_or((code, reason.to_string()));
        let why = if failover { "as_failure" } else { "rejected" };
        self.fail(id, code, &reason, why);
    }
}
