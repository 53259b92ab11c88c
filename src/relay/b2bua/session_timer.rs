//! Session timers (RFC 4028), so that a session whose peer vanished ends
//! instead of lasting forever.
//!
//! Each leg negotiates its own timer. On the inbound leg the client
//! refreshes unless it asks us to (`refresher=uas`, §9); towards app
//! servers we ask them to refresh (`refresher=uas`) and refresh with UPDATE
//! ourselves only when an app server insists on `refresher=uac`. Intervals
//! are kept between our Min-SE and [`MAX_SESSION_EXPIRES`] whatever a peer
//! says. Each leg has at most one pending core timer: a refresh moves the
//! leg's deadline, and the timer re-arms itself when it fires early.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::relay::session::LegTimer;

/// Session-Expires we ask for (RFC 4028 §4 recommends 1800 s).
pub const SESSION_EXPIRES: u32 = 1800;

/// The longest interval we accept from a peer: beyond it a dead peer would
/// hold a session (and a client's `max_sessions` slot) for hours.
pub const MAX_SESSION_EXPIRES: u32 = 7200;

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

/// `interval` kept within [Min-SE, MAX_SESSION_EXPIRES]: a value below our
/// Min-SE (which an app server's answer may carry) is raised to it.
pub fn clamp_interval(interval: u32, min_se: u32) -> u32 {
    interval.clamp(min_se.min(MAX_SESSION_EXPIRES), MAX_SESSION_EXPIRES)
}

/// When to give up on a refresh: before the interval ends, by 32 s or a
/// third of it (RFC 4028 §10).
fn expiry_after(interval: u32) -> Duration {
    let margin = (interval / 3).min(32);
    Duration::from_secs(u64::from(interval.saturating_sub(margin).max(1)))
}

fn side(inbound: bool) -> usize {
    usize::from(!inbound)
}

