//! Application charges sent in SIP (SPEC §4): an in-dialog INFO from the
//! app server with `Content-Type: application/vnd.switchboard.charge+json`
//! is answered by Switchboard itself (RFC 6086 lets INFO carry an
//! application's body) and never reaches the client. The body is checked
//! here without touching the database; the charge is written by the billing
//! ledger, which never loses it.

use super::*;
use crate::billing::charges::{parse_sip_charge, ChargeSession, ChargeSource};
use crate::relay::session::Direction;

/// The media type of a charge.
pub const CHARGE_CONTENT_TYPE: &str = "application/vnd.switchboard.charge+json";

/// Charges kept per session to recognise a replayed INFO; beyond, further
/// charges are refused (a session does not bill thousands of items).
const MAX_CHARGES_PER_SESSION: usize = 1024;

/// Whether `msg` is an INFO carrying a charge.
pub(in crate::relay) fn is_charge(msg: &Message) -> bool {
    msg.method() == Some(Method::Info)
        && msg.header_value("Content-Type").is_some_and(|v| {
            let media = v.split(|b| *b == b';').next().unwrap_or_default();
            media
                .trim_ascii()
                .eq_ignore_ascii_case(CHARGE_CONTENT_TYPE.as_bytes())
        })
}

impl Core {
    /// Answers a charge INFO received on session `id` (`inbound`: on the
    /// session's inbound leg).
    pub(in crate::relay) fn take_charge(
        &mut self,
        tx: &ServerTxId,
        msg: &Message,
        id: &str,
        inbound: bool,
    ) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let from_app_server = match session.direction {
            Direction::FromClient => !inbound,
            Direction::FromAppServer => inbound,
        };
        if !from_app_server {
            self.respond(tx, msg, 403, "Charges Come From The App Server", &[]);
            return;
        }
        let content_type = msg
            .header_value("Content-Type")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        let request = match parse_sip_charge(content_type.as_deref(), msg.body()) {
            Ok(r) => r,
            Err(rejection) => {
                let reason = reason_phrase(rejection.reason());
                self.respond(tx, msg, rejection.sip_status(), &reason, &[]);
                return;
            }
        };
        let hash = request.request_hash(id);
        match session.charge_keys.get(&request.idempotency_key) {
            // The same charge again (a retransmission or a retry): already
            // taken, taken once.
            Some(first) if *first == hash => {
                self.respond(tx, msg, 200, "OK", &[]);
                return;
            }
            Some(_) => {
                self.respond(
                    tx,
                    msg,
                    400,
                    "idempotency_key already used for a different charge",
                    &[],
                );
                return;
            }
            None if session.charge_keys.len() >= MAX_CHARGES_PER_SESSION => {
                self.respond(tx, msg, 403, "Too Many Charges For One Session", &[]);
                return;
            }
            None => {}
        }
        session
            .charge_keys
            .insert(request.idempotency_key.clone(), hash);
        let record = session.record(&self.d.node);
        let charge = request.to_charge(
            &ChargeSession {
                session_id: id.to_string(),
                app_server_id: record.app_server_id,
                client_id: record.client_id,
                service_id: record.service_id,
            },
            ChargeSource::Sip,
            Timestamp::now(),
        );
        let detail = format!("{} {}", charge.amount.0.normalize(), charge.currency);
        if self.d.charges.send(charge).is_err() {
            // The ledger is gone: the process is stopping. Refuse rather
            // than accept a charge that would not be written.
            if let Some(s) = self.sessions.get_mut(id) {
                s.charge_keys.remove(&request.idempotency_key);
            }
            self.respond(tx, msg, 503, "Service Unavailable", &[]);
            return;
        }
        self.event(id, "charge", Some(detail));
        self.respond(tx, msg, 200, "OK", &[]);
    }
}

/// A reason phrase from a message meant for people: one line, bounded.
fn reason_phrase(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}
