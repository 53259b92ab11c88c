//! Steps 1–3 of SPEC §2: a new INVITE is authenticated and searched, and
//! its session opened (the inquiry, step 4, is in `outbound`); an INVITE
//! from a trusted app server is forked to the registered contacts of the
//! client it names.

use std::sync::Arc;

use super::fanout::Search;
use super::outbound::Outbound;
use super::*;
use crate::relay::session::Direction;
use crate::store::clients::Client;
use crate::store::services::Strategy;

impl Core {
    /// A new INVITE: from a trusted app server (AS → client), or from a
    /// client asking for a service.
    pub(in crate::relay) fn on_invite(
        &mut self,
        tx: ServerTxId,
        msg: Message,
        flow: Flow,
        source: std::net::SocketAddr,
    ) {
        // RFC 4028 §8.1: too short a session interval is refused with 422.
        let min_se = self.d.config.min_session_expires;
        if super::session_timer::session_expires(&msg).is_some_and(|(i, _)| i < min_se) {
            self.respond(
                &tx,
                &msg,
                422,
                "Session Interval Too Small",
                &[("Min-SE", min_se.to_string())],
            );
            return;
        }
        let catalog = self.d.catalog.snapshot();
        // Trust follows the socket address the INVITE came from: `flow`
        // carries the Via port for UDP without rport, which anyone can write.
        if let Some(as_id) = catalog.trusted_source(source) {
            let as_id = as_id.to_string();
            self.on_as_invite(tx, msg, flow, as_id);
            return;
        }
        let Some(client) = self.authenticate(&tx, &msg, &flow, true) else {
            return;
        };
        // RFC 3891: an INVITE that replaces a dialog of an existing session.
        if msg.get(crate::sip::message::HeaderName::Replaces).is_some() {
            self.on_replaces(tx, msg, flow, client);
            return;
        }
        if self.at_session_limit(&client) {
            self.respond(&tx, &msg, 403, "Session Limit Reached", &[]);
            return;
        }
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
        let candidates = catalog.candidate_ids(entry);
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
        let attributes = rule.attributes();
        if entry.service.strategy == Strategy::Parallel {
            let search = Search {
                service_id: entry.service.id.clone(),
                rule_id: rule.rule.id.clone(),
                attributes,
                candidates,
            };
            self.fan_out(tx, msg, flow, client, search);
            return;
        }
        let Some(mut session) =
            self.new_session(tx, msg, flow, Direction::FromClient, Some(client))
        else {
            return;
        };
        session.service_id = Some(entry.service.id.clone());
        session.rule_id = Some(rule.rule.id.clone());
        session.attributes = attributes;
        session.candidates = candidates;
        let detail = ["rule ", &rule.rule.id, " service ", &entry.service.id].concat();
        let id = self.open_session(session, detail);
        self.inquire_next(&id);
    }

    fn at_session_limit(&self, client: &Client) -> bool {
        client
            .max_sessions
            .is_some_and(|max| self.sessions.live_for_client(&client.id) >= max.max(0) as u32)
    }

