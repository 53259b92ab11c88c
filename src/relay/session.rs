//! A session as the relay holds it: the client leg (we are UAS), its AS
//! legs (we are UAC), and what is published about it.

use std::sync::Arc;

use crate::sip::message::Message;
use crate::sip::transaction::{ClientTxId, ServerTxId};
use crate::sip::transport::Flow;
use crate::store::clients::Client;
use crate::store::sessions::{LegRecord, SessionRecord};
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

/// The dialog with the client: Switchboard is the UAS.
#[derive(Debug)]
pub struct ClientLeg {
    pub leg_id: String,
    /// The client's INVITE (responses are built from it).
    pub invite: Message,
    pub invite_tx: ServerTxId,
    pub flow: Flow,
    pub call_id: String,
    /// The client's tag (its From tag).
    pub remote_tag: String,
    /// Our tag (To tag of our responses).
    pub local_tag: String,
    /// The client's Contact URI: the target of our in-dialog requests.
    pub remote_target: String,
    /// CSeq of the requests we send to the client.
    pub local_cseq: u32,
    /// The 2xx we relayed, re-sent while the client has not ACKed.
    pub final_response: Option<bytes::Bytes>,
}

/// One inquiry of an app server: Switchboard is the UAC.
#[derive(Debug)]
pub struct AsLeg {
    pub leg_id: String,
    pub app_server_id: String,
    pub flow: Flow,
    /// Our INVITE to the AS (kept for CANCEL and ACK).
    pub invite: Message,
    pub invite_tx: ClientTxId,
    pub request_uri: String,
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    pub remote_target: Option<String>,
    pub local_cseq: u32,
    /// Any response (even 100) came: the AS is alive.
    pub responded: bool,
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

#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub request_id: String,
    pub state: State,
    pub client: Option<Arc<Client>>,
    pub service_id: String,
    pub rule_id: String,
    /// Headers from the rule's `set`.
    pub attributes: Vec<(String, String)>,
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
    /// The AS leg that answered (or the latest one tried).
    pub fn active_leg(&self) -> Option<&AsLeg> {
        self.as_legs
            .iter()
            .find(|l| matches!(l.state, LegState::Answered | LegState::Acked))
            .or_else(|| self.as_legs.last())
    }

    pub fn duration_ms(&self) -> Option<i64> {
        match (self.answered_at, self.ended_at) {
            (Some(a), Some(e)) => Some((e.millis() - a.millis()).max(0)),
            _ => None,
        }
    }

    pub fn record(&self, node: &str) -> SessionRecord {
        let active = self.active_leg();
        SessionRecord {
            id: self.id.clone(),
            request_id: self.request_id.clone(),
            state: self.state.as_str().into(),
            client_id: self.client.as_ref().map(|c| c.id.clone()),
            service_id: Some(self.service_id.clone()),
            rule_id: Some(self.rule_id.clone()),
            app_server_id: active.map(|l| l.app_server_id.clone()),
            caller_uri: self.caller_uri.clone(),
            callee_uri: self.callee_uri.clone(),
            client_call_id: self.client_leg.call_id.clone(),
            as_call_id: active.map(|l| l.call_id.clone()),
            node: node.to_string(),
            created_at: self.created_at,
            answered_at: self.answered_at,
            ended_at: self.ended_at,
            duration_ms: self.duration_ms(),
            end_reason: self.end_reason.clone(),
            final_status: self.final_status.map(i32::from),
        }
    }

    pub fn client_leg_record(&self) -> LegRecord {
        let c = &self.client_leg;
        LegRecord {
            id: c.leg_id.clone(),
            session_id: self.id.clone(),
            kind: "client".into(),
            app_server_id: None,
            call_id: c.call_id.clone(),
            local_tag: Some(c.local_tag.clone()),
            remote_tag: Some(c.remote_tag.clone()),
            remote_uri: Some(c.remote_target.clone()),
            created_at: self.created_at,
            ended_at: self.ended_at,
        }
    }

    pub fn as_leg_record(&self, leg: &AsLeg) -> LegRecord {
        LegRecord {
            id: leg.leg_id.clone(),
            session_id: self.id.clone(),
            kind: "as".into(),
            app_server_id: Some(leg.app_server_id.clone()),
            call_id: leg.call_id.clone(),
            local_tag: Some(leg.local_tag.clone()),
            remote_tag: leg.remote_tag.clone(),
            remote_uri: Some(leg.request_uri.clone()),
            created_at: leg.created_at,
            ended_at: leg.ended_at,
        }
    }
}
