//! Transaction matching keys (RFC 3261 §17.1.3, §17.2.3, §8.2.2.2).
//!
//! Keys hold zero-copy slices of the message buffer (`Bytes::slice_ref`),
//! so building one costs reference-count increments, not allocations.

use bytes::Bytes;

use crate::sip::message::{Message, Method};

const INVITE: Bytes = Bytes::from_static(b"INVITE");

/// A zero-copy `Bytes` for a slice of `buf` (a copy if, unexpectedly, the
/// slice lies elsewhere: `slice_ref` would panic).
fn sub(buf: &Bytes, s: &[u8]) -> Bytes {
    let (b, e) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
    let (p, q) = (s.as_ptr() as usize, s.as_ptr() as usize + s.len());
    if s.is_empty() || p < b || q > e {
        Bytes::copy_from_slice(s)
    } else {
        buf.slice_ref(s)
    }
}

/// Server transaction key (§17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerKey {
    /// Branch with the magic cookie: branch + sent-by + method, where an
    /// ACK's method counts as INVITE.
    Rfc3261 {
        branch: Bytes,
        host: Bytes,
        port: Option<u16>,
        method: Bytes,
    },
    /// RFC 2543 peers (no magic cookie): Request-URI, From tag, Call-ID,
    /// CSeq number, top Via, and the method class. The To tag is left out
    /// so that the ACK (which carries the tag of our response) finds its
    /// INVITE; a retransmitted request carries the same To as the original.
    Rfc2543 {
        call_id: Bytes,
        cseq: u32,
        method: Bytes,
        from_tag: Bytes,
        request_uri: Bytes,
        via: Bytes,
    },
}

impl ServerKey {
    /// The key of a request; `None` if the headers matching needs are
    /// missing or malformed (the engine's `validate()` rules that out).
    pub fn of(req: &Message) -> Option<ServerKey> {
        let buf = req.bytes();
        let method = match req.method()? {
            // §17.2.3: an ACK matches the INVITE that created the transaction.
            Method::Ack | Method::Invite => INVITE,
            m => sub(buf, m.as_bytes()),
        };
        let via = req.top_via().ok()?;
        if via.has_rfc3261_branch() {
            return Some(ServerKey::Rfc3261 {
                branch: sub(buf, via.branch()?),
                host: sub(buf, via.host().raw()),
                port: via.port(),
                method,
            });
        }
        let from = req.from_header().ok()?;
        Some(ServerKey::Rfc2543 {
            call_id: sub(buf, req.call_id().ok()?),
            cseq: req.cseq().ok()?.seq,
            method,
            from_tag: sub(buf, from.tag().unwrap_or_default()),
            request_uri: sub(buf, req.request_uri_raw()?),
            via: sub(buf, via.raw()),
        })
    }

    /// The key of the INVITE transaction a CANCEL with this key cancels
    /// (§9.2: same matching as §17.2.3, except for the method).
    pub fn cancelled_invite(&self) -> ServerKey {
        let mut k = self.clone();
        match &mut k {
            ServerKey::Rfc3261 { method, .. } | ServerKey::Rfc2543 { method, .. } => {
                *method = INVITE
            }
        }
        k
    }
}

/// §8.2.2.2 merged-request detection: From tag, Call-ID and CSeq of a
/// request without a To tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MergeKey {
    call_id: Bytes,
    from_tag: Bytes,
    cseq: u32,
    method: Bytes,
}

impl MergeKey {
    /// `None` for requests outside §8.2.2.2: in-dialog ones (To tag), ACK
    /// and CANCEL (they share the INVITE's CSeq number by design), and
    /// RFC 2543 requests without a From tag.
    pub fn of(req: &Message) -> Option<MergeKey> {
        let m = req.method()?;
        if matches!(m, Method::Ack | Method::Cancel) || req.to_tag().is_some() {
            return None;
        }
        let buf = req.bytes();
        let cseq = req.cseq().ok()?;
        Some(MergeKey {
            call_id: sub(buf, req.call_id().ok()?),
            from_tag: sub(buf, req.from_tag()?),
            cseq: cseq.seq,
            method: sub(buf, cseq.method.as_bytes()),
        })
    }
}

