//! The established session: requests inside a dialog relayed to the other
//! side (re-INVITE, UPDATE, INFO …) and their answers relayed back.
//!
//! Each side keeps its own dialog: Via, Route, Record-Route, Contact,
//! Call-ID, tags and CSeq are written per leg; Max-Forwards goes down by
//! one; the body and the end-to-end headers of [`END_TO_END`] travel on.
//! An INFO (from either side, e.g. an app server's) goes through
//! [`Core::on_in_dialog`] and [`Core::relay_request`] like any other
//! request.

use super::*;

/// A request relayed from one side of a session to the other.
#[derive(Debug, Clone)]
pub struct Midcall {
    pub session: String,
    pub request: Message,
    /// The request came on the inbound leg.
    pub inbound: bool,
    /// CSeq of the relayed copy (its ACK reuses it).
    pub cseq: u32,
    pub outbound_leg: usize,
}

/// Headers that concern the two ends rather than one hop or one dialog,
/// carried across in requests and responses. Content-Type travels with
/// the body; Supported and Require are ours per leg (only `timer`, which
/// the session timer code writes, is understood end to end).
const END_TO_END: &[&str] = &[
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Allow",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Event",
    "Info-Package",
    "Organization",
    "Priority",
    "Reason",
    "Recv-Info",
    "Subject",
    "Subscription-State",
    "Warning",
];

