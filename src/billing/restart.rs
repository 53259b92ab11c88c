//! Closing what a dead process left open (SPEC §4). At start, before SIP
//! traffic is taken, the sessions this node holds in the database that are
//! not ended are ended with reason `restart` and billed up to the last
//! moment the node was known alive; sessions whose end was published but
//! whose CDR was still in memory when the process died get their CDR. While
//! the node runs, a heartbeat keeps "last known alive" fresh.

use std::time::Duration;

use tokio::sync::watch;

use crate::billing::cdr::{cdrs_for, SegmentBill};
use crate::store::sessions::{SessionChange, SessionRecord};
use crate::store::tariffs::Tariff;
use crate::store::{Store, StoreResult, Timestamp};

/// How often the node records that it is alive; also the precision with
/// which sessions cut by a crash are billed.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// How far before the last heartbeat to look for ended sessions without a
/// CDR. A CDR can only be missing if it was queued in memory when the
/// process died, a moment before its last heartbeat at most; the margin
/// covers a database that was slow or briefly away.
const LOOKBACK_MS: i64 = 10 * 60 * 1000;

/// What the start-up closing did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// Open sessions ended with reason `restart`.
    pub sessions: usize,
    /// CDRs written, for those and for ended sessions that had none.
    pub cdrs: usize,
}

/// Ends the sessions `node` left open and writes the CDRs it owed, then
/// records that the node started. `tariff_of` names the tariff a session
/// is billed with for a service. Run once at start, before SIP traffic.
pub async fn close_orphans<'t>(
    store: &Store,
    node: &str,
    tariff_of: impl Fn(&SessionRecord, Option<&str>) -> Option<&'t Tariff>,
) -> StoreResult<Closed> {
    let now = Timestamp::now();
    let alive = store.node_last_seen(node).await?.unwrap_or(now);
    let bill = |s: &SessionRecord, segments: &[SegmentBill]| {
        cdrs_for(s, segments, |service| tariff_of(s, service))
    };

    let mut cdrs = Vec::new();
    let mut changes = Vec::new();
    let open = store.open_sessions_of_node(node).await?;
    for mut s in open.iter().cloned() {
        end_at_restart(&mut s, alive);
        // A session that moved between app servers is billed per segment;
        // the one still open ends where the session does.
        let mut segments = Vec::new();
        for mut g in store.session_segments(&s.id).await? {
            if g.ended_at.is_none() {
                g.ended_at = s.ended_at;
                changes.push(SessionChange::Segment(Box::new(g.clone())));
            }
            segments.push(SegmentBill {
                segment: g,
                as_call_id: None,
                end_reason: None,
            });
        }
        cdrs.extend(bill(&s, &segments));
        changes.push(SessionChange::Event {
            session_id: s.id.clone(),
            at: now,
            kind: "ended".into(),
            detail: Some("restart".into()),
        });
        changes.push(SessionChange::Session(Box::new(s)));
    }
    let since = Timestamp::from_millis(alive.millis() - LOOKBACK_MS);
    for s in store.ended_sessions_without_cdr(node, since).await? {
        let segments: Vec<SegmentBill> = store
            .session_segments(&s.id)
            .await?
            .into_iter()
            .map(|segment| SegmentBill {
                segment,
                as_call_id: None,
                end_reason: None,
            })
            .collect();
        cdrs.extend(bill(&s, &segments));
    }
    // CDRs first: if this start dies half-way, the next one finds the same
    // sessions open again and the CDRs already written change nothing.
    store.insert_cdrs(&cdrs).await?;
    store.apply_session_changes(&changes).await?;
    for s in &open {
        store
            .end_session_legs(&s.id, alive.max(s.created_at))
            .await?;
    }
    store.node_started(node, now).await?;
    let closed = Closed {
        sessions: open.len(),
        cdrs: cdrs.len(),
    };
    if closed.sessions > 0 || closed.cdrs > 0 {
        tracing::warn!(
            node,
            sessions = closed.sessions,
            cdrs = closed.cdrs,
            last_alive_ms = alive.millis(),
            "closed what the previous run of this node left open"
        );
    }
    Ok(closed)
}

/// Ends `s` at `alive` (never before it began or was answered).
fn end_at_restart(s: &mut SessionRecord, alive: Timestamp) {
    let start = s.answered_at.unwrap_or(s.created_at);
    let end = alive.max(start);
    s.state = "ended".into();
    s.ended_at = Some(end);
    s.duration_ms = s.answered_at.map(|a| end.millis() - a.millis());
    s.end_reason = Some("restart".into());
}

/// Records every [`HEARTBEAT`] that `node` is alive, until shutdown.
pub async fn heartbeat(store: Store, node: String, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = crate::shutdown::stopping(&mut shutdown) => {
                let _ = store.node_alive(&node, Timestamp::now()).await;
                return;
            }
        }
        match store.node_alive(&node, Timestamp::now()).await {
            Ok(()) if failing => {
                tracing::info!(node = %node, "heartbeat recorded again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::warn!(node = %node, error = %e, "heartbeat not recorded");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(created: i64, answered: Option<i64>) -> SessionRecord {
        SessionRecord {
            id: "s".into(),
            request_id: "r".into(),
            state: "established".into(),
            client_id: None,
            service_id: None,
            rule_id: None,
            app_server_id: None,
            caller_uri: "sip:a@x".into(),
            callee_uri: "sip:b@x".into(),
            client_call_id: "c".into(),
            as_call_id: None,
            node: "n".into(),
            created_at: Timestamp::from_millis(created),
            answered_at: answered.map(Timestamp::from_millis),
            ended_at: None,
            duration_ms: None,
            end_reason: None,
            final_status: None,
        }
    }

    #[test]
    fn answered_sessions_are_billed_up_to_the_last_heartbeat() {
        let mut s = session(1_000, Some(2_000));
        end_at_restart(&mut s, Timestamp::from_millis(9_500));
        assert_eq!(s.duration_ms, Some(7_500));
        assert_eq!(s.ended_at, Some(Timestamp::from_millis(9_500)));
        assert_eq!(s.end_reason.as_deref(), Some("restart"));
        assert_eq!(s.state, "ended");
    }

    #[test]
    fn unanswered_sessions_have_no_duration_and_never_end_before_they_began() {
        let mut s = session(5_000, None);
        end_at_restart(&mut s, Timestamp::from_millis(4_000));
        assert_eq!(s.duration_ms, None);
        assert_eq!(s.ended_at, Some(Timestamp::from_millis(5_000)));
    }
}