/// Client transaction key (§17.1.3): top Via branch + CSeq method (so a
/// CANCEL's responses, same branch as its INVITE, are told apart).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    branch: Bytes,
    method: Bytes,
}

impl ClientKey {
    /// Works for the request we send and for the responses to it.
    pub fn of(msg: &Message) -> Option<ClientKey> {
        let buf = msg.bytes();
        let via = msg.top_via().ok()?;
        let cseq = msg.cseq().ok()?;
        Some(ClientKey {
            branch: sub(buf, via.branch()?),
            method: sub(buf, cseq.method.as_bytes()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::msg;
    use super::*;

    fn req(method: &str, via: &str, to_tag: &str, cseq: &str) -> Message {
        msg(&format!(
            "{method} sip:b@b SIP/2.0\nVia: {via}\nFrom: <sip:a@a>;tag=f\n\
To: <sip:b@b>{to_tag}\nCall-ID: cid\nCSeq: {cseq}\nContent-Length: 0\n\n"
        ))
    }

    #[test]
    fn rfc3261_matching() {
        let v = "SIP/2.0/UDP h:5060;branch=z9hG4bKx";
        let inv = ServerKey::of(&req("INVITE", v, "", "1 INVITE")).unwrap();
        let ack = ServerKey::of(&req("ACK", v, ";tag=t", "1 ACK")).unwrap();
        let cancel = ServerKey::of(&req("CANCEL", v, "", "1 CANCEL")).unwrap();
        assert_eq!(inv, ack);
        assert_ne!(inv, cancel);
        assert_eq!(cancel.cancelled_invite(), inv);
        let other_port = ServerKey::of(&req(
            "INVITE",
            "SIP/2.0/UDP h:5062;branch=z9hG4bKx",
            "",
            "1 INVITE",
        ))
        .unwrap();
        assert_ne!(inv, other_port);
        let bye = ServerKey::of(&req("BYE", v, ";tag=t", "2 BYE")).unwrap();
        assert_ne!(inv, bye);
    }

    #[test]
    fn rfc2543_fallback() {
        let v = "SIP/2.0/UDP h:5060";
        let inv = ServerKey::of(&req("INVITE", v, "", "1 INVITE")).unwrap();
        assert!(matches!(inv, ServerKey::Rfc2543 { .. }));
        let ack = ServerKey::of(&req("ACK", v, ";tag=t", "1 ACK")).unwrap();
        assert_eq!(inv, ack);
        let next = ServerKey::of(&req("INVITE", v, "", "2 INVITE")).unwrap();
        assert_ne!(inv, next);
        let cancel = ServerKey::of(&req("CANCEL", v, "", "1 CANCEL")).unwrap();
        assert_eq!(cancel.cancelled_invite(), inv);
    }

    #[test]
    fn merge_and_client_keys() {
        let a = req("INVITE", "SIP/2.0/UDP h;branch=z9hG4bK1", "", "1 INVITE");
        let b = req("INVITE", "SIP/2.0/UDP h;branch=z9hG4bK2", "", "1 INVITE");
        assert_eq!(MergeKey::of(&a), MergeKey::of(&b));
        assert!(MergeKey::of(&a).is_some());
        let in_dialog = req(
            "INVITE",
            "SIP/2.0/UDP h;branch=z9hG4bK3",
            ";tag=t",
            "1 INVITE",
        );
        assert_eq!(MergeKey::of(&in_dialog), None);
        let cancel = req("CANCEL", "SIP/2.0/UDP h;branch=z9hG4bK1", "", "1 CANCEL");
        assert_eq!(MergeKey::of(&cancel), None);
        let ca = ClientKey::of(&a).unwrap();
        assert_eq!(Some(ca.clone()), ClientKey::of(&a));
        assert_ne!(Some(ca), ClientKey::of(&cancel));
    }
}
