//! The call flow of SPEC §2: reception, authentication, search, inquiry,
//! response relay, confirmation, and the ways a session ends.

use super::core::{Core, CoreTimer};
use super::legs::{self, Inquiry};
use super::request_view::RequestContext;
use super::session::{AsLeg, ClientLeg, LegState, Session, State};
use super::table::Purpose;
use crate::sip::message::{parse_datagram, Limits, Message, Method, NameAddr};
use crate::sip::transaction::{ClientTxId, ServerTxId};
use crate::sip::transport::Flow;
use crate::store::sessions::SessionChange;
use crate::store::{new_id, Timestamp};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The first Contact URI of a message.
fn contact_of(msg: &Message) -> Option<String> {
    msg.contacts().filter_map(Result::ok).find_map(|c| match c {
        crate::sip::message::Contact::Addr(a) => Some(uri_of(&a)),
        crate::sip::message::Contact::Star => None,
    })
}

/// The URI of a From/To/Contact value.
fn uri_of(na: &NameAddr<'_>) -> String {
    text(na.uri().raw())
}

impl Core {
    /// Steps 1–4 for a new INVITE from a client.
    pub(super) fn on_invite(&mut self, tx: ServerTxId, msg: Message, flow: Flow) {
        let Some(client) = self.authenticate(&tx, &msg, &flow, true) else {
            return;
        };
        if let Some(max) = client.max_sessions {
            if self.sessions.live_for_client(&client.id) >= max.max(0) as u32 {
                self.respond(&tx, &msg, 403, "Session Limit Reached", &[]);
                return;
            }
        }
        let catalog = self.d.catalog.snapshot();
        let ctx = RequestContext {
            client_id: Some(&client.id),
            source: Some(flow.remote.ip()),
        };
        let Some(rule) = catalog.rules.search(&msg, &ctx) else {
            self.respond(&tx, &msg, 404, "No Service Matches", &[]);
            return;
        };
        let Some(entry) = catalog.services.get(&rule.rule.service_id) else {
            self.respond(
                &tx,
                &msg,
                503,
                "Service Unavailable",
                &[("Retry-After", "30".into())],
            );
            return;
        };
        let candidates: Vec<String> = catalog
            .select(entry, true)
            .candidates
            .iter()
            .map(|a| a.id.clone())
            .collect();
        if candidates.is_empty() {
            self.respond(
                &tx,
                &msg,
                503,
                "No Application Server Available",
                &[("Retry-After", "30".into())],
            );
            return;
        }
        let (Ok(from), Ok(to), Ok(call_id)) = (msg.from_header(), msg.to_header(), msg.call_id())
        else {
            self.respond(&tx, &msg, 400, "Malformed Dialog Headers", &[]);
            return;
        };
        let remote_target = contact_of(&msg).unwrap_or_else(|| uri_of(&from));
        let now = Timestamp::now();
        let client_leg = ClientLeg {
            leg_id: new_id(),
            invite_tx: tx,
            flow,
            call_id: text(call_id),
            remote_tag: from.tag().map(text).unwrap_or_default(),
            local_tag: legs::random_tag(),
            remote_target,
            local_cseq: 0,
            final_response: None,
            invite: msg.clone(),
        };
        let session = Session {
            id: new_id(),
            request_id: new_id(),
            state: State::Proceeding,
            caller_uri: uri_of(&from),
            callee_uri: text(msg.request_uri_raw().unwrap_or_default()),
            client: Some(client),
            service_id: entry.service.id.clone(),
            rule_id: rule.rule.id.clone(),
            attributes: rule
                .rule
                .set
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            client_leg,
            as_legs: Vec::new(),
            candidates,
            created_at: now,
            answered_at: None,
            ended_at: None,
            end_reason: None,
            final_status: None,
        };
        let _ = to;
        let id = session.id.clone();
        self.publish_session(&session);
        self.publish(SessionChange::Leg(Box::new(session.client_leg_record())));
        self.event(
            &id,
            "created",
            Some(format!(
                "rule {} service {}",
                session.rule_id, session.service_id
            )),
        );
        self.sessions.insert(session);
        self.inquire_next(&id, None);
    }

