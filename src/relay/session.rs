//! A session as the relay holds it: the client leg (we are UAS), its AS
//! legs (we are UAC), and what is published about it.

use ahash::HashMap;
use std::sync::Arc;

use super::b2bua::Midcall;
use super::refusal::{best_response, relayable};
use super::timers::TimerKey;
use crate::sip::message::Message;
use crate::sip::transaction::{ClientTxId, ServerTxId};
use crate::sip::transport::Flow;
use crate::store::clients::Client;
use crate::store::sessions::{LegRecord, SegmentRecord, SessionRecord};
use crate::store::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Inquiring app servers.
    Proceeding,
    /// A 2xx was relayed to the client; waiting for its ACK.
    Answered,
    Established,
    Ended,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proceeding => "proceeding",
            Self::Answered => "answered",
            Self::Established => "established",
            Self::Ended => "ended",
        }
    }
}

/// Who started the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A client asked for a service: the inbound leg is the client's, the
    /// outbound legs go to app servers.
    FromClient,
    /// An app server called a registered client: the inbound leg is the
    /// app server's, the outbound legs go to the client's contacts.
    FromAppServer,
}

/// The inbound dialog (Switchboard is the UAS): the client's, or for an
/// AS-initiated session the app server's.
#[derive(Debug)]
pub struct ClientLeg {
    pub leg_id: String,
    /// The client's INVITE (responses and our requests to the client are
    /// built from it); let go when the session ends ([`Session::linger`]).
    pub invite: Option<Message>,
    pub invite_tx: ServerTxId,
    pub flow: Flow,
    pub call_id: String,
    /// The client's tag (its From tag).
    pub remote_tag: String,
    /// Our tag (To tag of our responses).
    pub local_tag: String,
    /// The client's Contact URI: the target of our in-dialog requests.
    /// Changed only by [`ClientLeg::retarget`].
    pub remote_target: String,
    /// Whether `remote_target` changed since the leg was published: then
    /// the session's end writes the leg again, else the end is the
    /// session's alone (see [`crate::store::sessions::LegRecord::ended_at`]).
    pub retargeted: bool,
    /// Route headers of our in-dialog requests: the INVITE's Record-Route
    /// values in order (RFC 3261 §12.1.1).
    pub route_set: Vec<String>,
    /// CSeq of the requests we send to the client.
    pub local_cseq: u32,
    /// The 2xx we relayed (status and bytes), re-sent as it was while the
    /// client has not ACKed (not after the session ended: the AS's own
    /// retransmissions then find nothing to re-send).
    pub final_response: Option<(u16, bytes::Bytes)>,
}

impl ClientLeg {
    /// A target refresh (RFC 3261 §12.2): in-dialog requests to the
    /// client now go to `target`.
    pub fn retarget(&mut self, target: String) {
        if target != self.remote_target {
            self.remote_target = target;
            self.retargeted = true;
        }
    }
}

/// One outbound dialog (Switchboard is the UAC): an inquiry of an app
/// server, or for an AS-initiated session a call to one client contact.
#[derive(Debug)]
pub struct AsLeg {
    pub leg_id: String,
    /// The app server called (none when the leg goes to a client).
    pub app_server_id: Option<String>,
    pub flow: Flow,
    /// Our INVITE to the AS (kept for CANCEL and ACK); let go when the
    /// session ends if the leg's ACK is kept ([`Session::linger`]).
    pub invite: Option<Message>,
    pub invite_tx: ClientTxId,
    pub request_uri: String,
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    pub remote_target: Option<String>,
    /// Route headers of our in-dialog requests: the 2xx's Record-Route
    /// values in reverse order (RFC 3261 §12.1.2).
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    /// Any response (even 100) came: the AS is alive, and a CANCEL may be
    /// sent (RFC 3261 §9.1).
    pub responded: bool,
    /// We gave up on the leg before any response: the CANCEL goes out when
    /// the first provisional response arrives (RFC 3261 §9.1).
    pub cancel_wanted: bool,
    /// The ACK sent for the 2xx (with the answer to a delayed offer),
    /// re-sent for each retransmission of that 2xx.
    pub ack: Option<bytes::Bytes>,
    /// The inquiry's no-response and ring timers, cancelled once the AS
    /// responds and answers: an answered call would otherwise keep its
    /// ring timer (up to Timer C, 3 minutes) and the session id it holds.
    pub silent_timer: Option<TimerKey>,
    pub ring_timer: Option<TimerKey>,
    pub state: LegState,
    pub created_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    Calling,
    Early,
    Answered,
    Acked,
    Cancelled,
    Failed,
    Ended,
}

