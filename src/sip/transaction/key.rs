//! Transaction matching keys (RFC 3261 §17.1.3, §17.2.3, §8.2.2.2).
//!
//! A key holds the fields its matching compares, copied out of the message
//! into one shared allocation, each field length-prefixed so that no two
//! field tuples encode alike. Copied, not sliced: a slice would keep the
//! whole datagram (over a kilobyte for an INVITE with credentials) for as
//! long as the transaction lingers, 64*T1 after a 2xx (RFC 6026 Timer L)
//! or after a non-INVITE final (Timer J). A lookup encodes on the stack
//! ([`Encoded`]) and finds keys through `Borrow<[u8]>`: only a new
//! transaction allocates, once per key.

use std::borrow::Borrow;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::sip::message::{Message, Method};

/// Variant tags of a server key's encoding.
const RFC3261: u8 = 1;
const RFC2543: u8 = 2;

/// A key's encoding, built on the stack for lookups; a new transaction's
/// key is made of it (`From<&Encoded>`). Common keys fit inline.
#[derive(Debug, Default)]
pub struct Encoded(SmallVec<[u8; 192]>);

impl Encoded {
    fn field(&mut self, f: &[u8]) -> &mut Self {
        // A field never nears 4 GiB (a message is at most 64 KiB); the
        // saturation only keeps the conversion total.
        let len = u32::try_from(f.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(f);
        self
    }

    fn number(&mut self, n: u32) -> &mut Self {
        self.0.extend_from_slice(&n.to_le_bytes());
        self
    }
}

impl std::ops::Deref for Encoded {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Declares a key type: an encoding shared by the table and the
/// transaction that owns the entry (a clone is a reference count), and
/// looked up by a borrowed encoding.
macro_rules! key_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(Arc<[u8]>);

        impl From<&Encoded> for $name {
            fn from(e: &Encoded) -> Self {
                $name(Arc::from(&e.0[..]))
            }
        }

        impl Borrow<[u8]> for $name {
            fn borrow(&self) -> &[u8] {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), String::from_utf8_lossy(&self.0))
            }
        }
    };
}

key_type!(
    /// Server transaction key (§17.2.3). With the magic cookie in the
    /// branch: branch, sent-by and method, where an ACK's method counts as
    /// INVITE. For RFC 2543 peers (no cookie): Request-URI, From tag,
    /// Call-ID, CSeq number, top Via and the method class. The To tag is
    /// left out so that the ACK (which carries the tag of our response)
    /// finds its INVITE; a retransmitted request carries the same To as
    /// the original.
    ServerKey
);

key_type!(
    /// §8.2.2.2 merged-request detection: From tag, Call-ID and CSeq of a
    /// request without a To tag.
    MergeKey
);

key_type!(
    /// Client transaction key (§17.1.3): top Via branch and CSeq method
    /// (so a CANCEL's responses, same branch as its INVITE, are told
    /// apart).
    ClientKey
);

impl ServerKey {
    /// The encoded key of a request; `None` if the headers matching needs
    /// are missing or malformed (the engine's `validate()` rules that out).
    pub fn encode(req: &Message) -> Option<Encoded> {
        let method = match req.method()? {
            // §17.2.3: an ACK matches the INVITE that created the transaction.
            Method::Ack => Method::Invite,
            m => m,
        };
        Self::encode_as(req, method)
    }

    /// The encoded key of the INVITE transaction a CANCEL cancels (§9.2:
    /// the same matching as §17.2.3, except for the method).
    pub fn encode_cancelled_invite(cancel: &Message) -> Option<Encoded> {
        Self::encode_as(cancel, Method::Invite)
    }

    fn encode_as(req: &Message, method: Method<'_>) -> Option<Encoded> {
        let via = req.top_via().ok()?;
        let mut e = Encoded::default();
        if via.has_rfc3261_branch() {
            e.0.push(RFC3261);
            // No port and port 0 (never valid in a Via) stay apart.
            let port = via.port().map_or(0, |p| u32::from(p) | 1 << 16);
            e.field(via.branch()?)
                .field(via.host().raw())
                .number(port)
                .field(method.as_bytes());
            return Some(e);
        }
        let from = req.from_header().ok()?;
        e.0.push(RFC2543);
        e.field(req.call_id().ok()?)
            .number(req.cseq().ok()?.seq)
            .field(method.as_bytes())
            .field(from.tag().unwrap_or_default())
            .field(req.request_uri_raw()?)
            .field(via.raw());
        Some(e)
    }

    #[cfg(test)]
    pub fn of(req: &Message) -> Option<ServerKey> {
        Self::encode(req).map(|e| ServerKey::from(&e))
    }

    #[cfg(test)]
    pub fn is_rfc3261(&self) -> bool {
        self.0.first() == Some(&RFC3261)
    }
}