impl Core {
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
            self.refreshed(id, side);
        }
    }

    /// A refresh seen (or sent) on one side: its deadline moves on. A core
    /// timer is only scheduled when none is pending for the leg.
    pub(in crate::relay) fn refreshed(&mut self, id: &str, inbound: bool) {
        let Some(t) = self
            .sessions
            .get_mut(id)
            .and_then(|s| s.timers[side(inbound)].as_mut())
        else {
            return;
        };
        let after = if t.we_refresh {
            Duration::from_secs(u64::from((t.interval / 2).max(1)))
        } else {
            expiry_after(t.interval)
        };
        t.deadline = Instant::now() + after;
        if t.armed {
            return;
        }
        t.armed = true;
        let session = id.to_string();
        self.schedule(after, CoreTimer::Session { session, inbound });
    }

    /// A refresh request (re-INVITE or UPDATE) from one side renegotiates
    /// that side's timer (RFC 4028 §9: we are the UAS). Returns false (after
    /// answering 422) when the interval is below our Min-SE.
    pub(in crate::relay) fn renegotiate_request(
        &mut self,
        tx: &ServerTxId,
        id: &str,
        inbound: bool,
        msg: &Message,
    ) -> bool {
        let min_se = self.d.config.min_session_expires;
        let Some((interval, refresher)) = session_expires(msg) else {
            return true;
        };
        if interval < min_se {
            self.respond(
                tx,
                msg,
                422,
                "Session Interval Too Small",
                &[("Min-SE", min_se.to_string())],
            );
            return false;
        }
        if let Some(t) = self
            .sessions
            .get_mut(id)
            .and_then(|s| s.timers[side(inbound)].as_mut())
        {
            t.interval = clamp_interval(interval, min_se);
            t.we_refresh = refresher.as_deref() == Some("uas");
        }
        true
    }

    /// The 2xx to a refresh we sent on one side renegotiates that side's
    /// timer (RFC 4028 §7.2: we are the UAC) and restarts it.
    pub(in crate::relay) fn renegotiate_answer(&mut self, id: &str, inbound: bool, msg: &Message) {
        let min_se = self.d.config.min_session_expires;
        if let (Some((interval, refresher)), Some(t)) = (
            session_expires(msg),
            self.sessions
                .get_mut(id)
                .and_then(|s| s.timers[side(inbound)].as_mut()),
        ) {
            t.interval = clamp_interval(interval, min_se);
            t.we_refresh = refresher.as_deref() == Some("uac");
        }
        self.refreshed(id, inbound);
    }

    /// The leg's core timer fired: early (the deadline moved) it re-arms,
    /// else our refresh is due or the peer's is overdue.
    pub(in crate::relay) fn on_session_timer(&mut self, id: &str, inbound: bool) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let established = session.state == State::Established;
        let Some(t) = session.timers[side(inbound)].as_mut() else {
            return;
        };
        t.armed = false;
        if !established {
            return;
        }
        let now = Instant::now();
        if t.deadline > now {
            t.armed = true;
            let after = t.deadline - now;
            let session = id.to_string();
            self.schedule(after, CoreTimer::Session { session, inbound });
        } else if t.we_refresh {
            self.send_refresh(id, inbound);
        } else {
            self.event(
                id,
                "session_timer",
                Some(if inbound { "inbound" } else { "outbound" }.into()),
            );
            self.terminate(id, "session_timer");
        }
    }

    /// Our turn to refresh one side: an UPDATE without a body (RFC 4028 §7.4).
    fn send_refresh(&mut self, id: &str, inbound: bool) {
        let headers = self.timer_headers(id, inbound, true);
        let Some(index) = self.sessions.get_mut(id).and_then(|s| s.answered_leg()) else {
            return;
        };
        let flow = if inbound {
            self.sessions_flow(id)
        } else {
            self.outbound_flow(id, index)
        };
        let local = self.local_for(&flow);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let built = if inbound {
            let leg = &mut session.client_leg;
            leg.local_cseq += 1;
            let r = legs::InDialog::with_headers(Method::Update, leg.local_cseq, &headers);
            legs::client_request(&local, leg, &r)
        } else {
            let Some(leg) = session.as_legs.get_mut(index) else {
                return;
            };
            leg.local_cseq += 1;
            let r = legs::InDialog::with_headers(Method::Update, leg.local_cseq, &headers);
            legs::as_request(&local, leg, &r)
        };
        if let Ok(update) = built {
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
            .and_then(|s| s.timers[side(inbound)])
        else {
            return Vec::new();
        };
        timer_headers_for(&t, request)
    }

    /// The inbound leg's timer for a 2xx: only when the peer supports
    /// timers; at the interval it asked for (kept within bounds) or ours;
    /// the peer refreshes unless it asked us to (RFC 4028 §9).
    pub(in crate::relay) fn inbound_timer(&self, invite: &Message) -> Option<LegTimer> {
        inbound_timer_of(invite, self.d.config.min_session_expires)
    }

    /// The outbound leg's timer from the 2xx of its INVITE (RFC 4028 §7.2),
    /// kept within bounds.
    pub(in crate::relay) fn outbound_timer(&self, answer: &Message) -> Option<LegTimer> {
        let (interval, refresher) = session_expires(answer)?;
        Some(LegTimer::new(
            clamp_interval(interval, self.d.config.min_session_expires),
            refresher.as_deref() == Some("uac"),
        ))
    }
}

/// [`Core::inbound_timer`] with the floor `min_se` given, for a caller
/// that holds a session borrowed from the core.
pub(in crate::relay) fn inbound_timer_of(invite: &Message, min_se: u32) -> Option<LegTimer> {
    if !supports_timer(invite) {
        return None;
    }
    let (interval, refresher) =
        session_expires(invite).unwrap_or((SESSION_EXPIRES.max(min_se), None));
    Some(LegTimer::new(
        clamp_interval(interval, min_se),
        refresher.as_deref() == Some("uas"),
    ))
}

/// Session-Expires and Require/Supported for a leg's timer.
pub(in crate::relay) fn timer_headers_for(
    t: &LegTimer,
    request: bool,
) -> Vec<(&'static str, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_stay_within_min_se_and_the_ceiling() {
        assert_eq!(
            clamp_interval(30, 90),
            90,
            "an AS's too short value is raised"
        );
        assert_eq!(clamp_interval(1800, 90), 1800);
        assert_eq!(clamp_interval(86_400, 90), MAX_SESSION_EXPIRES);
        assert_eq!(clamp_interval(2, 1), 2);
    }

    #[test]
    fn the_refresher_is_named_from_the_message_senders_view() {
        let ours = LegTimer::new(600, true);
        let theirs = LegTimer::new(600, false);
        assert_eq!(timer_headers_for(&ours, false)[0].1, "600;refresher=uas");
        assert_eq!(timer_headers_for(&ours, true)[0].1, "600;refresher=uac");
        assert_eq!(timer_headers_for(&theirs, false)[0].1, "600;refresher=uac");
        assert_eq!(timer_headers_for(&theirs, true)[0].1, "600;refresher=uas");
    }
}