/// A negotiated session timer on one leg (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegTimer {
    /// Session-Expires, in seconds.
    pub interval: u32,
    /// Switchboard sends the refreshes (else the peer must).
    pub we_refresh: bool,
    /// When our refresh is due, or when the peer's is overdue.
    pub deadline: tokio::time::Instant,
    /// A core timer is pending for this leg. There is never more than one:
    /// a refresh only moves `deadline`, and the pending timer re-arms itself
    /// for it when it fires early.
    pub armed: bool,
}

impl LegTimer {
    pub fn new(interval: u32, we_refresh: bool) -> Self {
        Self {
            interval,
            we_refresh,
            deadline: tokio::time::Instant::now(),
            armed: false,
        }
    }
}

/// A re-INVITE relayed from one side to the other (RFC 3261 §14), kept
/// from its arrival until the next one: while it is pending (no ACK sent
/// on the other side yet) another re-INVITE gets 491 (§14.2); afterwards
/// it lets retransmitted 2xx be answered again.
#[derive(Debug)]
pub struct ReInvite {
    /// It came on the inbound leg (else on outbound leg `leg`).
    pub inbound: bool,
    /// The outbound leg involved.
    pub leg: usize,
    /// The re-INVITE's server transaction and CSeq number on its side.
    pub server_tx: ServerTxId,
    pub cseq: u32,
    /// Our copy on the other side: its transaction and CSeq (the ACK's).
    pub copy_tx: ClientTxId,
    pub copy_cseq: u32,
    /// No offer in the re-INVITE: the 2xx carries the offer and the answer
    /// comes in the ACK, which is relayed with it (§14.1, RFC 6337 §3).
    pub offerless: bool,
    /// The 2xx relayed back (status and bytes).
    pub relayed: Option<(u16, bytes::Bytes)>,
    /// The ACK sent on the other side, re-sent for each 2xx retransmission.
    pub ack: Option<bytes::Bytes>,
}

impl ReInvite {
    /// In progress (RFC 3261 §14.2): not yet ACKed on the other side.
    pub fn pending(&self) -> bool {
        self.ack.is_none()
    }
}

/// A billing segment as the relay holds it (SPEC §4): which service and
/// app server, from when to when. Numbered from 1 by position.
#[derive(Debug, Clone)]
pub struct Segment {
    pub service_id: Option<String>,
    pub app_server_id: Option<String>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// Call-ID of the AS leg that served it.
    pub as_call_id: Option<String>,
    /// Set when it ended before the session did: how the session moved on.
    pub end_reason: Option<String>,
}

/// A session change under way (SPEC §2 claim 5): another app server was
/// asked to take the session over with a new offer, on outbound leg `leg`.
#[derive(Debug)]
pub struct Change {
    /// The client's re-INVITE or UPDATE, answered when the new AS answers.
    pub request: Message,
    pub server_tx: ServerTxId,
    pub leg: usize,
    pub service_id: String,
    pub rule_id: String,
    /// Headers from the new rule's `set`, for the new app server.
    pub attributes: Vec<(String, String)>,
    /// Other app servers of the service still to try (failover).
    pub candidates: Vec<String>,
}

