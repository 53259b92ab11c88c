//! Steps 1–4 of SPEC §2: a new INVITE is authenticated, searched and
//! inquired of the chosen app server; an INVITE from a trusted app server
//! is forked to the registered contacts of the client it names.

use std::sync::Arc;

use super::*;
use crate::relay::session::Direction;
use crate::store::clients::Client;

/// Where one outbound leg goes, and as whom.
struct Outbound {
    request_uri: String,
    flow: Flow,
    app_server_id: Option<String>,
    /// From URI (ours carries our own tag).
    from: String,
    to: String,
    asserted_identity: Option<String>,
    /// Add `X-Switchboard-Session` (app servers only).
    tag_session: bool,
}

impl Core {
    /// A new INVITE: from a trusted app server (AS → client), or from a
    /// client asking for a service.
    pub(in crate::relay) fn on_invite(&mut self, tx: ServerTxId, msg: Message, flow: Flow) {
        // RFC 4028 §8.1: too short a session interval is refused with 422.
        let min_se = self.d.config.min_session_expires;
        if super::midcall::session_expires(&msg).is_some_and(|(i, _)| i < min_se) {
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
        if let Some(as_id) = catalog.trusted.get(&flow.remote) {
            let as_id = as_id.clone();
            self.on_as_invite(tx, msg, flow, as_id);
            return;
        }
        let Some(client) = self.authenticate(&tx, &msg, &flow, true) else {
            return;
        };
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
        let attributes = rule
            .rule
            .set
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let Some(mut session) =
            self.new_session(tx, msg, flow, Direction::FromClient, Some(client))
        else {
            return;
        };
        session.service_id = Some(entry.service.id.clone());
        session.rule_id = Some(rule.rule.id.clone());
        session.attributes = attributes;
        session.candidates = candidates;
        let detail = format!("rule {} service {}", rule.rule.id, entry.service.id);
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
        let client = Arc::new(client.clone());
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
    fn new_session(
        &mut self,
        tx: ServerTxId,
        msg: Message,
        flow: Flow,
        direction: Direction,
        client: Option<Arc<Client>>,
    ) -> Option<Session> {
        let (Ok(from), Ok(call_id)) = (msg.from_header(), msg.call_id()) else {
            self.respond(&tx, &msg, 400, "Malformed Dialog Headers", &[]);
            return None;
        };
        let remote_target = contact_of(&msg).unwrap_or_else(|| uri_of(&from));
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
        Some(Session {
            id: new_id(),
            request_id: new_id(),
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
            attributes: Vec::new(),
            client_leg,
            as_legs: Vec::new(),
            candidates: Vec::new(),
            created_at: Timestamp::now(),
            answered_at: None,
            ended_at: None,
            end_reason: None,
            final_status: None,
        })
    }

    /// Publishes and holds a new session; returns its id.
    fn open_session(&mut self, session: Session, detail: String) -> String {
        let id = session.id.clone();
        self.publish_session(&session);
        self.publish(SessionChange::Leg(Box::new(session.client_leg_record())));
        self.event(&id, "created", Some(detail));
        self.sessions.insert(session);
        id
    }

    /// Step 4: INVITE the next app server of the session's candidates; with
    /// none left the client gets the best failure seen (or 503).
    pub(in crate::relay) fn inquire_next(&mut self, id: &str) {
        let catalog = self.d.catalog.snapshot();
        loop {
            let Some(session) = self.sessions.get_mut(id) else {
                return;
            };
            if session.candidates.is_empty() {
                let (code, reason) = session
                    .best_failure
                    .clone()
                    .unwrap_or((503, "No Application Server Available".into()));
                self.fail(id, code, &reason, "as_failure");
                return;
            }
            let as_id = session.candidates.remove(0);
            let (Some(app_server), Some(target)) =
                (catalog.app_servers.get(&as_id), catalog.targets.get(&as_id))
            else {
                continue;
            };
            let inv = &session.client_leg.invite;
            let outbound = Outbound {
                request_uri: as_request_uri(&app_server.uri, inv),
                flow: Flow {
                    protocol: target.protocol,
                    remote: target.addr,
                    local: self.d.listen,
                    connection: 0,
                },
                app_server_id: Some(as_id.clone()),
                from: inv.from_header().map(|f| uri_of(&f)).unwrap_or_default(),
                to: inv.to_header().map(|t| text(t.raw())).unwrap_or_default(),
                asserted_identity: session.client.as_ref().map(|c| asserted_identity(c)),
                tag_session: true,
            };
            if self.open_leg(id, outbound) {
                return;
            }
        }
    }

    /// Sends the INVITE of a new outbound leg; false when it could not be
    /// sent.
    fn open_leg(&mut self, id: &str, out: Outbound) -> bool {
        let local = self.local_for(&out.flow);
        let ring = self.ring_timeout(id);
        let Some(session) = self.sessions.get_mut(id) else {
            return false;
        };
        let call_id = legs::new_call_id(&local);
        let local_tag = legs::random_tag();
        let inv = &session.client_leg.invite;
        let max_forwards = inv
            .max_forwards()
            .ok()
            .flatten()
            .unwrap_or(70)
            .saturating_sub(1);
        let inquiry = Inquiry {
            request_uri: &out.request_uri,
            from: &format!("<{}>", out.from),
            to: &out.to,
            call_id: &call_id,
            local_tag: &local_tag,
            max_forwards,
            asserted_identity: out.asserted_identity.as_deref(),
            session_id: out.tag_session.then_some(session.id.as_str()),
            attributes: &session.attributes,
            session_expires: super::midcall::SESSION_EXPIRES.max(self.d.config.min_session_expires),
            min_session_expires: self.d.config.min_session_expires,
        };
        let built = legs::as_invite(&local, &out.flow, &inquiry, inv)
            .ok()
            .and_then(|b| parse_datagram(b, &Limits::default()).ok());
        let Some(invite) = built else {
            tracing::warn!(session = %id, target = %out.request_uri, "cannot build the outbound INVITE");
            return false;
        };
        let Ok(tx) = self.d.layer.request(invite.clone(), out.flow) else {
            return false;
        };
        let target = out
            .app_server_id
            .clone()
            .unwrap_or_else(|| out.request_uri.clone());
        session.as_legs.push(AsLeg {
            leg_id: new_id(),
            app_server_id: out.app_server_id,
            flow: out.flow,
            invite,
            invite_tx: tx,
            request_uri: out.request_uri,
            call_id: call_id.clone(),
            local_tag,
            remote_tag: None,
            remote_target: None,
            local_cseq: 1,
            responded: false,
            state: LegState::Calling,
            created_at: Timestamp::now(),
            ended_at: None,
        });
        let index = session.as_legs.len() - 1;
        let record = session.as_leg_record(&session.as_legs[index]);
        self.sessions.index_as_leg(&call_id, id, index);
        self.sessions.index_tx(tx, id, Purpose::AsInvite(index));
        self.publish(SessionChange::Leg(Box::new(record)));
        self.event(id, "inquiry", Some(target));
        let session = id.to_string();
        self.schedule(
            ring,
            CoreTimer::Ring {
                session: session.clone(),
                leg: index,
            },
        );
        self.schedule(
            self.d.config.response_timeout,
            CoreTimer::Silent {
                session,
                leg: index,
            },
        );
        true
    }

    /// The service's ring timeout, else Timer C.
    fn ring_timeout(&self, id: &str) -> std::time::Duration {
        let catalog = self.d.catalog.snapshot();
        self.sessions
            .service_of(id)
            .and_then(|s| catalog.services.get(&s))
            .and_then(|e| e.service.ring_timeout_seconds)
            .map(|s| std::time::Duration::from_secs(s.max(1) as u64))
            .unwrap_or(self.d.config.timer_c)
    }
}

/// The identity Switchboard asserts for an authenticated client (RFC 3325).
fn asserted_identity(c: &Client) -> String {
    match &c.display_name {
        Some(d) => format!(
            "\"{}\" <sip:{}@{}>",
            d.replace('"', ""),
            c.username,
            c.realm
        ),
        None => format!("<sip:{}@{}>", c.username, c.realm),
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
