//! re-INVITEs relayed inside the session (RFC 3261 §14) and their ACKs.
//!
//! The ACK is relayed end to end: the other side's 2xx is ACKed only when
//! the side that sent the re-INVITE ACKs ours. An offerless re-INVITE puts
//! the offer in the 2xx and the answer in the ACK (§14.1, RFC 6337 §3), so
//! the ACK must carry that body across; and until then the other side keeps
//! retransmitting its 2xx (§13.3.1.4), which re-sends ours — so a 2xx lost
//! on either side is recovered. Once ACKed, a retransmitted 2xx gets the
//! same ACK again.

use bytes::Bytes;

use super::*;
use crate::relay::session::ReInvite;
use crate::sip::message::HeaderName;

impl Core {
    /// A re-INVITE was relayed as `copy_tx`: it is now the session's one
    /// re-INVITE in progress.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::relay) fn note_reinvite(
        &mut self,
        id: &str,
        inbound: bool,
        leg: usize,
        server_tx: ServerTxId,
        msg: &Message,
        copy_tx: ClientTxId,
        copy_cseq: u32,
    ) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let previous = session.reinvite.replace(Box::new(ReInvite {
            inbound,
            leg,
            server_tx,
            cseq: msg.cseq().map(|c| c.seq).unwrap_or_default(),
            copy_tx,
            copy_cseq,
            offerless: msg.body().is_empty(),
            relayed: None,
            ack: None,
        }));
        if let Some(old) = previous {
            self.sessions.forget_tx(&old.copy_tx);
        }
    }

    /// The final answer to a relayed re-INVITE went back as `bytes`. A
    /// failure closes it; a 2xx waits for the ACK of the side that asked.
    pub(in crate::relay) fn reinvite_answered(
        &mut self,
        id: &str,
        server: ServerTxId,
        code: u16,
        bytes: Bytes,
        answer: Option<&Message>,
    ) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let Some(r) = session.reinvite.as_mut().filter(|r| r.server_tx == server) else {
            return;
        };
        if !(200..300).contains(&code) {
            let copy = r.copy_tx;
            session.reinvite = None;
            self.sessions.forget_tx(&copy);
            return;
        }
        r.relayed = Some((code, bytes));
        // The 2xx refreshes the other side's remote target (§12.2.1.2).
        let (inbound, leg) = (r.inbound, r.leg);
        if let Some(target) = answer.and_then(contact_of) {
            match (inbound, session.as_legs.get_mut(leg)) {
                (true, Some(l)) => l.remote_target = Some(target),
                (false, _) => session.client_leg.retarget(target),
                (true, None) => {}
            }
        }
    }

    /// A 2xx for the copy of a re-INVITE that was already answered: ACK it
    /// again, or, while the asking side has not ACKed, re-send our 2xx to
    /// it. False when `ctx` is not such a copy.
    pub(in crate::relay) fn reinvite_retransmission(&mut self, id: &str, ctx: ClientTxId) -> bool {
        let Some(session) = self.sessions.get_mut(id) else {
            return false;
        };
        let Some(r) = session
            .reinvite
            .as_ref()
            .filter(|r| r.copy_tx == ctx && r.relayed.is_some())
        else {
            return false;
        };
        match (&r.ack, &r.relayed) {
            (Some(ack), _) => {
                let flow = if r.inbound {
                    session.as_legs.get(r.leg).map(|l| l.flow)
                } else {
                    Some(session.client_leg.flow)
                };
                if let Some(flow) = flow {
                    let _ = self.d.layer.send_stateless(&flow, ack.clone());
                }
            }
            (None, Some((code, bytes))) => {
                self.d.layer.respond(&r.server_tx, *code, bytes.clone());
            }
            (None, None) => {}
        }
        true
    }

    /// An ACK in an established session from side `as_leg` (`None`: the
    /// inbound leg): if it acknowledges the 2xx of the re-INVITE we relayed
    /// for that side, the other side gets its ACK, with this one's body.
    pub(in crate::relay) fn relay_reinvite_ack(
        &mut self,
        id: &str,
        as_leg: Option<usize>,
        msg: &Message,
    ) {
        let cseq = msg.cseq().map(|c| c.seq).ok();
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let Some(r) = session.reinvite.as_ref() else {
            return;
        };
        let same_side = match as_leg {
            None => r.inbound,
            Some(i) => !r.inbound && r.leg == i,
        };
        if !same_side || cseq != Some(r.cseq) || r.relayed.is_none() || r.ack.is_some() {
            return;
        }
        let (inbound, leg, copy_cseq) = (r.inbound, r.leg, r.copy_cseq);
        let flow = if inbound {
            self.outbound_flow(id, leg)
        } else {
            self.sessions_flow(id)
        };
        let local = self.local_for(&flow);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let content_type = msg.get(HeaderName::ContentType).and_then(|h| h.value_str());
        let mut ack = legs::InDialog::bare(Method::Ack, copy_cseq);
        ack.body = content_type.map(|ct| (ct, msg.body()));
        let built = match (inbound, session.as_legs.get(leg)) {
            (true, Some(l)) => legs::as_request(&local, l, &ack),
            (true, None) => return,
            (false, _) => legs::client_request(&local, &session.client_leg, &ack),
        };
        let Ok(bytes) = built.map(Message::into_bytes) else {
            tracing::warn!(session = %id, "cannot build the ACK of a re-INVITE");
            return;
        };
        let _ = self.d.layer.send_stateless(&flow, bytes.clone());
        // The leg a session change moved to is confirmed by this ACK.
        if let Some(l) = session.as_legs.get_mut(leg).filter(|_| inbound) {
            if l.state == LegState::Answered {
                l.state = LegState::Acked;
                l.ack = Some(bytes.clone());
            }
        }
        if let Some(r) = session.reinvite.as_mut() {
            r.ack = Some(bytes);
        }
    }
}
