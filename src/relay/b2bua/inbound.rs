//! Steps 1–4 of SPEC §2: a new INVITE is authenticated, searched and
//! inquired of the chosen app server.

use super::*;

impl Core {
    /// Steps 1–4 for a new INVITE from a client.
    pub(in crate::relay) fn on_invite(&mut self, tx: ServerTxId, msg: Message, flow: Flow) {
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
    pub(in crate::relay) fn inquire_next(&mut self, id: &str, failure: Option<(u16, String)>) {
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