    /// Step 4: INVITE the next app server of the session's candidates. With
    /// none left, the client gets `failure` (or 503).
    fn inquire_next(&mut self, id: &str, failure: Option<(u16, String)>) {
        let catalog = self.d.catalog.snapshot();
        loop {
            let Some(session) = self.sessions.get_mut(id) else {
                return;
            };
            if session.candidates.is_empty() {
                let (code, reason) =
                    failure.unwrap_or((503, "No Application Server Available".into()));
                self.fail(id, code, &reason, "as_failure");
                return;
            }
            let as_id = session.candidates.remove(0);
            let (Some(app_server), Some(target)) =
                (catalog.app_servers.get(&as_id), catalog.targets.get(&as_id))
            else {
                continue;
            };
            let flow = Flow {
                protocol: target.protocol,
                remote: target.addr,
                local: self.d.listen,
                connection: 0,
            };
            let local = self.local_for(&flow);
            let Some(session) = self.sessions.get_mut(id) else {
                return;
            };
            let call_id = legs::new_call_id(&local);
            let local_tag = legs::random_tag();
            let request_uri = as_request_uri(&app_server.uri, &session.client_leg.invite);
            let inv = &session.client_leg.invite;
            let from = inv.from_header().map(|f| uri_of(&f)).unwrap_or_default();
            let to = inv.to_header().map(|t| text(t.raw())).unwrap_or_default();
            let max_forwards = inv
                .max_forwards()
                .ok()
                .flatten()
                .unwrap_or(70)
                .saturating_sub(1);
            let pai = session.client.as_ref().map(|c| match &c.display_name {
                Some(d) => format!(
                    "\"{}\" <sip:{}@{}>",
                    d.replace('"', ""),
                    c.username,
                    c.realm
                ),
                None => format!("<sip:{}@{}>", c.username, c.realm),
            });
            let inquiry = Inquiry {
                request_uri: &request_uri,
                from: &format!("<{from}>"),
                to: &to,
                call_id: &call_id,
                local_tag: &local_tag,
                max_forwards,
                asserted_identity: pai.as_deref(),
                session_id: &session.id,
                attributes: &session.attributes,
            };
            let built = legs::as_invite(&local, &flow, &inquiry, inv)
                .ok()
                .and_then(|b| parse_datagram(b, &Limits::default()).ok());
            let Some(invite) = built else {
                tracing::warn!(session = %id, app_server = %as_id, "cannot build the inquiry");
                continue;
            };
            let Ok(tx) = self.d.layer.request(invite.clone(), flow) else {
                continue;
            };
            let leg = AsLeg {
                leg_id: new_id(),
                app_server_id: as_id.clone(),
                flow,
                invite,
                invite_tx: tx,
                request_uri,
                call_id: call_id.clone(),
                local_tag,
                remote_tag: None,
                remote_target: None,
                local_cseq: 1,
                responded: false,
                state: LegState::Calling,
                created_at: Timestamp::now(),
                ended_at: None,
            };
            session.as_legs.push(leg);
            let index = session.as_legs.len() - 1;
            let ring = catalog
                .services
                .get(&session.service_id)
                .and_then(|e| e.service.ring_timeout_seconds)
                .map(|s| std::time::Duration::from_secs(s.max(1) as u64))
                .unwrap_or(self.d.config.timer_c);
            let record = session.as_leg_record(&session.as_legs[index]);
            self.sessions.index_as_leg(&call_id, id, index);
            self.sessions.index_tx(tx, id, Purpose::AsInvite(index));
            self.publish(SessionChange::Leg(Box::new(record)));
            self.event(id, "inquiry", Some(format!("app server {as_id}")));
            self.schedule(
                ring,
                CoreTimer::Ring {
                    session: id.to_string(),
                    leg: index,
                },
            );
            self.schedule(
                self.d.config.response_timeout,
                CoreTimer::Silent {
                    session: id.to_string(),
                    leg: index,
                },
            );
            return;
        }
    }

