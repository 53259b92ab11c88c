//! Transfer by INVITE with Replaces (RFC 3891, SPEC §2 claim 6).
//!
//! The Replaces header names one of our client dialogs as we hold it:
//! Call-ID, `to-tag` = our tag on that dialog, `from-tag` = the client's
//! (§3: the dialog is matched as if the UAS were its local side). Checks,
//! in the order of §3: no such dialog, 481; another client than the one
//! whose session it is, 403 (§6: only the party of the dialog may replace
//! it); a session already over, 603; one not established yet (its client
//! dialog is early, and was not initiated by us), 481; `early-only` on an
//! established one, 486; an INVITE already in progress in the session,
//! 491.
//!
//! Then the new INVITE is a service request like any other: the rules are
//! searched with it, and the app server found is inquired on a takeover
//! leg with the new INVITE's offer. Its refusal (after failover on 408 and
//! 5xx) answers the new INVITE and the session goes on untouched. Its 2xx
//! answers the new INVITE (our new dialog with the client, with a tag of
//! ours), the session's client leg becomes that dialog (the session table
//! is re-keyed), the replaced dialog gets BYE, the old app server gets BYE
//! and billing opens a new segment. The new app server's 2xx is ACKed when
//! the client ACKs ours, end to end, as for a session change.

use std::sync::Arc;

use super::fanout::Search;
use super::*;
use crate::relay::catalog::Catalog;
use crate::relay::request_view::RequestView;
use crate::relay::session::{Direction, ReInvite, Transfer, TransferBy};
use crate::sip::message::HeaderName;
use crate::store::clients::Client;

/// The rule, service, the rule's `set` headers and the app servers (in the
/// order to try) for `view`; no rule or service, none.
pub(super) fn search(
    catalog: &Catalog,
    view: &dyn RequestView,
    ctx: &RequestContext<'_>,
) -> Option<Search> {
    let rule = catalog.rules.search(view, ctx)?;
    let entry = catalog.services.get(&rule.rule.service_id)?;
    Some(Search {
        service_id: entry.service.id.clone(),
        rule_id: rule.rule.id.clone(),
        attributes: rule.attributes(),
        candidates: catalog.candidate_ids(entry),
    })
}

/// A Replaces header value (RFC 3891 §6.1).
#[derive(Debug, PartialEq, Eq)]
struct Replaces {
    call_id: String,
    to_tag: String,
    from_tag: String,
    early_only: bool,
}