impl MergeKey {
    /// `None` for requests outside §8.2.2.2: in-dialog ones (To tag), ACK
    /// and CANCEL (they share the INVITE's CSeq number by design), and
    /// RFC 2543 requests without a From tag.
    pub fn encode(req: &Message) -> Option<Encoded> {
        let m = req.method()?;
        if matches!(m, Method::Ack | Method::Cancel) || req.to_tag().is_some() {
            return None;
        }
        let cseq = req.cseq().ok()?;
        let mut e = Encoded::default();
        e.field(req.call_id().ok()?)
            .field(req.from_tag()?)
            .number(cseq.seq)
            .field(cseq.method.as_bytes());
        Some(e)
    }

    #[cfg(test)]
    pub fn of(req: &Message) -> Option<MergeKey> {
        Self::encode(req).map(|e| MergeKey::from(&e))
    }
}

impl ClientKey {
    /// Works for the request we send and for the responses to it.
    pub fn encode(msg: &Message) -> Option<Encoded> {
        let via = msg.top_via().ok()?;
        let cseq = msg.cseq().ok()?;
        let mut e = Encoded::default();
        e.field(via.branch()?).field(cseq.method.as_bytes());
        Some(e)
    }

    pub fn of(msg: &Message) -> Option<ClientKey> {
        Self::encode(msg).map(|e| ClientKey::from(&e))
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

    fn cancelled(cancel: &Message) -> ServerKey {
        ServerKey::from(&ServerKey::encode_cancelled_invite(cancel).unwrap())
    }

    #[test]
    fn rfc3261_matching() {
        let v = "SIP/2.0/UDP h:5060;branch=z9hG4bKx";
        let inv = ServerKey::of(&req("INVITE", v, "", "1 INVITE")).unwrap();
        assert!(inv.is_rfc3261());
        let ack = ServerKey::of(&req("ACK", v, ";tag=t", "1 ACK")).unwrap();
        let cancel_msg = req("CANCEL", v, "", "1 CANCEL");
        let cancel = ServerKey::of(&cancel_msg).unwrap();
        assert_eq!(inv, ack);
        assert_ne!(inv, cancel);
        assert_eq!(cancelled(&cancel_msg), inv);
        let other_port = ServerKey::of(&req(
            "INVITE",
            "SIP/2.0/UDP h:5062;branch=z9hG4bKx",
            "",
            "1 INVITE",
        ))
        .unwrap();
        assert_ne!(inv, other_port);
        let no_port = ServerKey::of(&req(
            "INVITE",
            "SIP/2.0/UDP h;branch=z9hG4bKx",
            "",
            "1 INVITE",
        ))
        .unwrap();
        assert_ne!(inv, no_port, "sent-by compares the port as written");
        let bye = ServerKey::of(&req("BYE", v, ";tag=t", "2 BYE")).unwrap();
        assert_ne!(inv, bye);
    }

    #[test]
    fn fields_do_not_run_into_each_other() {
        // Branch "z9hG4bKxh" and host "h" run together like branch
        // "z9hG4bKx" and host "hh": the lengths tell them apart.
        let a = ServerKey::encode(&req("BYE", "SIP/2.0/UDP h;branch=z9hG4bKxh", "", "1 BYE"));
        let b = ServerKey::encode(&req("BYE", "SIP/2.0/UDP hh;branch=z9hG4bKx", "", "1 BYE"));
        assert_ne!(&*a.unwrap(), &*b.unwrap());
    }

    #[test]
    fn a_lookup_finds_the_key_by_its_encoding() {
        let r = req("INVITE", "SIP/2.0/UDP h;branch=z9hG4bK1", "", "1 INVITE");
        let mut table = ahash::HashMap::default();
        table.insert(ServerKey::of(&r).unwrap(), 7u64);
        let encoded = ServerKey::encode(&r).unwrap();
        assert_eq!(table.get(&*encoded), Some(&7));
        let retransmitted = msg(&String::from_utf8_lossy(r.bytes()));
        assert_eq!(
            table.get(&*ServerKey::encode(&retransmitted).unwrap()),
            Some(&7)
        );
    }

    #[test]
    fn keys_do_not_hold_the_message() {
        let r = req("INVITE", "SIP/2.0/UDP h;branch=z9hG4bK1", "", "1 INVITE");
        let buf = r.bytes().clone();
        let keys = (
            ServerKey::of(&r).unwrap(),
            MergeKey::of(&r).unwrap(),
            ClientKey::of(&r).unwrap(),
        );
        drop(r);
        // The only other holder of the buffer is gone: it is unique again.
        assert!(buf.is_unique(), "a key still shares the datagram");
        drop(keys);
    }

    #[test]
    fn rfc2543_fallback() {
        let v = "SIP/2.0/UDP h:5060";
        let inv = ServerKey::of(&req("INVITE", v, "", "1 INVITE")).unwrap();
        assert!(!inv.is_rfc3261());
        let ack = ServerKey::of(&req("ACK", v, ";tag=t", "1 ACK")).unwrap();
        assert_eq!(inv, ack);
        let next = ServerKey::of(&req("INVITE", v, "", "2 INVITE")).unwrap();
        assert_ne!(inv, next);
        assert_eq!(cancelled(&req("CANCEL", v, "", "1 CANCEL")), inv);
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