/// A session transfer under way (SPEC §2 claim 6): another app server is
/// inquired on outbound leg `leg` to take the session over.
#[derive(Debug)]
pub struct Transfer {
    pub how: TransferBy,
    /// The takeover leg (`usize::MAX` before one is open).
    pub leg: usize,
    pub service_id: String,
    pub rule_id: String,
    /// Headers from the new rule's `set`, for the new app server.
    pub attributes: Vec<(String, String)>,
    /// Other app servers of the service still to try (failover).
    pub candidates: Vec<String>,
    /// The URI naming the service (Refer-To, or the new INVITE's
    /// Request-URI): its user part goes to the app server.
    pub target: String,
    /// The ACK sent for the client's 2xx to our re-INVITE (REFER only),
    /// re-sent for its retransmissions; set once the transfer is done.
    pub ack: Option<bytes::Bytes>,
}

impl Transfer {
    /// Not done yet.
    pub fn pending(&self) -> bool {
        self.ack.is_none()
    }
}

/// How a transfer was asked for.
#[derive(Debug)]
pub enum TransferBy {
    /// A REFER in the client's dialog (RFC 3515): progress goes back in
    /// NOTIFYs; the new app server's 2xx (its offer) is kept until the
    /// client answers our re-INVITE (`reinvite`: its transaction, CSeq).
    Refer {
        refer_cseq: u32,
        offer: Option<Message>,
        reinvite: Option<(ClientTxId, u32)>,
    },
    /// An INVITE with Replaces (RFC 3891): its dialog (`leg`, not yet
    /// answered) replaces the session's client dialog.
    Replaces { leg: Box<ClientLeg> },
}

/// The rarely used parts (a change, a transfer, a re-INVITE) are boxed:
/// every held session pays for what is inline, and at 100,000 sessions
/// each hundred bytes is ten megabytes.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub request_id: String,
    /// One of the sessions of a parallel fan-out (SPEC §2 claim 7): they
    /// share the client's INVITE transaction and `request_id`, and each is
    /// its own dialog with the client (its own To tag).
    pub fanout: bool,
    pub state: State,
    pub direction: Direction,
    pub client: Option<Arc<Client>>,
    pub service_id: Option<String>,
    pub rule_id: Option<String>,
    /// The app server that started an AS-initiated session.
    pub origin_app_server: Option<String>,
    /// The best final failure so far (RFC 3261 §16.7), relayed when no
    /// outbound leg succeeds.
    pub best_failure: Option<(u16, String)>,
    /// Session timers of the inbound [0] and the answering outbound [1] leg.
    pub timers: [Option<LegTimer>; 2],
    /// Requests relayed inside the dialog, by the server transaction of the
    /// original; they go with the session.
    pub relays: HashMap<ServerTxId, Midcall>,
    /// The latest re-INVITE relayed.
    pub reinvite: Option<Box<ReInvite>>,
    /// Headers from the rule's `set`.
    pub attributes: Vec<(String, String)>,
    /// Charges taken in SIP on this session: idempotency key to the hash
    /// of the charge (a replay is recognised, a conflicting one refused).
    pub charge_keys: HashMap<String, String>,
    /// Billing segments, the last one open while the session lasts.
    pub segments: Vec<Segment>,
    /// A session change waiting for another app server's answer.
    pub change: Option<Box<Change>>,
    /// A transfer (REFER or Replaces), pending or the latest done.
    pub transfer: Option<Box<Transfer>>,
    pub client_leg: ClientLeg,
    pub as_legs: Vec<AsLeg>,
    /// App servers still to try (failover), in order.
    pub candidates: Vec<String>,
    pub caller_uri: String,
    pub callee_uri: String,
    pub created_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub end_reason: Option<String>,
    pub final_status: Option<u16>,
}

