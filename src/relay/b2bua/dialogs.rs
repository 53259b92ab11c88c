//! Step 6 and the established dialog: ACK, BYE from either side, CANCEL.

use super::*;

impl Core {
    /// Step 6: the client's ACK for our 2xx confirms the session.
    pub(in crate::relay) fn on_client_ack(&mut self, msg: &Message) {
        let Some(id) = self.client_dialog_of(msg) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if session.state != State::Answered {
            return;
        }
        session.state = State::Established;
        session.answered_at = Some(Timestamp::now());
        let Some(index) = session
            .as_legs
            .iter()
            .position(|l| l.state == LegState::Answered)
        else {
            return;
        };
        let flow = session.as_legs[index].flow;
        let local = self.local_for(&flow);
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let leg = &mut session.as_legs[index];
        leg.state = LegState::Acked;
        if let Ok(ack) = legs::as_ack(&local, leg) {
            let _ = self.d.layer.send_stateless(&leg.flow, ack);
        }
        self.publish_by_id(&id);
        self.event(&id, "established", None);
    }

    /// The session of a request in the client's dialog (Call-ID and the
    /// client's tag, which is the From tag of what the client sends).
    pub(in crate::relay) fn client_dialog_of(&self, msg: &Message) -> Option<String> {
        let call_id = text(msg.call_id().ok()?);
        let tag = text(msg.from_header().ok()?.tag()?);
        self.sessions.by_client_dialog(&call_id, &tag)
    }

    /// The session and side of an in-dialog request: `None` for the AS
    /// side's leg index when it came from the client.
    pub(in crate::relay) fn find_dialog(&self, msg: &Message) -> Option<(String, Option<usize>)> {
        if let Some(id) = self.client_dialog_of(msg) {
            return Some((id, None));
        }
        let call_id = text(msg.call_id().ok()?);
        self.sessions
            .by_as_call_id(&call_id)
            .map(|(id, leg)| (id, Some(leg)))
    }

    /// BYE from either side: answered, relayed to the other side.
    pub(in crate::relay) fn on_bye(&mut self, tx: &ServerTxId, msg: &Message) {
        let Some((id, as_leg)) = self.find_dialog(msg) else {
            self.respond(tx, msg, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        let live = self
            .sessions
            .get_mut(&id)
            .is_some_and(|s| matches!(s.state, State::Answered | State::Established));
        if !live {
            self.respond(tx, msg, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        }
        self.respond(tx, msg, 200, "OK", &[]);
        match as_leg {
            None => {
                if let Some(index) = self.sessions.get_mut(&id).and_then(|s| {
                    s.as_legs
                        .iter()
                        .position(|l| matches!(l.state, LegState::Acked | LegState::Answered))
                }) {
                    self.hang_up_as_leg(&id, index);
                }
                let why = self
                    .sessions
                    .get_mut(&id)
                    .map_or("client_bye", |s| s.bye_reason(true));
                self.end(&id, why, None);
            }
            Some(_) => {
                self.hang_up_client(&id);
                let why = self
                    .sessions
                    .get_mut(&id)
                    .map_or("as_bye", |s| s.bye_reason(false));
                self.end(&id, why, None);
            }
        }
    }

    /// CANCEL from the client before the final answer (RFC 3261 §9.2):
    /// 200 to the CANCEL, CANCEL to every pending AS leg, 487 to the client.
    pub(in crate::relay) fn on_cancel(
        &mut self,
        tx: &ServerTxId,
        msg: &Message,
        cancels: Option<ServerTxId>,
    ) {
        let Some(id) = cancels.and_then(|invite| self.sessions.by_invite_tx(&invite)) else {
            self.respond(tx, msg, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        self.respond(tx, msg, 200, "OK", &[]);
        if self
            .sessions
            .get_mut(&id)
            .is_some_and(|s| s.state == State::Proceeding)
        {
            self.cancel_pending(&id);
            self.fail(&id, 487, "Request Terminated", "cancel");
        }
    }

    pub(in crate::relay) fn cancel_pending(&mut self, id: &str) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let mut sent = Vec::new();
        for leg in session.as_legs.iter_mut() {
            if matches!(leg.state, LegState::Calling | LegState::Early) {
                leg.state = LegState::Cancelled;
                leg.ended_at = Some(Timestamp::now());
                if let Ok(Ok(cancel)) =
                    legs::as_cancel(leg).map(|b| parse_datagram(b, &Limits::default()))
                {
                    if let Ok(ctx) = self.d.layer.request(cancel, leg.flow) {
                        sent.push(ctx);
                    }
                }
            }
        }
        for ctx in sent {
            self.sessions.index_tx(ctx, id, Purpose::Closing);
        }
    }

    /// Sends BYE on an AS leg.
    pub(in crate::relay) fn hang_up_as_leg(&mut self, id: &str, index: usize) {
        let Some(flow) = self
            .sessions
            .get_mut(id)
            .and_then(|s| s.as_legs.get(index).map(|l| l.flow))
        else {
            return;
        };
        let local = self.local_for(&flow);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let leg = &mut session.as_legs[index];
        leg.state = LegState::Ended;
        leg.ended_at = Some(Timestamp::now());
        leg.local_cseq += 1;
        let bye = legs::as_request(
            &local,
            leg,
            &legs::InDialog::bare(Method::Bye, leg.local_cseq),
        )
        .ok()
        .and_then(|b| parse_datagram(b, &Limits::default()).ok());
        let record = session.as_leg_record(&session.as_legs[index]);
        if let Some(bye) = bye {
            if let Ok(ctx) = self.d.layer.request(bye, flow) {
                self.sessions.index_tx(ctx, id, Purpose::Closing);
            }
        }
        self.publish(SessionChange::Leg(Box::new(record)));
    }

    /// Sends BYE to the client over the flow it used.
    pub(in crate::relay) fn hang_up_client(&mut self, id: &str) {
        let flow = self.sessions_flow(id);
        let local = self.local_for(&flow);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let leg = &mut session.client_leg;
        leg.local_cseq += 1;
        let bye = legs::client_request(
            &local,
            leg,
            &legs::InDialog::bare(Method::Bye, leg.local_cseq),
        )
        .ok()
        .and_then(|b| parse_datagram(b, &Limits::default()).ok());
        if let Some(bye) = bye {
            if let Ok(ctx) = self.d.layer.request(bye, flow) {
                self.sessions.index_tx(ctx, id, Purpose::Closing);
            }
        }
    }
}
