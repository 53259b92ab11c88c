//! Step 4 of SPEC §2: the outbound legs of a session, each its own dialog
//! towards an app server (or, for an AS-initiated session, towards one
//! registered contact of the client).

use super::*;
use crate::store::clients::Client;

/// Where one outbound leg goes, and as whom.
pub(super) struct Outbound {
    pub request_uri: String,
    pub flow: Flow,
    pub app_server_id: Option<String>,
    /// From URI (ours carries our own tag).
    pub from: String,
    pub to: String,
    pub asserted_identity: Option<String>,
    /// Add `X-Switchboard-Session` (app servers only).
    pub tag_session: bool,
    pub offer: Offer,
    /// Headers of a rule's `set` other than the session's (the rule that
    /// chose the app server of a change or transfer).
    pub attributes: Option<Vec<(String, String)>>,
}

/// Where the offer of an outbound INVITE comes from.
pub(super) enum Offer {
    /// The body of the client's INVITE (or the AS's, for AS → client).
    Inbound,
    /// The body of this request (a session change's re-INVITE or UPDATE).
    Of(Message),
    /// None: the app server makes the offer in its 2xx (RFC 3725 flow I).
    Offerless,
}

impl Core {
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
                    .refusal()
                    .unwrap_or((503, "No Application Server Available".into()));
                self.fail(id, code, &reason, "as_failure");
                return;
            }
            let as_id = session.candidates.remove(0);
            let Some(outbound) =
                to_app_server(&catalog, session, &as_id, self.d.listen, Offer::Inbound)
            else {
                continue;
            };
            if self.open_leg(id, outbound) {
                return;
            }
        }
    }

    /// Sends the INVITE of a new outbound leg; false when it could not be
    /// sent.
    pub(super) fn open_leg(&mut self, id: &str, out: Outbound) -> bool {
        let local = self.local_for(&out.flow);
        let ring = self.ring_timeout(id);
        let Some(session) = self.sessions.get_mut(id) else {
            return false;
        };
        let call_id = legs::new_call_id(&local);
        let local_tag = crate::sip::transaction::new_tag();
        let Some(inv) = &session.client_leg.invite else {
            return false;
        };
        let max_forwards = inv
            .max_forwards()
            .ok()
            .flatten()
            .unwrap_or(70)
            .saturating_sub(1);
        let inquiry = Inquiry {
            request_uri: &out.request_uri,
            from: &["<", out.from.as_str(), ">"].concat(),
            to: &out.to,
            call_id: &call_id,
            local_tag: &local_tag,
            max_forwards,
            asserted_identity: out.asserted_identity.as_deref(),
            session_id: out.tag_session.then_some(session.id.as_str()),
            attributes: out.attributes.as_deref().unwrap_or(&session.attributes),
            session_expires: super::session_timer::SESSION_EXPIRES
                .max(self.d.config.min_session_expires),
            min_session_expires: self.d.config.min_session_expires,
        };
        let offer = match &out.offer {
            Offer::Inbound => Some(inv),
            Offer::Of(m) => Some(m),
            Offer::Offerless => None,
        };
        let Ok(invite) = legs::as_invite(&local, &out.flow, &inquiry, offer) else {
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
            invite: Some(invite),
            invite_tx: tx,
            request_uri: out.request_uri,
            call_id: call_id.clone(),
            local_tag,
            remote_tag: None,
            remote_target: None,
            route_set: Vec::new(),
            local_cseq: 1,
            responded: false,
            cancel_wanted: false,
            ack: None,
            silent_timer: None,
            ring_timer: None,
            state: LegState::Calling,
            created_at: Timestamp::now(),
            ended_at: None,
        });
        let index = session.as_legs.len() - 1;
        let record = session.leg_record(index);
        self.sessions.index_as_leg(&call_id, id, index);
        self.sessions.index_tx(tx, id, Purpose::AsInvite(index));
        if let Some(record) = record {
            self.publish(SessionChange::Leg(Box::new(record)));
        }
        self.event(id, "inquiry", Some(target));
        let session = id.to_string();
        let ring = self.schedule(
            ring,
            CoreTimer::Ring {
                session: session.clone(),
                leg: index,
            },
        );
        let silent = self.schedule(
            self.d.config.response_timeout,
            CoreTimer::Silent {
                session,
                leg: index,
            },
        );
        if let Some(leg) = self.sessions.leg_mut(id, index) {
            leg.ring_timer = Some(ring);
            leg.silent_timer = Some(silent);
        }
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

/// The outbound leg of `session` to app server `as_id` (none when the
/// catalog no longer knows it), its INVITE carrying `offer`.
pub(super) fn to_app_server(
    catalog: &crate::relay::catalog::Catalog,
    session: &Session,
    as_id: &str,
    listen: std::net::SocketAddr,
    offer: Offer,
) -> Option<Outbound> {
    let (app_server, target) = (catalog.app_servers.get(as_id)?, catalog.targets.get(as_id)?);
    let inv = session.client_leg.invite.as_ref()?;
    Some(Outbound {
        request_uri: as_request_uri(&app_server.uri, inv),
        flow: Flow {
            protocol: target.protocol,
            remote: target.addr,
            local: listen,
            connection: 0,
        },
        app_server_id: Some(as_id.to_string()),
        from: inv.from_header().map(|f| uri_of(&f)).unwrap_or_default(),
        to: inv.to_header().map(|t| text(t.raw())).unwrap_or_default(),
        asserted_identity: session.client.as_ref().map(|c| asserted_identity(c)),
        tag_session: true,
        offer,
        attributes: None,
    })
}

/// The identity Switchboard asserts for an authenticated client (RFC 3325),
/// its display name quoted and escaped.
fn asserted_identity(c: &Client) -> String {
    match &c.display_name {
        Some(d) => [
            &legs::quoted_display(d),
            " <sip:",
            &c.username,
            "@",
            &c.realm,
            ">",
        ]
        .concat(),
        None => ["<sip:", &c.username, "@", &c.realm, ">"].concat(),
    }
}

/// The inquiry's Request-URI: the app server's URI carrying the user part
/// the client asked for (the service it named), e.g.
/// `sip:voicemail@127.0.0.1:5080;transport=udp`.
fn as_request_uri(as_uri: &str, client_invite: &Message) -> String {
    let uri = client_invite.request_uri().ok();
    let user = uri
        .as_ref()
        .and_then(|u| u.user())
        .map(String::from_utf8_lossy);
    with_user(as_uri, user.as_deref())
}

/// The app server's URI with the user part `user` (the service named).
pub(super) fn with_user(as_uri: &str, user: Option<&str>) -> String {
    let (scheme, rest) = as_uri.split_once(':').unwrap_or(("sip", as_uri));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    match user {
        Some(u) => [scheme, ":", u, "@", rest].concat(),
        None => [scheme, ":", rest].concat(),
    }
}

/// Cancels the inquiry timers a response with `code` on `leg` makes moot:
/// any response the no-response timer, a final one the ring timer too.
pub(in crate::relay) fn settle_inquiry_timers(
    timers: &mut TimerService<CoreTimer>,
    leg: &mut AsLeg,
    code: u16,
) {
    if let Some(key) = leg.silent_timer.take() {
        timers.cancel(key);
    }
    if code >= 200 {
        if let Some(key) = leg.ring_timer.take() {
            timers.cancel(key);
        }
    }
}
