//! The established session: requests inside a dialog relayed to the other
//! side (re-INVITE, UPDATE, INFO …), and session timers (RFC 4028) so that
//! a session whose peer vanished ends instead of lasting forever.
//!
//! Each leg negotiates its own timer. Switchboard never volunteers to
//! refresh a client (the client refreshes, `refresher=uac`); towards app
//! servers it asks them to refresh (`refresher=uas`) and refreshes with
//! UPDATE itself only when an app server insists on `refresher=uac`.

use std::time::Duration;

use super::*;
use crate::relay::session::LegTimer;

/// A request relayed from one side of a session to the other.
#[derive(Debug)]
pub struct Midcall {
    pub session: String,
    pub request: Message,
    /// The request came on the inbound leg.
    pub inbound: bool,
    /// CSeq of the relayed copy (its ACK reuses it).
    pub cseq: u32,
    pub outbound_leg: usize,
}

/// Session-Expires we ask for and the smallest we accept (RFC 4028 §4).
pub const SESSION_EXPIRES: u32 = 1800;

/// `Session-Expires` delta-seconds and refresher of a message.
pub fn session_expires(msg: &Message) -> Option<(u32, Option<String>)> {
    let value = msg.header_value("Session-Expires")?;
    let text = text(value);
    let mut parts = text.split(';');
    let interval = parts.next()?.trim().parse().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| v.trim().to_ascii_lowercase())
    });
    Some((interval, refresher))
}

pub fn supports_timer(msg: &Message) -> bool {
    msg.supported()
        .chain(msg.require())
        .any(|t| t.eq_ignore_ascii_case(b"timer"))
}

/// When to give up on a refresh: before the interval ends, by 32 s or a
/// third of it (RFC 4028 §10).
fn expiry_after(interval: u32) -> Duration {
    let margin = (interval / 3).min(32);
    Duration::from_secs(u64::from(interval.saturating_sub(margin).max(1)))
}

