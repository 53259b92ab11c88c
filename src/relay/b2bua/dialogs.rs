//! Step 6 and the established dialog: ACK, BYE from either side, CANCEL.

use super::*;

impl Core {
    /// An ACK for a 2xx (RFC 3261 §13.2.2.4): the client's confirms the
    /// session (step 6); later ones may close a relayed re-INVITE.
    pub(in crate::relay) fn on_ack(&mut self, msg: &Message) {
        let Some((id, as_leg)) = self.find_dialog(msg) else {
            return;
        };
        let answered = self
            .sessions
            .get_mut(&id)
            .is_some_and(|s| s.state == State::Answered);
        if as_leg.is_none() && answered {
            self.confirm(&id, msg);
        } else {
            self.relay_reinvite_ack(&id, as_leg, msg);
        }
    }

    /// Step 6: the client's ACK for our 2xx confirms the session. It is
    /// relayed with its body: after an INVITE without an offer, the 2xx
    /// carried the offer and the ACK carries the answer (RFC 3261 §13.2.1).
    fn confirm(&mut self, id: &str, ack: &Message) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let now = Timestamp::now();
        session.state = State::Established;
        session.answered_at = Some(now);
        // Only re-sent while the ACK is awaited (a retransmitted 2xx of
        // the AS on a leg still answered): a held session need not keep it.
        session.client_leg.final_response = None;
        // Its INVITE is held while the session lasts and read again only by
        // mid-call requests: the views validate kept (about 700 bytes a
        // session) go once the transaction's copy expires too.
        if let Some(invite) = &mut session.client_leg.invite {
            invite.forget_views();
        }
        let Some(index) = session
            .as_legs
            .iter()
            .position(|l| l.state == LegState::Answered)
        else {
            return;
        };
        let content_type = ack
            .get(crate::sip::message::HeaderName::ContentType)
            .and_then(|h| h.value_str());
        self.ack_as_leg(id, index, content_type.map(|ct| (ct, ack.body())));
        self.open_segment(id, now);
        self.publish_by_id(id);
        self.event(id, "established", None);
    }

    /// ACKs the 2xx of an outbound leg's INVITE (RFC 3261 §13.2.2.4), with
    /// `body` if any; an answered leg becomes acked. A 2xx retransmission
    /// gets the ACK sent before.
    pub(in crate::relay) fn ack_as_leg(
        &mut self,
        id: &str,
        index: usize,
        body: Option<(&str, &[u8])>,
    ) {
        let flow = self.outbound_flow(id, index);
        let local = self.local_for(&flow);
        let Some(leg) = self.sessions.leg_mut(id, index) else {
            return;
        };
        if leg.state == LegState::Answered {
            leg.state = LegState::Acked;
        }
        let ack = match &leg.ack {
            Some(sent) => Some(sent.clone()),
            None => {
                let mut r = legs::InDialog::bare(Method::Ack, 1);
                r.body = body;
                legs::as_request(&local, leg, &r)
                    .ok()
                    .map(Message::into_bytes)
            }
        };
        if let Some(ack) = ack {
            leg.ack = Some(ack.clone());
            let _ = self.d.layer.send_stateless(&leg.flow, ack);
        }
    }

    /// The session of a request in the client's dialog: Call-ID, the
    /// client's tag (the From tag of what the client sends) and ours (its
    /// To tag), which tells apart the dialogs of a fan-out (RFC 3261 §12).
    fn client_dialog_of(&self, call_id: &str, msg: &Message) -> Option<String> {
        // Borrowed when valid UTF-8, as they nearly always are: the lookup
        // builds no key, and only the session id found is copied.
        let tag = String::from_utf8_lossy(msg.from_tag()?);
        let ours = msg.to_tag().map(String::from_utf8_lossy);
        self.sessions
            .by_client_request(call_id, &tag, ours.as_deref())
    }

    /// The session and side of an in-dialog request: `None` for the AS
    /// side's leg index when it came from the client.
    pub(in crate::relay) fn find_dialog(&self, msg: &Message) -> Option<(String, Option<usize>)> {
        let call_id = String::from_utf8_lossy(msg.call_id().ok()?);
        if let Some(id) = self.client_dialog_of(&call_id, msg) {
            return Some((id, None));
        }
        self.sessions
            .by_as_call_id(&call_id)
            .map(|(id, leg)| (id, Some(leg)))
    }

    /// BYE from either side: answered, relayed to the other side. A BYE
    /// on an outbound leg that is not the session's answered one ends only
    /// that leg's dialog (if it had one), not the session.
    pub(in crate::relay) fn on_bye(&mut self, tx: &ServerTxId, msg: &Message) {
        let Some((id, as_leg)) = self.find_dialog(msg) else {
            self.respond(tx, msg, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let live = matches!(session.state, State::Answered | State::Established);
        let active = session.answered_leg();
        if let Some(index) = as_leg.filter(|i| live && active != Some(*i)) {
            // A leg we already hung up (a late 2xx we ACKed and BYEd) had a
            // dialog: the crossing BYE gets 200. Others never had one.
            let had_dialog = session
                .as_legs
                .get(index)
                .is_some_and(|l| l.state == LegState::Ended && l.remote_tag.is_some());
            if had_dialog {
                self.respond(tx, msg, 200, "OK", &[]);
            } else {
                self.respond(tx, msg, 481, "Call/Transaction Does Not Exist", &[]);
            }
            return;
        }
        if !live {
            self.respond(tx, msg, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        }
        self.respond(tx, msg, 200, "OK", &[]);
        match as_leg {
            None => {
                if let Some(index) = active {
                    self.hang_up_as_leg_with_session(&id, index);
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
        if cancels.is_some_and(|invite| {
            self.fanout_cancel(tx, msg, &invite) || self.replaces_cancel(tx, msg, &invite)
        }) {
            return;
        }
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

    /// Gives up every outbound leg still waiting for its final answer.
    pub(in crate::relay) fn cancel_pending(&mut self, id: &str) {
        let pending: Vec<usize> = self
            .sessions
            .get_mut(id)
            .map(|s| {
                s.as_legs
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| matches!(l.state, LegState::Calling | LegState::Early))
                    .map(|(i, _)| i)
                    .collect()
            })
            .unwrap_or_default();
        for index in pending {
            if let Some(leg) = self.sessions.leg_mut(id, index) {
                leg.state = LegState::Cancelled;
                leg.ended_at = Some(Timestamp::now());
            }
            self.cancel_leg(id, index);
        }
    }

    /// CANCELs the INVITE of an outbound leg. RFC 3261 §9.1: not before a
    /// provisional response came; until then it is only wanted, and sent
    /// when the first one arrives (a final answer makes it moot).
    pub(in crate::relay) fn cancel_leg(&mut self, id: &str, index: usize) {
        let Some(leg) = self.sessions.leg_mut(id, index) else {
            return;
        };
        if !leg.responded {
            leg.cancel_wanted = true;
            return;
        }
        leg.cancel_wanted = false;
        let flow = leg.flow;
        let Ok(cancel) = legs::as_cancel(leg) else {
            return;
        };
        if let Ok(ctx) = self.d.layer.request(cancel, flow) {
            self.sessions.index_tx(ctx, id, Purpose::Closing);
        }
    }

    /// Sends BYE on an AS leg that ends while its session goes on (or
    /// whose session ended already), and publishes the leg's end.
    pub(in crate::relay) fn hang_up_as_leg(&mut self, id: &str, index: usize) {
        self.hang_up_as_leg_with_session(id, index);
        let record = self.sessions.get_mut(id).and_then(|s| s.leg_record(index));
        if let Some(record) = record {
            self.publish(SessionChange::Leg(Box::new(record)));
        }
    }

    /// Sends BYE on the AS leg of a session that ends with it. An answered
    /// leg not yet ACKed is ACKed first: a dialog is confirmed before it is
    /// ended (RFC 3261 §15). The leg is not written again: its row takes
    /// the session's end when read (see
    /// [`crate::store::sessions::LegRecord::ended_at`]).
    pub(in crate::relay) fn hang_up_as_leg_with_session(&mut self, id: &str, index: usize) {
        let unacked = self
            .sessions
            .get_mut(id)
            .and_then(|s| s.as_legs.get(index))
            .is_some_and(|l| l.state == LegState::Answered);
        if unacked {
            self.ack_as_leg(id, index, None);
        }
        let flow = self.outbound_flow(id, index);
        let local = self.local_for(&flow);
        let Some(leg) = self
            .sessions
            .get_mut(id)
            .and_then(|s| s.as_legs.get_mut(index))
        else {
            return;
        };
        leg.state = LegState::Ended;
        leg.ended_at = Some(Timestamp::now());
        leg.local_cseq += 1;
        let bye = legs::as_request(
            &local,
            leg,
            &legs::InDialog::bare(Method::Bye, leg.local_cseq),
        );
        if let Ok(bye) = bye {
            if let Ok(ctx) = self.d.layer.request(bye, flow) {
                self.sessions.index_tx(ctx, id, Purpose::Closing);
            }
        }
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
        );
        if let Ok(bye) = bye {
            if let Ok(ctx) = self.d.layer.request(bye, flow) {
                self.sessions.index_tx(ctx, id, Purpose::Closing);
            }
        }
    }
}
