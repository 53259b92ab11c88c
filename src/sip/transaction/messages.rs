//! The few messages the transaction layer writes itself: the ACK for a
//! non-2xx final response (§17.1.1.3), 100 Trying (§17.2.1, §8.2.6.1) and the
//! layer's own answers (482 for merged requests, 503 under overload).

use bytes::Bytes;

use crate::sip::message::{HeaderName, Message, MessageBuilder, Method};

/// Builds the ACK for a non-2xx final `response` to the INVITE `request`
/// (RFC 3261 §17.1.1.3): same Request-URI, Call-ID, From and CSeq number;
/// To from the response (it carries the tag); a single Via equal to the
/// request's top Via, so the ACK matches the server's INVITE transaction;
/// the request's Route headers. `None` if the request lacks what is needed
/// (cannot happen for a request the layer accepted).
pub fn ack_for(request: &Message, response: &Message) -> Option<Bytes> {
    let uri = request.request_uri_raw()?;
    let via = request.top_via().ok()?;
    let cseq = request.cseq().ok()?;
    let mut b = MessageBuilder::request(Method::Ack, uri)
        .ok()?
        .header("Via", via.raw())
        .ok()?;
    for h in request.headers() {
        match h.name {
            HeaderName::From | HeaderName::CallId | HeaderName::Route => {
                b = b.copy_header(&h).ok()?
            }
            _ => {}
        }
    }
    b = b.copy_header(&response.get(HeaderName::To)?).ok()?;
    let mut cseq_value = cseq.seq.to_string();
    cseq_value.push_str(" ACK");
    b = b
        .header("CSeq", cseq_value)
        .ok()?
        .header("Max-Forwards", "70")
        .ok()?;
    Some(Bytes::from(b.build(b"")))
}

/// 100 Trying for an INVITE (no To tag: §8.2.6.1).
pub fn trying(request: &Message) -> Option<Bytes> {
    Some(Bytes::from(request.reply(100, "Trying").ok()?.build()))
}

/// 482 Loop Detected for a merged request (§8.2.2.2).
pub fn loop_detected(request: &Message, to_tag: &str) -> Option<Bytes> {
    let r = request.reply(482, "Loop Detected").ok()?.to_tag(to_tag);
    Some(Bytes::from(r.build()))
}

/// 503 Service Unavailable with Retry-After (RFC 3261 §21.5.4, §20.33),
/// sent statelessly when the layer is overloaded.
pub fn overloaded(request: &Message, retry_after: u32, to_tag: &str) -> Option<Bytes> {
    let r = request
        .reply(503, "Service Unavailable")
        .ok()?
        .to_tag(to_tag)
        .header("Retry-After", retry_after.to_string())
        .ok()?;
    Some(Bytes::from(r.build()))
}

#[cfg(test)]
mod tests {
    use super::super::sim::msg;
    use super::*;

    const INVITE: &str = "INVITE sip:bob@b.example SIP/2.0\n\
Via: SIP/2.0/UDP a.example:5060;branch=z9hG4bKabc, SIP/2.0/UDP p.example;branch=z9hG4bKp\n\
Route: <sip:r1.example;lr>\n\
Max-Forwards: 70\n\
From: <sip:alice@a.example>;tag=f1\n\
To: <sip:bob@b.example>\n\
Call-ID: c1@a\n\
CSeq: 7 INVITE\n\
Contact: <sip:alice@10.0.0.1>\n\
Content-Length: 0\n\n";

    #[test]
    fn ack_for_non_2xx() {
        let req = msg(INVITE);
        let resp = msg("SIP/2.0 486 Busy Here\n\
Via: SIP/2.0/UDP a.example:5060;branch=z9hG4bKabc\n\
From: <sip:alice@a.example>;tag=f1\n\
To: <sip:bob@b.example>;tag=t9\n\
Call-ID: c1@a\n\
CSeq: 7 INVITE\n\
Content-Length: 0\n\n");
        let mut ack = Message::parse(&ack_for(&req, &resp).unwrap()).unwrap();
        ack.validate().unwrap();
        assert_eq!(ack.method(), Some(Method::Ack));
        assert_eq!(ack.request_uri_raw(), Some(&b"sip:bob@b.example"[..]));
        assert_eq!(ack.count(HeaderName::Via), 1);
        assert_eq!(ack.top_via().unwrap().branch(), Some(&b"z9hG4bKabc"[..]));
        assert_eq!(ack.to_header().unwrap().tag(), Some(&b"t9"[..]));
        assert_eq!(ack.from_header().unwrap().tag(), Some(&b"f1"[..]));
        let cseq = ack.cseq().unwrap();
        assert_eq!((cseq.seq, cseq.method), (7, Method::Ack));
        assert_eq!(ack.count(HeaderName::Route), 1);
        assert_eq!(ack.call_id().unwrap(), b"c1@a");
    }

    #[test]
    fn layer_answers() {
        let req = msg(INVITE);
        let t = Message::parse(&trying(&req).unwrap()).unwrap();
        assert_eq!(t.status(), Some(100));
        assert_eq!(t.to_header().unwrap().tag(), None);
        let o = Message::parse(&overloaded(&req, 7, "x").unwrap()).unwrap();
        assert_eq!(o.status(), Some(503));
        assert_eq!(o.header_value("Retry-After"), Some(&b"7"[..]));
        assert_eq!(o.to_header().unwrap().tag(), Some(&b"x"[..]));
        let l = Message::parse(&loop_detected(&req, "y").unwrap()).unwrap();
        assert_eq!(l.status(), Some(482));
    }
}
