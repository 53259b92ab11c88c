//! How sessions end and what is published about them.

use super::*;

impl Core {
    /// Ends a session that never got a 2xx: the client gets `code`.
    pub(in crate::relay) fn fail(&mut self, id: &str, code: u16, reason: &str, why: &str) {
        if self.fanout_fail(id, code, reason, why) {
            return;
        }
        self.relay_to_client(id, code, reason, None);
        self.end(id, why, Some(code));
    }

    /// Marks a session ended, publishes it, and forgets it later.
    pub(in crate::relay) fn end(&mut self, id: &str, why: &str, final_status: Option<u16>) {
        let node = self.d.node.clone();
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        if session.state == State::Ended {
            return;
        }
        self.abandon_change(id);
        self.abandon_transfer(id);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let now = Timestamp::now();
        session.state = State::Ended;
        session.ended_at = Some(now);
        session.end_reason = Some(why.to_string());
        if let Some(code) = final_status {
            session.final_status = Some(code);
        }
        let record = session.record(&node);
        self.close_segment(id, now, None);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let segments = session.segment_bills();
        let client = session
            .client
            .as_ref()
            .map(|c| (c.id.clone(), c.username.clone()));
        // The legs and the segment still open end with the session: their
        // rows take its end when read, so they are written again only if
        // something else about them changed (the client's target).
        let client_leg = session
            .client_leg
            .retargeted
            .then(|| session.client_leg_record());
        let client_record = session.client.clone();
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
        // Requests still relayed in the dialog end with it (RFC 3261
        // §15.1.2: 487 to what is pending when the session ends).
        let pending: Vec<_> = self
            .sessions
            .get_mut(id)
            .map(|s| s.relays.drain().collect())
            .unwrap_or_default();
        for (tx, m) in pending {
            self.respond(&tx, &m.request, 487, "Request Terminated", &[]);
        }
        // The CDRs (SPEC §4): one per segment, each billed with the tariff
        // of its service at this moment.
        let catalog = self.d.catalog.snapshot();
        let cdrs = crate::billing::cdr::cdrs_for(&record, &segments, |service| {
            catalog.tariff_for(client_record.as_deref(), service)
        });
        for cdr in cdrs {
            let _ = self.d.cdrs.send(cdr);
        }
        self.publish(SessionChange::Session(Box::new(record)));
        if let Some(leg) = client_leg {
            self.publish(SessionChange::Leg(Box::new(leg)));
        }
        self.event(id, "ended", Some(why.to_string()));
        if let Some(session) = self.sessions.get_mut(id) {
            session.linger();
        }
        self.schedule(
            self.d.config.linger,
            CoreTimer::Reap {
                session: id.to_string(),
            },
        );
    }

    /// Ends a live session from outside the dialogs (admin).
    pub(in crate::relay) fn terminate(&mut self, id: &str, why: &str) -> bool {
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
                    self.hang_up_as_leg_with_session(id, index);
                }
                self.hang_up_client(id);
                self.end(id, why, None);
                true
            }
        }
    }

    pub(in crate::relay) fn on_timer(&mut self, timer: CoreTimer) {
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
                    // RFC 3261 §13.3.1.4: no ACK, so the dialog is ended with
                    // BYE (the AS leg is ACKed first, §15).
                    let index = self
                        .sessions
                        .get_mut(&session)
                        .and_then(|s| s.as_legs.iter().position(|l| l.state == LegState::Answered));
                    if let Some(index) = index {
                        self.hang_up_as_leg_with_session(&session, index);
                    }
                    self.hang_up_client(&session);
                    self.end(&session, "no_ack", None);
                }
            }
            CoreTimer::Reap { session } => {
                self.sessions.remove(&session);
            }
            CoreTimer::Probe => self.probe_all(),
            CoreTimer::Session { session, inbound } => self.on_session_timer(&session, inbound),
        }
    }

    pub(in crate::relay) fn publish(&self, change: SessionChange) {
        let _ = self.d.publish.send(change);
    }

    pub(in crate::relay) fn publish_session(&self, s: &Session) {
        self.publish(SessionChange::Session(Box::new(s.record(&self.d.node))));
    }

    pub(in crate::relay) fn publish_by_id(&mut self, id: &str) {
        let node = self.d.node.clone();
        if let Some(s) = self.sessions.get_mut(id) {
            let record = s.record(&node);
            self.publish(SessionChange::Session(Box::new(record)));
        }
    }

    pub(in crate::relay) fn event(&self, id: &str, kind: &str, detail: Option<String>) {
        self.publish(SessionChange::Event {
            session_id: id.to_string(),
            at: Timestamp::now(),
            kind: kind.to_string(),
            detail,
        });
    }
}