impl Core {
    /// A request in an established dialog other than BYE, ACK and CANCEL.
    pub(in crate::relay) fn on_in_dialog(&mut self, tx: ServerTxId, msg: Message) {
        let Some((id, as_leg)) = self.find_dialog(&msg) else {
            self.respond(&tx, &msg, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        let inbound = as_leg.is_none();
        let method = msg.method();
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if session.state != State::Established {
            self.respond(&tx, &msg, 491, "Request Pending", &[]);
            return;
        }
        let Some(outbound) = as_leg.or_else(|| {
            session
                .as_legs
                .iter()
                .position(|l| l.state == LegState::Acked)
        }) else {
            self.respond(&tx, &msg, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        if method == Some(Method::Refer) {
            self.respond(&tx, &msg, 501, "Transfer Not Supported Yet", &[]);
            return;
        }
        let refresh = matches!(method, Some(Method::Invite | Method::Update));
        if refresh {
            if let Some(target) = contact_of(&msg) {
                // A target refresh (RFC 3261 §12.2.2).
                match as_leg {
                    Some(i) => session.as_legs[i].remote_target = Some(target),
                    None => session.client_leg.remote_target = target,
                }
            }
            self.refreshed(&id, inbound);
        }
        if method == Some(Method::Update) && msg.body().is_empty() {
            // A pure session refresh: answered here, each leg has its own timer.
            let headers = self.timer_headers(&id, inbound, false);
            self.respond(&tx, &msg, 200, "OK", &headers);
            return;
        }
        self.relay_request(tx, msg, &id, inbound, outbound);
    }

    /// Sends a copy of `msg` on the other side of the session.
    fn relay_request(
        &mut self,
        tx: ServerTxId,
        msg: Message,
        id: &str,
        inbound: bool,
        outbound: usize,
    ) {
        let Some(method) = msg.method() else { return };
        let flow = match self.sessions.get_mut(id) {
            Some(s) if inbound => s.as_legs[outbound].flow,
            Some(s) => s.client_leg.flow,
            None => return,
        };
        let local = self.local_for(&flow);
        let timer = self.timer_headers(id, !inbound, true);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let content_type = msg
            .get(crate::sip::message::HeaderName::ContentType)
            .and_then(|h| h.value_str());
        let body = content_type.map(|ct| (ct, msg.body()));
        let headers: Vec<(&str, String)> = if refresh_method(&method) {
            timer
        } else {
            Vec::new()
        };
        let built = if inbound {
            let leg = &mut session.as_legs[outbound];
            leg.local_cseq += 1;
            let r = legs::InDialog {
                method,
                cseq: leg.local_cseq,
                headers: &headers,
                body,
            };
            legs::as_request(&local, leg, &r).map(|b| (b, leg.local_cseq))
        } else {
            let leg = &mut session.client_leg;
            leg.local_cseq += 1;
            let r = legs::InDialog {
                method,
                cseq: leg.local_cseq,
                headers: &headers,
                body,
            };
            legs::client_request(&local, leg, &r).map(|b| (b, leg.local_cseq))
        };
        let Some((copy, cseq)) = built
            .ok()
            .and_then(|(b, c)| parse_datagram(b, &Limits::default()).ok().map(|m| (m, c)))
        else {
            self.respond(&tx, &msg, 500, "Cannot Relay Request", &[]);
            return;
        };
        match self.d.layer.request(copy, flow) {
            Ok(ctx) => {
                self.sessions.index_tx(ctx, id, Purpose::Relay(tx));
                self.midcall.insert(
                    tx,
                    Midcall {
                        session: id.to_string(),
                        request: msg,
                        inbound,
                        cseq,
                        outbound_leg: outbound,
                    },
                );
            }
            Err(_) => self.respond(&tx, &msg, 500, "Cannot Relay Request", &[]),
        }
    }

    /// The answer to a relayed request, relayed back.
    pub(in crate::relay) fn on_relayed_response(
        &mut self,
        ctx: ClientTxId,
        server: ServerTxId,
        msg: Option<&Message>,
    ) {
        let code = msg.and_then(|m| m.status()).unwrap_or(408);
        if code == 100 {
            return;
        }
        let final_answer = code >= 200;
        if final_answer {
            self.sessions.forget_tx(&ctx);
        }
        let Some(m) = (if final_answer {
            self.midcall.remove(&server)
        } else {
            None
        })
        .or_else(|| {
            self.midcall.get(&server).map(|m| Midcall {
                session: m.session.clone(),
                request: m.request.clone(),
                inbound: m.inbound,
                cseq: m.cseq,
                outbound_leg: m.outbound_leg,
            })
        }) else {
            return;
        };
        let reason = msg
            .and_then(|m| m.reason())
            .map(text)
            .unwrap_or_else(|| "Request Timeout".into());
        let is_invite = m.request.method() == Some(Method::Invite);
        let success = (200..300).contains(&code);
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        if success && refresh_method(&m.request.method().unwrap_or(Method::Info)) {
            headers = self.timer_headers(&m.session, m.inbound, false);
        }
        let flow = match self.sessions.get_mut(&m.session) {
            Some(s) if m.inbound => s.client_leg.flow,
            Some(s) => s.as_legs[m.outbound_leg].flow,
            None => return,
        };
        let local = self.local_for(&flow);
        let mut b = match m.request.reply(code, &reason) {
            Ok(b) => b,
            Err(_) => return,
        };
        if success && is_invite {
            b = match b.header("Contact", local.contact(&flow)) {
                Ok(b) => b,
                Err(_) => return,
            };
        }
        for (name, value) in &headers {
            b = match b.header(name, value) {
                Ok(b) => b,
                Err(_) => return,
            };
        }
        if let Some(answer) = msg.filter(|a| !a.body().is_empty()) {
            let ct = answer
                .get(crate::sip::message::HeaderName::ContentType)
                .and_then(|h| h.value_str())
                .unwrap_or("application/sdp");
            b = match b.body(ct, answer.body()) {
                Ok(b) => b,
                Err(_) => return,
            };
        }
        self.d
            .layer
            .respond(&server, code, bytes::Bytes::from(b.build()));
        if success && is_invite {
            // The offer was in the re-INVITE, so its ACK carries nothing:
            // acknowledge the other side at once (hop by hop).
            self.ack_relayed(&m, msg);
        }
    }

    fn ack_relayed(&mut self, m: &Midcall, answer: Option<&Message>) {
        let flow = match self.sessions.get_mut(&m.session) {
            Some(s) if m.inbound => s.as_legs[m.outbound_leg].flow,
            Some(s) => s.client_leg.flow,
            None => return,
        };
        let local = self.local_for(&flow);
        let Some(session) = self.sessions.get_mut(&m.session) else {
            return;
        };
        let ack = legs::InDialog::bare(Method::Ack, m.cseq);
        let built = if m.inbound {
            let leg = &mut session.as_legs[m.outbound_leg];
            if let Some(target) = answer.and_then(contact_of) {
                leg.remote_target = Some(target);
            }
            legs::as_request(&local, leg, &ack)
        } else {
            legs::client_request(&local, &session.client_leg, &ack)
        };
        if let Ok(bytes) = built {
            let _ = self.d.layer.send_stateless(&flow, bytes);
        }
    }

    /// Starts the timers negotiated when the session was answered.
    pub(in crate::relay) fn start_timers(
        &mut self,
        id: &str,
        inbound: Option<LegTimer>,
        outbound: Option<LegTimer>,
    ) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        session.timers = [inbound, outbound];
        for side in [true, false] {
            self.arm(id, side);
        }
    }

    /// A refresh seen (or sent) on one side: its timer starts again.
    pub(in crate::relay) fn refreshed(&mut self, id: &str, inbound: bool) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        if let Some(t) = session.timers[usize::from(!inbound)].as_mut() {
            t.generation += 1;
        }
        self.arm(id, inbound);
    }

    fn arm(&mut self, id: &str, inbound: bool) {
        let Some(t) = self
            .sessions
            .get_mut(id)
            .and_then(|s| s.timers[usize::from(!inbound)])
        else {
            return;
        };
        let session = id.to_string();
        let generation = t.generation;
        if t.we_refresh {
            let half = Duration::from_secs(u64::from((t.interval / 2).max(1)));
            self.schedule(
                half,
                CoreTimer::Refresh {
                    session,
                    inbound,
                    generation,
                },
            );
        } else {
            self.schedule(
                expiry_after(t.interval),
                CoreTimer::Expiry {
                    session,
                    inbound,
                    generation,
                },
            );
        }
    }

    /// The peer on one side did not refresh in time: the session is over.
    pub(in crate::relay) fn on_expiry(&mut self, id: &str, inbound: bool, generation: u64) {
        let current = self
            .sessions
            .get_mut(id)
            .filter(|s| s.state == State::Established)
            .and_then(|s| s.timers[usize::from(!inbound)])
            .is_some_and(|t| t.generation == generation);
        if current {
            self.event(
                id,
                "session_timer",
                Some(if inbound { "inbound" } else { "outbound" }.into()),
            );
            self.terminate(id, "session_timer");
        }
    }

    /// Our turn to refresh one side: an UPDATE without a body.
    pub(in crate::relay) fn on_refresh_due(&mut self, id: &str, inbound: bool, generation: u64) {
        let due = self
            .sessions
            .get_mut(id)
            .filter(|s| s.state == State::Established)
            .and_then(|s| s.timers[usize::from(!inbound)])
            .is_some_and(|t| t.generation == generation);
        if !due {
            return;
        }
        let headers = self.timer_headers(id, inbound, true);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let Some(index) = session
            .as_legs
            .iter()
            .position(|l| l.state == LegState::Acked)
        else {
            return;
        };
        let flow = if inbound {
            session.client_leg.flow
        } else {
            session.as_legs[index].flow
        };
        let local = self.local_for(&flow);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let built = if inbound {
            let leg = &mut session.client_leg;
            leg.local_cseq += 1;
            legs::client_request(
                &local,
                leg,
                &legs::InDialog {
                    method: Method::Update,
                    cseq: leg.local_cseq,
                    headers: &headers,
                    body: None,
                },
            )
        } else {
            let leg = &mut session.as_legs[index];
            leg.local_cseq += 1;
            legs::as_request(
                &local,
                leg,
                &legs::InDialog {
                    method: Method::Update,
                    cseq: leg.local_cseq,
                    headers: &headers,
                    body: None,
                },
            )
        };
        if let Some(update) = built
            .ok()
            .and_then(|b| parse_datagram(b, &Limits::default()).ok())
        {
            if let Ok(ctx) = self.d.layer.request(update, flow) {
                self.sessions.index_tx(ctx, id, Purpose::Closing);
            }
        }
        self.refreshed(id, inbound);
    }

    /// Session-Expires with Require (responses) or Supported (requests)
    /// for a message we send on one side.
    pub(in crate::relay) fn timer_headers(
        &mut self,
        id: &str,
        inbound: bool,
        request: bool,
    ) -> Vec<(&'static str, String)> {
        let Some(t) = self
            .sessions
            .get_mut(id)
            .and_then(|s| s.timers[usize::from(!inbound)])
        else {
            return Vec::new();
        };
        // "uac" is whoever sent the request the header travels in (RFC 4028
        // §7, §9): in our requests that is us, in our responses the peer.
        let refresher = match (request, t.we_refresh) {
            (true, true) | (false, false) => "uac",
            _ => "uas",
        };
        let option = if request { "Supported" } else { "Require" };
        vec![
            (
                "Session-Expires",
                format!("{};refresher={refresher}", t.interval),
            ),
            (option, "timer".into()),
        ]
    }

    /// The inbound leg's timer for a 2xx: only when the peer supports
    /// timers; it refreshes (`refresher=uac`), at the interval it asked
    /// for or ours.
    pub(in crate::relay) fn inbound_timer(invite: &Message) -> Option<LegTimer> {
        if !supports_timer(invite) {
            return None;
        }
        let interval = session_expires(invite).map_or(SESSION_EXPIRES, |(i, _)| i);
        Some(LegTimer {
            interval,
            we_refresh: false,
            generation: 0,
        })
    }

    /// The outbound leg's timer from the 2xx of its INVITE (RFC 4028 §7.2).
    pub(in crate::relay) fn outbound_timer(answer: &Message) -> Option<LegTimer> {
        let (interval, refresher) = session_expires(answer)?;
        Some(LegTimer {
            interval,
            we_refresh: refresher.as_deref() == Some("uac"),
            generation: 0,
        })
    }
}

fn refresh_method(m: &Method<'_>) -> bool {
    matches!(m, Method::Invite | Method::Update)
}