impl Session {
    /// An INVITE transaction is in progress in the dialogs (RFC 3261
    /// §14.2): a re-INVITE, a change or a transfer to another app server.
    pub fn busy(&self) -> bool {
        self.reinvite.as_ref().is_some_and(|r| r.pending())
            || self.change.is_some()
            || self.transfer.as_ref().is_some_and(|t| t.pending())
    }

    /// Lets go of what an ended session no longer needs while it lingers
    /// (see `Core::end`). What stays finds its dialogs (the indexes' ids,
    /// tags and Call-IDs), so late requests get 481 and late 2xx their
    /// ACK again (RFC 3261 §13.2.2.4): some 32 s at thousands of calls a
    /// second, where each kilobyte kept is hundreds of megabytes.
    pub fn linger(&mut self) {
        // A relayed re-INVITE whose 2xx is not yet ACKed: that ACK, when it
        // comes, still goes on to the other side (§14, §13.2.2.4), built
        // from that side's dialog. Rare enough to keep both sides'
        // INVITEs and route sets.
        let acking = self.reinvite.as_ref().is_some_and(|r| r.pending());
        // A fan-out's final response may yet go out through any of its
        // sessions, ended ones included (RFC 3261 §16.7): they keep the
        // INVITE it is built from.
        if !self.fanout && !acking {
            self.client_leg.invite = None;
            self.client_leg.route_set = Vec::new();
        }
        self.client_leg.final_response = None;
        for leg in &mut self.as_legs {
            // A leg given up before its 2xx may still be answered: the ACK
            // and BYE for that answer are built from its INVITE (§15).
            if leg.ack.is_some() && !acking {
                leg.invite = None;
                leg.route_set = Vec::new();
            }
        }
        self.attributes = Vec::new();
        self.charge_keys = HashMap::default();
        self.candidates = Vec::new();
        self.segments = Vec::new();
    }

    /// The takeover leg of the pending change or transfer.
    pub fn takeover_leg(&self) -> Option<usize> {
        let transfer = self.transfer.as_ref().filter(|t| t.pending());
        self.change
            .as_ref()
            .map(|c| c.leg)
            .or(transfer.map(|t| t.leg))
    }

    /// The AS leg that answered (or the latest one tried).
    pub fn active_leg(&self) -> Option<&AsLeg> {
        self.as_legs
            .iter()
            .find(|l| matches!(l.state, LegState::Answered | LegState::Acked))
            .or_else(|| self.as_legs.last())
    }

    /// The outbound leg that answered, if one did.
    pub fn answered_leg(&self) -> Option<usize> {
        self.as_legs
            .iter()
            .position(|l| matches!(l.state, LegState::Answered | LegState::Acked))
    }

    pub fn duration_ms(&self) -> Option<i64> {
        match (self.answered_at, self.ended_at) {
            (Some(a), Some(e)) => Some((e.millis() - a.millis()).max(0)),
            _ => None,
        }
    }

    /// Keeps the better of two final failures (RFC 3261 §16.7, see
    /// [`best_response`]; between equals the first stays).
    pub fn note_failure(&mut self, code: u16, reason: &str) {
        if self
            .best_failure
            .as_ref()
            .is_none_or(|(best, _)| best_response(&[*best, code]) == Some(1))
        {
            self.best_failure = Some((code, reason.to_string()));
        }
    }

    /// The best failure so far as the client may receive it (see
    /// [`relayable`]).
    pub fn refusal(&self) -> Option<(u16, String)> {
        self.best_failure
            .as_ref()
            .map(|(code, reason)| relayable(*code, reason))
    }

    /// Outbound legs still waiting for a final answer.
    pub fn pending_legs(&self) -> usize {
        self.as_legs
            .iter()
            .filter(|l| matches!(l.state, LegState::Calling | LegState::Early))
            .count()
    }