    /// SPEC §2 "AS → client": an INVITE from a trusted app server to
    /// `sip:<username>@<domain>` goes to every registered contact of that
    /// client at once; the first to answer wins.
    fn on_as_invite(&mut self, tx: ServerTxId, msg: Message, flow: Flow, as_id: String) {
        let catalog = self.d.catalog.snapshot();
        let user = msg
            .request_uri()
            .ok()
            .and_then(|u| u.user_unescaped().map(|u| text(&u)));
        let Some(client) = user.and_then(|u| catalog.clients_by_username.get(&u)) else {
            self.respond(&tx, &msg, 404, "Not Found", &[]);
            return;
        };
        if !client.enabled {
            self.respond(&tx, &msg, 403, "Client Disabled", &[]);
            return;
        }
        let bindings = self.d.registrar.lookup(&client.id);
        if bindings.is_empty() {
            self.respond(&tx, &msg, 480, "Temporarily Unavailable", &[]);
            return;
        }
        let client = Arc::clone(client);
        if self.at_session_limit(&client) {
            self.respond(&tx, &msg, 486, "Busy Here", &[]);
            return;
        }
        let Some(mut session) = self.new_session(
            tx,
            msg,
            flow,
            Direction::FromAppServer,
            Some(client.clone()),
        ) else {
            return;
        };
        session.origin_app_server = Some(as_id.clone());
        let from = session.caller_uri.clone();
        let id = self.open_session(session, format!("from app server {as_id}"));
        for binding in bindings {
            let outbound = Outbound {
                request_uri: binding.record.contact.clone(),
                flow: binding.flow,
                app_server_id: None,
                from: from.clone(),
                to: format!("<sip:{}@{}>", client.username, client.realm),
                asserted_identity: None,
                tag_session: false,
                offer: super::outbound::Offer::Inbound,
                attributes: None,
            };
            self.open_leg(&id, outbound);
        }
        if self
            .sessions
            .get_mut(&id)
            .is_some_and(|s| s.as_legs.is_empty())
        {
            self.fail(&id, 480, "Temporarily Unavailable", "unreachable");
        }
    }

    /// The session for a new INVITE, before any outbound leg.
    pub(super) fn new_session(
        &mut self,
        tx: ServerTxId,
        msg: Message,
        flow: Flow,
        direction: Direction,
        client: Option<Arc<Client>>,
    ) -> Option<Session> {
        let Some(client_leg) = client_leg(tx, &msg, flow) else {
            self.respond(&tx, &msg, 400, "Malformed Dialog Headers", &[]);
            return None;
        };
        let from = msg.from_header().ok()?;
        Some(Session {
            id: new_id(),
            request_id: new_id(),
            fanout: false,
            state: State::Proceeding,
            direction,
            caller_uri: uri_of(&from),
            callee_uri: text(msg.request_uri_raw().unwrap_or_default()),
            client,
            service_id: None,
            rule_id: None,
            origin_app_server: None,
            best_failure: None,
            timers: [None, None],
            relays: Default::default(),
            reinvite: None,
            attributes: Vec::new(),
            charge_keys: Default::default(),
            segments: Vec::new(),
            change: None,
            transfer: None,
            client_leg,
            // Most sessions have one outbound leg; `push` would make room
            // for four (an `AsLeg` is several hundred bytes).
            as_legs: Vec::with_capacity(1),
            candidates: Vec::new(),
            created_at: Timestamp::now(),
            answered_at: None,
            ended_at: None,
            end_reason: None,
            final_status: None,
        })
    }

    /// Publishes and holds a new session; returns its id.
    pub(super) fn open_session(&mut self, session: Session, detail: String) -> String {
        let id = session.id.clone();
        self.publish_session(&session);
        self.publish(SessionChange::Leg(Box::new(session.client_leg_record())));
        self.event(&id, "created", Some(detail));
        self.sessions.insert(session);
        id
    }
}

/// The inbound dialog an INVITE opens (we are its UAS), with a tag of ours;
/// none when the INVITE lacks the headers of a dialog.
pub(super) fn client_leg(tx: ServerTxId, msg: &Message, flow: Flow) -> Option<ClientLeg> {
    let (from, call_id) = (msg.from_header().ok()?, msg.call_id().ok()?);
    Some(ClientLeg {
        leg_id: new_id(),
        invite_tx: tx,
        flow,
        call_id: text(call_id),
        remote_tag: from.tag().map(text).unwrap_or_default(),
        local_tag: crate::sip::transaction::new_tag(),
        remote_target: contact_of(msg).unwrap_or_else(|| uri_of(&from)),
        retargeted: false,
        route_set: legs::record_routes(msg),
        local_cseq: 0,
        final_response: None,
        invite: Some(msg.clone()),
    })
}
