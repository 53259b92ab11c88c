//! The CDR of an ended session (SPEC §4): the session as published, its
//! duration and the tariff applied.

use crate::store::cdrs::CdrRecord;
use crate::store::sessions::{SegmentRecord, SessionRecord};
use crate::store::tariffs::Tariff;
use crate::store::{new_id, Money, Timestamp};

/// The CDR of segment `segment` of an ended session, billed with `tariff`
/// (a session without a tariff is recorded at amount 0, currency unset).
pub fn cdr_for(session: &SessionRecord, segment: i32, tariff: Option<&Tariff>) -> CdrRecord {
    let duration_ms = session.duration_ms;
    let bill = tariff.map(|t| t.bill(duration_ms));
    CdrRecord {
        seq: 0,
        id: new_id(),
        session_id: session.id.clone(),
        request_id: session.request_id.clone(),
        segment,
        client_id: session.client_id.clone(),
        service_id: session.service_id.clone(),
        app_server_id: session.app_server_id.clone(),
        caller_uri: session.caller_uri.clone(),
        callee_uri: session.callee_uri.clone(),
        client_call_id: session.client_call_id.clone(),
        as_call_id: session.as_call_id.clone(),
        created_at: session.created_at,
        answered_at: session.answered_at,
        ended_at: session.ended_at.unwrap_or_else(Timestamp::now),
        duration_ms: duration_ms.unwrap_or(0),
        billed_seconds: bill.map_or(0, |b| b.billed_seconds),
        tariff_id: tariff.map(|t| t.id.clone()),
        amount: bill.map_or(Money::default(), |b| b.amount),
        currency: tariff.map(|t| t.currency.clone()),
        end_reason: session
            .end_reason
            .clone()
            .unwrap_or_else(|| "unknown".into()),
        final_status: session.final_status,
        node: session.node.clone(),
    }
}

/// One segment of a session as billing sees it: the segment, the Call-ID
/// of the AS leg that served it, and why it ended when it ended before the
/// session did (the session moved on).
#[derive(Debug, Clone)]
pub struct SegmentBill {
    pub segment: SegmentRecord,
    pub as_call_id: Option<String>,
    pub end_reason: Option<String>,
}

/// The CDRs of an ended session (SPEC §4): one per segment, each billed
/// with the tariff `tariff_of` names for its service; a session without
/// segments (never established) gets one CDR, segment 1.
pub fn cdrs_for<'t>(
    session: &SessionRecord,
    segments: &[SegmentBill],
    tariff_of: impl Fn(Option<&str>) -> Option<&'t Tariff>,
) -> Vec<CdrRecord> {
    if segments.is_empty() {
        return vec![cdr_for(
            session,
            1,
            tariff_of(session.service_id.as_deref()),
        )];
    }
    segments
        .iter()
        .map(|b| {
            let g = &b.segment;
            let mut part = session.clone();
            part.service_id = g.service_id.clone();
            part.app_server_id = g.app_server_id.clone();
            if b.as_call_id.is_some() {
                part.as_call_id = b.as_call_id.clone();
            }
            part.answered_at = Some(g.started_at);
            part.ended_at = g.ended_at.or(session.ended_at);
            part.duration_ms = part
                .ended_at
                .map(|e| (e.millis() - g.started_at.millis()).max(0));
            if let Some(reason) = &b.end_reason {
                part.end_reason = Some(reason.clone());
            }
            cdr_for(&part, g.segment, tariff_of(g.service_id.as_deref()))
        })
        .collect()
}