    /// End reason of a BYE that came on the inbound (true) or an outbound
    /// leg.
    pub fn bye_reason(&self, inbound: bool) -> &'static str {
        match (self.direction, inbound) {
            (Direction::FromClient, true) | (Direction::FromAppServer, false) => "client_bye",
            _ => "as_bye",
        }
    }

    pub fn record(&self, node: &str) -> SessionRecord {
        let active = self.active_leg();
        let (app_server_id, client_call_id, as_call_id) = match self.direction {
            Direction::FromClient => (
                active.and_then(|l| l.app_server_id.clone()),
                self.client_leg.call_id.clone(),
                active.map(|l| l.call_id.clone()),
            ),
            Direction::FromAppServer => (
                self.origin_app_server.clone(),
                active.map(|l| l.call_id.clone()).unwrap_or_default(),
                Some(self.client_leg.call_id.clone()),
            ),
        };
        SessionRecord {
            id: self.id.clone(),
            request_id: self.request_id.clone(),
            state: self.state.as_str().into(),
            client_id: self.client.as_ref().map(|c| c.id.clone()),
            service_id: self.service_id.clone(),
            rule_id: self.rule_id.clone(),
            app_server_id,
            caller_uri: self.caller_uri.clone(),
            callee_uri: self.callee_uri.clone(),
            client_call_id,
            as_call_id,
            node: node.to_string(),
            created_at: self.created_at,
            answered_at: self.answered_at,
            ended_at: self.ended_at,
            duration_ms: self.duration_ms(),
            end_reason: self.end_reason.clone(),
            final_status: self.final_status.map(i32::from),
        }
    }

    /// The published form of segment `index` (0-based; numbered from 1).
    pub fn segment_record(&self, index: usize) -> Option<SegmentRecord> {
        let g = self.segments.get(index)?;
        Some(SegmentRecord {
            session_id: self.id.clone(),
            segment: i32::try_from(index + 1).unwrap_or(i32::MAX),
            service_id: g.service_id.clone(),
            app_server_id: g.app_server_id.clone(),
            started_at: g.started_at,
            ended_at: g.ended_at,
        })
    }

    /// Every segment as billing sees it.
    pub fn segment_bills(&self) -> Vec<crate::billing::cdr::SegmentBill> {
        self.segments
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                Some(crate::billing::cdr::SegmentBill {
                    segment: self.segment_record(i)?,
                    as_call_id: g.as_call_id.clone(),
                    end_reason: g.end_reason.clone(),
                })
            })
            .collect()
    }

    pub fn client_leg_record(&self) -> LegRecord {
        let c = &self.client_leg;
        LegRecord {
            id: c.leg_id.clone(),
            session_id: self.id.clone(),
            kind: match self.direction {
                Direction::FromClient => "client".into(),
                Direction::FromAppServer => "as".into(),
            },
            app_server_id: self.origin_app_server.clone(),
            call_id: c.call_id.clone(),
            local_tag: Some(c.local_tag.clone()),
            remote_tag: Some(c.remote_tag.clone()),
            remote_uri: Some(c.remote_target.clone()),
            created_at: self.created_at,
            ended_at: self.ended_at,
        }
    }

    /// The record of outbound leg `index`, if there is one.
    pub fn leg_record(&self, index: usize) -> Option<LegRecord> {
        self.as_legs.get(index).map(|l| self.as_leg_record(l))
    }

    pub fn as_leg_record(&self, leg: &AsLeg) -> LegRecord {
        LegRecord {
            id: leg.leg_id.clone(),
            session_id: self.id.clone(),
            kind: match self.direction {
                Direction::FromClient => "as".into(),
                Direction::FromAppServer => "client".into(),
            },
            app_server_id: leg.app_server_id.clone(),
            call_id: leg.call_id.clone(),
            local_tag: Some(leg.local_tag.clone()),
            remote_tag: leg.remote_tag.clone(),
            remote_uri: Some(leg.request_uri.clone()),
            created_at: leg.created_at,
            ended_at: leg.ended_at,
        }
    }
}