fn parse_replaces(value: &[u8]) -> Option<Replaces> {
    let value = std::str::from_utf8(value).ok()?;
    let mut parts = value.split(';').map(str::trim);
    let call_id = parts.next().filter(|c| !c.is_empty())?.to_string();
    let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
    for param in parts {
        let (name, v) = param.split_once('=').unwrap_or((param, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "to-tag" => to_tag = Some(v.trim().to_string()),
            "from-tag" => from_tag = Some(v.trim().to_string()),
            "early-only" => early_only = true,
            _ => {}
        }
    }
    Some(Replaces {
        call_id,
        to_tag: to_tag?,
        from_tag: from_tag?,
        early_only,
    })
}

impl Core {
    /// A new INVITE from `client` with a Replaces header.
    pub(in crate::relay) fn on_replaces(
        &mut self,
        tx: ServerTxId,
        msg: Message,
        flow: Flow,
        client: Arc<Client>,
    ) {
        // RFC 3891 §3: exactly one Replaces, else 400.
        let mut values = msg.get_all(HeaderName::Replaces);
        let replaces = match (values.next(), values.next()) {
            (Some(v), None) => parse_replaces(v.value),
            _ => None,
        };
        let Some(r) = replaces else {
            self.respond(&tx, &msg, 400, "Bad Replaces Header", &[]);
            return;
        };
        let found = self
            .sessions
            .by_dialog_id(&r.call_id, &r.from_tag, &r.to_tag);
        let Some((id, session)) =
            found.and_then(|id| Some((id.clone(), self.sessions.get_mut(&id)?)))
        else {
            self.respond(&tx, &msg, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        let refusal = if session.direction != Direction::FromClient {
            Some((481, "Call/Transaction Does Not Exist"))
        } else if session.client.as_ref().is_none_or(|c| c.id != client.id) {
            Some((403, "Not Your Dialog"))
        } else {
            match session.state {
                State::Ended => Some((603, "Declined")),
                State::Proceeding | State::Answered => {
                    Some((481, "Call/Transaction Does Not Exist"))
                }
                State::Established if r.early_only => Some((486, "Busy Here")),
                State::Established if session.busy() => Some((491, "Request Pending")),
                State::Established => None,
            }
        };
        if let Some((code, reason)) = refusal {
            self.respond(&tx, &msg, code, reason, &[]);
            return;
        }
        let catalog = self.d.catalog.snapshot();
        let ctx = RequestContext {
            client_id: Some(&client.id),
            source: Some(flow.remote.ip()),
        };
        let Some(search) = search(&catalog, &msg, &ctx) else {
            self.respond(&tx, &msg, 404, "No Service Matches", &[]);
            return;
        };
        if search.candidates.is_empty() {
            let retry = [("Retry-After", "30".to_string())];
            self.respond(&tx, &msg, 503, "No Application Server Available", &retry);
            return;
        }
        let Some(leg) = super::inbound::client_leg(tx, &msg, flow) else {
            self.respond(&tx, &msg, 400, "Malformed Dialog Headers", &[]);
            return;
        };
        let detail = format!(
            "INVITE replacing {}: rule {} service {}",
            r.call_id, search.rule_id, search.service_id
        );
        session.best_failure = None;
        session.transfer = Some(Box::new(Transfer {
            how: TransferBy::Replaces { leg: Box::new(leg) },
            leg: usize::MAX,
            service_id: search.service_id,
            rule_id: search.rule_id,
            attributes: search.attributes,
            candidates: search.candidates,
            target: text(msg.request_uri_raw().unwrap_or_default()),
            ack: None,
        }));
        self.sessions.index_invite_tx(tx, &id);
        self.event(&id, "transfer", Some(detail));
        self.inquire_transfer(&id);
    }

    /// A provisional or final response of ours to the INVITE with Replaces
    /// still pending, in its new dialog, with `answer`'s body.
    pub(super) fn answer_replacing(
        &mut self,
        id: &str,
        code: u16,
        reason: &str,
        answer: Option<&Message>,
    ) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let Some(TransferBy::Replaces { leg }) = session.transfer.as_ref().map(|t| &t.how) else {
            return;
        };
        let (flow, tx) = (leg.flow, leg.invite_tx);
        let local = self.local_for(&flow);
        let Some(TransferBy::Replaces { leg }) = self
            .sessions
            .get_mut(id)
            .and_then(|s| s.transfer.as_ref())
            .map(|t| &t.how)
        else {
            return;
        };
        if let Ok(bytes) = legs::client_response(&local, leg, code, reason, answer, &[]) {
            self.d.layer.respond(&tx, code, bytes);
        }
    }

    /// The app server answered the INVITE with Replaces: the client gets
    /// its answer in the new dialog, which takes the old one's place.
    pub(super) fn replacing_answered(
        &mut self,
        tx: ClientTxId,
        id: &str,
        index: usize,
        answer: &Message,
    ) {
        let Some(t) = self.sessions.get_mut(id).and_then(|s| s.transfer.take()) else {
            return;
        };
        let TransferBy::Replaces { leg } = t.how else {
            return;
        };
        let local = self.local_for(&leg.flow);
        let inbound_timer = leg.invite.as_ref().and_then(|i| self.inbound_timer(i));
        let headers = inbound_timer
            .map(|t| super::session_timer::timer_headers_for(&t, false))
            .unwrap_or_default();
        let code = answer.status().unwrap_or(200);
        let reason = text(answer.reason().unwrap_or(b"OK"));
        let Ok(ok) = legs::client_response(&local, &leg, code, &reason, Some(answer), &headers)
        else {
            self.drop_takeover_leg(id, index, None);
            let failed = legs::client_response(&local, &leg, 500, "Cannot Answer", None, &[]);
            if let Ok(bytes) = failed {
                self.d.layer.respond(&leg.invite_tx, 500, bytes);
            }
            self.event(id, "transfer_failed", Some("500 Cannot Answer".into()));
            return;
        };
        self.d.layer.respond(&leg.invite_tx, code, ok.clone());
        let (server_tx, cseq) = (
            leg.invite_tx,
            leg.invite
                .as_ref()
                .and_then(|i| i.cseq().ok())
                .map(|c| c.seq),
        );
        // RFC 3891 §3: the replaced dialog ends with BYE.
        self.hang_up_client(id);
        let now = Timestamp::now();
        let old = self.sessions.get_mut(id).map(|s| s.client_leg_record());
        self.sessions.replace_client_leg(id, *leg);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let armed = session.timers[0].is_some_and(|t| t.armed);
        session.timers[0] = inbound_timer.map(|mut t| {
            t.armed = armed;
            t
        });
        // The new app server's 2xx is ACKed with the client's ACK, and its
        // retransmissions answered with our 2xx meanwhile (`reinvite`).
        let previous = session.reinvite.replace(Box::new(ReInvite {
            inbound: true,
            leg: index,
            server_tx,
            cseq: cseq.unwrap_or_default(),
            copy_tx: tx,
            copy_cseq: 1,
            offerless: false,
            relayed: Some((code, ok)),
            ack: None,
        }));
        let new = session.client_leg_record();
        if let Some(old) = previous {
            self.sessions.forget_tx(&old.copy_tx);
        }
        if let Some(mut old) = old {
            old.ended_at = Some(now);
            self.publish(SessionChange::Leg(Box::new(old)));
        }
        self.publish(SessionChange::Leg(Box::new(new)));
        self.refreshed(id, true);
        let timer = self.outbound_timer(answer);
        let to = super::segments::Takeover {
            service_id: t.service_id,
            rule_id: t.rule_id,
            attributes: t.attributes,
        };
        self.move_to_leg(id, index, to, timer, "transferred");
    }

    /// A CANCEL of a pending INVITE with Replaces (RFC 3261 §9.2): 200, the
    /// app server inquired is given up, the INVITE gets 487. False when
    /// `invite` is no such INVITE.
    pub(in crate::relay) fn replaces_cancel(
        &mut self,
        tx: &ServerTxId,
        msg: &Message,
        invite: &ServerTxId,
    ) -> bool {
        let Some(id) = self.sessions.by_invite_tx(invite) else {
            return false;
        };
        let Some(t) = self
            .sessions
            .get_mut(&id)
            .and_then(|s| s.transfer.as_ref())
            .filter(|t| t.pending())
        else {
            return false;
        };
        let index = t.leg;
        if !matches!(&t.how, TransferBy::Replaces { leg } if leg.invite_tx == *invite) {
            return false;
        }
        self.respond(tx, msg, 200, "OK", &[]);
        self.drop_takeover_leg(&id, index, None);
        self.transfer_failed(&id, 487, "Request Terminated");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_values() {
        assert_eq!(
            parse_replaces(b"abc@host;to-tag=ours;from-tag=theirs"),
            Some(Replaces {
                call_id: "abc@host".into(),
                to_tag: "ours".into(),
                from_tag: "theirs".into(),
                early_only: false,
            })
        );
        let early = parse_replaces(b"abc ; from-tag=b ;To-Tag=a; early-only").expect("parses");
        assert!(early.early_only);
        assert_eq!((early.to_tag.as_str(), early.from_tag.as_str()), ("a", "b"));
        assert_eq!(parse_replaces(b"abc;to-tag=a"), None);
        assert_eq!(parse_replaces(b";to-tag=a;from-tag=b"), None);
    }
}
