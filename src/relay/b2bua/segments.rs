//! Billing segments (SPEC §4): one per app server that delivered the
//! session. The first opens when the client's ACK confirms the session; a
//! session change or a transfer that moves the session to another app
//! server closes it and opens the next; the end of the session closes the
//! last. Each segment becomes its own CDR.

use super::*;
use crate::relay::session::{Direction, LegTimer, Segment};

/// What the session serves after it moves to another app server: the
/// service, the rule that chose it and that rule's `set` headers.
pub(super) struct Takeover {
    pub service_id: String,
    pub rule_id: String,
    pub attributes: Vec<(String, String)>,
}

impl Core {
    /// Opens the session's next segment at `at`, for its current service
    /// and the app server of its answered leg.
    pub(in crate::relay) fn open_segment(&mut self, id: &str, at: Timestamp) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let leg = session.answered_leg().and_then(|i| session.as_legs.get(i));
        let as_call_id = leg.map(|l| l.call_id.clone());
        let app_server_id = match session.direction {
            Direction::FromClient => leg.and_then(|l| l.app_server_id.clone()),
            Direction::FromAppServer => session.origin_app_server.clone(),
        };
        // One segment is the rule; `push` would make room for four.
        session.segments.reserve_exact(1);
        session.segments.push(Segment {
            service_id: session.service_id.clone(),
            app_server_id,
            started_at: at,
            ended_at: None,
            as_call_id,
            end_reason: None,
        });
        if let Some(record) = session.segment_record(session.segments.len() - 1) {
            self.publish(SessionChange::Segment(Box::new(record)));
        }
    }

    /// Closes the open segment, if any, at `at`; `why` when the session
    /// goes on without it. Without `why` the session ends with it: the
    /// segment is not written again, its row takes the session's end when
    /// read (see [`crate::store::sessions::SegmentRecord::ended_at`]).
    pub(in crate::relay) fn close_segment(&mut self, id: &str, at: Timestamp, why: Option<&str>) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let Some(last) = session.segments.last_mut().filter(|g| g.ended_at.is_none()) else {
            return;
        };
        last.ended_at = Some(at.max(last.started_at));
        last.end_reason = why.map(str::to_string);
        if why.is_none() {
            return;
        }
        if let Some(record) = session.segment_record(session.segments.len() - 1) {
            self.publish(SessionChange::Segment(Box::new(record)));
        }
    }

    /// The session moves to outbound leg `index`, answered by another app
    /// server for `to` (SPEC §2 claims 5 and 6): the leg it leaves
    /// is hung up with BYE, that app server's segment closes and the new
    /// one's opens, and the new leg's session timer (RFC 4028) replaces the
    /// old one's. `kind` names the event (`moved`, `transferred`).
    pub(super) fn move_to_leg(
        &mut self,
        id: &str,
        index: usize,
        to: Takeover,
        timer: Option<LegTimer>,
        kind: &str,
    ) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let old = session.as_legs.iter().enumerate().position(|(i, l)| {
            i != index && matches!(l.state, LegState::Answered | LegState::Acked)
        });
        let name = |i: Option<usize>| {
            i.and_then(|i| session.as_legs.get(i))
                .and_then(|l| l.app_server_id.clone())
                .unwrap_or_else(|| "-".into())
        };
        let detail = format!("from {} to {}", name(old), name(Some(index)));
        let armed = session.timers[1].is_some_and(|t| t.armed);
        session.timers[1] = timer.map(|mut t| {
            t.armed = armed;
            t
        });
        if let Some(old) = old {
            self.hang_up_as_leg(id, old);
        }
        let now = Timestamp::now();
        self.close_segment(id, now, Some(kind));
        if let Some(session) = self.sessions.get_mut(id) {
            session.service_id = Some(to.service_id);
            session.rule_id = Some(to.rule_id);
            session.attributes = to.attributes;
        }
        self.open_segment(id, now);
        self.refreshed(id, false);
        self.publish_by_id(id);
        self.event(id, kind, Some(detail));
    }
}