    /// Step 5: responses of app servers (and of our BYEs and CANCELs).
    pub(super) fn on_response(&mut self, tx: ClientTxId, msg: &Message) {
        let Some((id, purpose)) = self.sessions.tx(&tx) else {
            return;
        };
        let Some(code) = msg.status() else { return };
        let Purpose::AsInvite(index) = purpose else {
            if code >= 200 {
                self.sessions.forget_tx(&tx);
            }
            return;
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
        // Failover (SPEC §2): the next AS on 408 or 5xx.
        if code == 408 || (500..600).contains(&code) {
            self.inquire_next(&id, Some((code, reason)));
        } else {
            self.fail(&id, code, &reason, "rejected");
        }
    }

    /// A 2xx from an AS: relayed once, retransmissions re-send our 2xx (or
    /// our ACK); a late answer on a leg we gave up is ACKed and hung up.
    fn on_as_answer(&mut self, id: &str, index: usize, msg: &Message, leg_live: bool) {
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
        match legs::client_response(&client_local, &session.client_leg, code, &reason, Some(msg)) {
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
        self.schedule(
            self.d.config.ack_timeout,
            CoreTimer::NoAck {
                session: id.to_string(),
            },
        );
    }

    fn sessions_flow(&mut self, id: &str) -> Flow {
        self.sessions
            .get_mut(id)
            .map(|s| s.client_leg.flow)
            .unwrap_or_else(|| Flow::udp(self.d.listen, self.d.listen))
    }

    /// A provisional response of the AS relayed to the client.
    fn relay_to_client(&mut self, id: &str, code: u16, reason: &str, answer: Option<&Message>) {
        let client_flow = self.sessions_flow(id);
        let local = self.local_for(&client_flow);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        match legs::client_response(&local, &session.client_leg, code, reason, answer) {
            Ok(bytes) => self
                .d
                .layer
                .respond(&session.client_leg.invite_tx, code, bytes),
            Err(e) => tracing::warn!(session = %id, error = %e, code, "cannot relay a response"),
        }
    }

    /// No answer, or a transport error, on one of our requests.
    pub(super) fn on_request_failed(&mut self, tx: ClientTxId) {
        let Some((id, purpose)) = self.sessions.tx(&tx) else {
            return;
        };
        self.sessions.forget_tx(&tx);
        if let Purpose::AsInvite(index) = purpose {
            self.give_up_leg(&id, index, "timeout");
        }
    }

    /// An AS leg that will not answer: failover, or 408 to the client.
    fn give_up_leg(&mut self, id: &str, index: usize, why: &str) {
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
        self.inquire_next(id, Some((408, "Request Timeout".into())));
    }

    /// Step 6: the client's ACK for our 2xx confirms the session.
    pub(super) fn on_client_ack(&mut self, msg: &Message) {
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
    fn client_dialog_of(&self, msg: &Message) -> Option<String> {
        let call_id = text(msg.call_id().ok()?);
        let tag = text(msg.from_header().ok()?.tag()?);
        self.sessions.by_client_dialog(&call_id, &tag)
    }

    /// The session and side of an in-dialog request: `None` for the AS
    /// side's leg index when it came from the client.
    pub(super) fn find_dialog(&self, msg: &Message) -> Option<(String, Option<usize>)> {
        if let Some(id) = self.client_dialog_of(msg) {
            return Some((id, None));
        }
        let call_id = text(msg.call_id().ok()?);
        self.sessions
            .by_as_call_id(&call_id)
            .map(|(id, leg)| (id, Some(leg)))
    }

    /// BYE from either side: answered, relayed to the other side.
    pub(super) fn on_bye(&mut self, tx: &ServerTxId, msg: &Message) {
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
                self.end(&id, "client_bye", None);
            }
            Some(_) => {
                self.hang_up_client(&id);
                self.end(&id, "as_bye", None);
            }
        }
    }

    /// CANCEL from the client before the final answer (RFC 3261 §9.2):
    /// 200 to the CANCEL, CANCEL to every pending AS leg, 487 to the client.
    pub(super) fn on_cancel(
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

    fn cancel_pending(&mut self, id: &str) {
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
    fn hang_up_as_leg(&mut self, id: &str, index: usize) {
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
        let bye = legs::as_in_dialog(&local, leg, Method::Bye, &[])
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
    fn hang_up_client(&mut self, id: &str) {
        let flow = self.sessions_flow(id);
        let local = self.local_for(&flow);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let bye = legs::client_in_dialog(&local, &mut session.client_leg, Method::Bye, &[])
            .ok()
            .and_then(|b| parse_datagram(b, &Limits::default()).ok());
        if let Some(bye) = bye {
            if let Ok(ctx) = self.d.layer.request(bye, flow) {
                self.sessions.index_tx(ctx, id, Purpose::Closing);
            }
        }
    }

    /// Ends a session that never got a 2xx: the client gets `code`.
    fn fail(&mut self, id: &str, code: u16, reason: &str, why: &str) {
        self.relay_to_client(id, code, reason, None);
        self.end(id, why, Some(code));
    }

    /// Marks a session ended, publishes it, and forgets it later.
    fn end(&mut self, id: &str, why: &str, final_status: Option<u16>) {
        let node = self.d.node.clone();
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        if session.state == State::Ended {
            return;
        }
        session.state = State::Ended;
        session.ended_at = Some(Timestamp::now());
        session.end_reason = Some(why.to_string());
        if let Some(code) = final_status {
            session.final_status = Some(code);
        }
        let record = session.record(&node);
        let client = session
            .client
            .as_ref()
            .map(|c| (c.id.clone(), c.username.clone()));
        let client_leg = session.client_leg_record();
        tracing::info!(
            session = %id,
            client = client.as_ref().map(|c| c.1.as_str()).unwrap_or("-"),
            service = %record.service_id.as_deref().unwrap_or("-"),
            app_server = %record.app_server_id.as_deref().unwrap_or("-"),
            outcome = why,
            status = record.final_status.unwrap_or_default(),
            duration_ms = record.duration_ms.unwrap_or_default(),
            "session ended"
        );
        if let Some((client_id, _)) = client {
            self.sessions.release_client_slot(&client_id);
        }
        self.publish(SessionChange::Session(Box::new(record)));
        self.publish(SessionChange::Leg(Box::new(client_leg)));
        self.event(id, "ended", Some(why.to_string()));
        self.schedule(
            self.d.config.linger,
            CoreTimer::Reap {
                session: id.to_string(),
            },
        );
    }

    /// Ends a live session from outside the dialogs (admin).
    pub(super) fn terminate(&mut self, id: &str, why: &str) -> bool {
        let Some(state) = self.sessions.get_mut(id).map(|s| s.state) else {
            return false;
        };
        match state {
            State::Ended => false,
            State::Proceeding => {
                self.cancel_pending(id);
                self.fail(id, 487, "Request Terminated", why);
                true
            }
            State::Answered | State::Established => {
                let legs: Vec<usize> = self
                    .sessions
                    .get_mut(id)
                    .map(|s| {
                        s.as_legs
                            .iter()
                            .enumerate()
                            .filter(|(_, l)| {
                                matches!(l.state, LegState::Answered | LegState::Acked)
                            })
                            .map(|(i, _)| i)
                            .collect()
                    })
                    .unwrap_or_default();
                for index in legs {
                    self.hang_up_as_leg(id, index);
                }
                self.hang_up_client(id);
                self.end(id, why, None);
                true
            }
        }
    }

    pub(super) fn on_timer(&mut self, timer: CoreTimer) {
        match timer {
            CoreTimer::Ring { session, leg } => self.give_up_leg(&session, leg, "ring timeout"),
            CoreTimer::Silent { session, leg } => {
                let silent = self
                    .sessions
                    .get_mut(&session)
                    .and_then(|s| s.as_legs.get(leg))
                    .is_some_and(|l| !l.responded);
                if silent {
                    self.give_up_leg(&session, leg, "no response");
                }
            }
            CoreTimer::NoAck { session } => {
                if self
                    .sessions
                    .get_mut(&session)
                    .is_some_and(|s| s.state == State::Answered)
                {
                    // RFC 3261 §13.3.1.4: no ACK, so the dialog is ended with BYE.
                    let index = self
                        .sessions
                        .get_mut(&session)
                        .and_then(|s| s.as_legs.iter().position(|l| l.state == LegState::Answered));
                    if let Some(index) = index {
                        let flow = self
                            .sessions
                            .get_mut(&session)
                            .map(|s| s.as_legs[index].flow);
                        if let Some(flow) = flow {
                            let local = self.local_for(&flow);
                            if let Some(s) = self.sessions.get_mut(&session) {
                                if let Ok(ack) = legs::as_ack(&local, &s.as_legs[index]) {
                                    let _ = self.d.layer.send_stateless(&flow, ack);
                                }
                            }
                        }
                        self.hang_up_as_leg(&session, index);
                    }
                    self.hang_up_client(&session);
                    self.end(&session, "no_ack", None);
                }
            }
            CoreTimer::Reap { session } => {
                self.sessions.remove(&session);
            }
            CoreTimer::Probe => self.probe_all(),
        }
    }

    pub(super) fn publish(&self, change: SessionChange) {
        let _ = self.d.publish.send(change);
    }

    fn publish_session(&self, s: &Session) {
        self.publish(SessionChange::Session(Box::new(s.record(&self.d.node))));
    }

    fn publish_by_id(&mut self, id: &str) {
        let node = self.d.node.clone();
        if let Some(s) = self.sessions.get_mut(id) {
            let record = s.record(&node);
            self.publish(SessionChange::Session(Box::new(record)));
        }
    }

    fn event(&self, id: &str, kind: &str, detail: Option<String>) {
        self.publish(SessionChange::Event {
            session_id: id.to_string(),
            at: Timestamp::now(),
            kind: kind.to_string(),
            detail,
        });
    }
}

/// The inquiry's Request-URI: the app server's URI carrying the user part
/// the client asked for (the service it named), e.g.
/// `sip:voicemail@127.0.0.1:5080;transport=udp`.
fn as_request_uri(as_uri: &str, client_invite: &Message) -> String {
    let user = client_invite
        .request_uri()
        .ok()
        .and_then(|u| u.user().map(text));
    let (scheme, rest) = as_uri.split_once(':').unwrap_or(("sip", as_uri));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    match user {
        Some(u) => format!("{scheme}:{u}@{rest}"),
        None => format!("{scheme}:{rest}"),
    }
}