/// Whether header `name` of a relayed message goes to the other side:
/// [`END_TO_END`] and the user headers (`X-…`), except our own session id.
fn carried(name: &str) -> bool {
    let x_header = name.len() > 2 && name[..2].eq_ignore_ascii_case("x-");
    (x_header && !name.eq_ignore_ascii_case("X-Switchboard-Session"))
        || END_TO_END.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// The end-to-end headers of `msg` (name and value), in order.
fn end_to_end(msg: &Message) -> Vec<(String, String)> {
    msg.headers()
        .filter_map(|h| {
            let name = match h.name.as_str() {
                "" => text(h.raw_name),
                known => known.to_string(),
            };
            carried(&name).then(|| (name, text(h.value)))
        })
        .collect()
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
        match session.state {
            State::Established => {}
            // The dialogs are over (RFC 3261 §12.2.2).
            State::Ended => {
                self.respond(&tx, &msg, 481, "Call/Transaction Does Not Exist", &[]);
                return;
            }
            _ => {
                self.respond(&tx, &msg, 491, "Request Pending", &[]);
                return;
            }
        }
        // Only the answered outbound leg is in the session; a request on
        // any other leg of ours names a dialog that no longer exists.
        let active = session.answered_leg();
        let Some(outbound) = active.filter(|a| as_leg.is_none_or(|i| i == *a)) else {
            self.respond(&tx, &msg, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        if charges::is_charge(&msg) {
            self.take_charge(&tx, &msg, &id, inbound);
            return;
        }
        if method == Some(Method::Refer) {
            self.on_refer(tx, &id, &msg, inbound);
            return;
        }
        // RFC 3261 §14.2: one INVITE at a time in a dialog, in either
        // direction (the one from the other side makes this a glare).
        // A change or transfer to another app server is an INVITE in
        // progress too.
        let pending = session.busy();
        let moving = session.takeover_leg().is_some();
        if (pending && matches!(method, Some(Method::Invite)))
            || (moving && matches!(method, Some(Method::Update)))
        {
            self.respond(
                &tx,
                &msg,
                491,
                "Request Pending",
                &[("Retry-After", "1".into())],
            );
            return;
        }
        if matches!(method, Some(Method::Invite | Method::Update)) {
            if !self.renegotiate_request(&tx, &id, inbound, &msg) {
                return;
            }
            if let Some(target) = contact_of(&msg) {
                // A target refresh (RFC 3261 §12.2.2).
                if let Some(s) = self.sessions.get_mut(&id) {
                    match as_leg.and_then(|i| s.as_legs.get_mut(i)) {
                        Some(leg) => leg.remote_target = Some(target),
                        None => s.client_leg.retarget(target),
                    }
                }
            }
            self.refreshed(&id, inbound);
        }
        if method == Some(Method::Update) && msg.body().is_empty() {
            // A pure session refresh: answered here, each leg has its own
            // timer. A 2xx to UPDATE carries our Contact (RFC 3311 §5.2).
            let mut headers = self.timer_headers(&id, inbound, false);
            let flow = self.sessions_flow(&id);
            let flow = if inbound {
                flow
            } else {
                self.outbound_flow(&id, outbound)
            };
            headers.push(("Contact", self.local_for(&flow).contact(&flow)));
            self.respond(&tx, &msg, 200, "OK", &headers);
            return;
        }
        // SPEC §2 claim 5: a new offer from the client may be a new service.
        if inbound
            && matches!(method, Some(Method::Invite | Method::Update))
            && self.change_service(&tx, &id, &msg)
        {
            return;
        }
        self.relay_request(tx, msg, &id, inbound, outbound);
    }

    /// The flow of outbound leg `index` (or of the client when it is gone).
    pub(in crate::relay) fn outbound_flow(&mut self, id: &str, index: usize) -> Flow {
        match self
            .sessions
            .get_mut(id)
            .and_then(|s| s.as_legs.get(index).map(|l| l.flow))
        {
            Some(flow) => flow,
            None => self.sessions_flow(id),
        }
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
        // RFC 3261 §16.3: a request that may not travel further.
        let max_forwards = msg.max_forwards().ok().flatten().unwrap_or(70);
        if max_forwards == 0 {
            self.respond(&tx, &msg, 483, "Too Many Hops", &[]);
            return;
        }
        let flow = if inbound {
            self.outbound_flow(id, outbound)
        } else {
            self.sessions_flow(id)
        };
        let local = self.local_for(&flow);
        let timer = if matches!(method, Method::Invite | Method::Update) {
            self.timer_headers(id, !inbound, true)
        } else {
            Vec::new()
        };
        let carried = end_to_end(&msg);
        let headers: Vec<(&str, String)> = timer
            .into_iter()
            .chain(carried.iter().map(|(n, v)| (n.as_str(), v.clone())))
            .collect();
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let content_type = msg
            .get(crate::sip::message::HeaderName::ContentType)
            .and_then(|h| h.value_str());
        let body = content_type.map(|ct| (ct, msg.body()));
        let built = {
            let mut r = legs::InDialog::with_headers(method, 0, &headers);
            r.max_forwards = max_forwards.saturating_sub(1);
            r.body = body;
            match (inbound, session.as_legs.get_mut(outbound)) {
                (true, Some(leg)) => {
                    leg.local_cseq += 1;
                    r.cseq = leg.local_cseq;
                    legs::as_request(&local, leg, &r).map(|b| (b, r.cseq))
                }
                (true, None) => Err(crate::sip::message::BuildError::InvalidHeaderValue),
                (false, _) => {
                    let leg = &mut session.client_leg;
                    leg.local_cseq += 1;
                    r.cseq = leg.local_cseq;
                    legs::client_request(&local, leg, &r).map(|b| (b, r.cseq))
                }
            }
        };
        let Ok((copy, cseq)) = built else {
            self.respond(&tx, &msg, 500, "Cannot Relay Request", &[]);
            return;
        };
        let Ok(ctx) = self.d.layer.request(copy, flow) else {
            self.respond(&tx, &msg, 500, "Cannot Relay Request", &[]);
            return;
        };
        self.sessions.index_tx(ctx, id, Purpose::Relay(tx));
        if method == Method::Invite {
            self.note_reinvite(id, inbound, outbound, tx, &msg, ctx, cseq);
        }
        if let Some(session) = self.sessions.get_mut(id) {
            session.relays.insert(
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
    }

    /// The answer to a relayed request, relayed back.
    pub(in crate::relay) fn on_relayed_response(
        &mut self,
        ctx: ClientTxId,
        id: &str,
        server: ServerTxId,
        msg: Option<&Message>,
    ) {
        let code = msg.and_then(|m| m.status()).unwrap_or(408);
        if code == 100 {
            return;
        }
        let success = (200..300).contains(&code);
        if success && self.reinvite_retransmission(id, ctx) {
            return;
        }
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let m = if code >= 200 {
            session.relays.remove(&server)
        } else {
            session.relays.get(&server).cloned()
        };
        let Some(m) = m else {
            return;
        };
        let method = m.request.method().unwrap_or(Method::Info);
        let is_invite = method == Method::Invite;
        // A 2xx to a re-INVITE keeps its transaction known: the AS may
        // retransmit it until it gets our ACK (RFC 3261 §13.3.1.4).
        if code >= 200 && !(success && is_invite) {
            self.sessions.forget_tx(&ctx);
        }
        let reason = msg
            .and_then(|m| m.reason())
            .map(text)
            .unwrap_or_else(|| "Request Timeout".into());
        let refresh = matches!(method, Method::Invite | Method::Update);
        let mut headers: Vec<(&str, String)> = Vec::new();
        if success && refresh {
            if let Some(answer) = msg {
                self.renegotiate_answer(id, !m.inbound, answer);
            }
            headers = self.timer_headers(id, m.inbound, false);
        }
        let flow = if m.inbound {
            self.sessions_flow(id)
        } else {
            self.outbound_flow(id, m.outbound_leg)
        };
        let local = self.local_for(&flow);
        // A 2xx to INVITE or UPDATE carries our Contact (RFC 3261 §12.1.1,
        // RFC 3311 §5.2).
        if success && refresh {
            headers.push(("Contact", local.contact(&flow)));
        }
        let carried = msg.map(end_to_end).unwrap_or_default();
        headers.extend(carried.iter().map(|(n, v)| (n.as_str(), v.clone())));
        let Some(bytes) = build_response(&m.request, code, &reason, &headers, msg) else {
            return;
        };
        self.d.layer.respond(&server, code, bytes.clone());
        if is_invite && code >= 200 {
            self.reinvite_answered(id, server, code, bytes, msg);
        }
    }
}

/// A response to `request` with `headers` and the body of `answer`.
pub(super) fn build_response(
    request: &Message,
    code: u16,
    reason: &str,
    headers: &[(&str, String)],
    answer: Option<&Message>,
) -> Option<bytes::Bytes> {
    let mut b = request.reply(code, reason).ok()?;
    for (name, value) in headers {
        b = b.header(name, value).ok()?;
    }
    if let Some(answer) = answer {
        if !answer.body().is_empty() {
            let ct = answer
                .get(crate::sip::message::HeaderName::ContentType)
                .and_then(|h| h.value_str())
                .unwrap_or("application/sdp");
            b = b.body(ct, answer.body()).ok()?;
        }
    }
    Some(bytes::Bytes::from(b.build()))
}
