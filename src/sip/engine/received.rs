//! Where responses go (RFC 3261 §18.2.1–18.2.2, RFC 3581).
//!
//! The server notes in the top Via where a request really came from
//! (`received`, and `rport` when the client asked for it), and answers there:
//! over the same connection on TCP; on UDP to the source port when `rport`
//! was asked for, else to the source address and the Via's port. The note is
//! a [`ViaStamp`] on the request that its responses write out; the request's
//! bytes are not rewritten (see `sip::message::via_stamp`).

use std::net::{IpAddr, SocketAddr};

use crate::sip::message::{Message, Rport, Via, ViaStamp};
use crate::sip::transport::{Flow, Protocol};

/// The stamp for a request whose top Via is `via` and which came from
/// `source`, or `None` when RFC 3261 §18.2.1 and RFC 3581 §4 ask for no
/// change: the sent-by host is the source address and no `rport` was asked
/// for.
fn stamp_for(via: &Via<'_>, source: SocketAddr) -> Option<ViaStamp> {
    let rport_requested = matches!(via.rport(), Some(Rport::Requested));
    let source_ip = canonical(source.ip());
    let sent_by_is_source = via.host().ip().map(canonical) == Some(source_ip);
    // §18.2.1: `received` when the sent-by host is not the source address
    // (always with rport, RFC 3581 §4).
    if sent_by_is_source && !rport_requested {
        return None;
    }
    Some(ViaStamp {
        received: source_ip,
        rport: rport_requested.then_some(source.port()),
    })
}

/// Stamps the request with where it came from (`flow`) and returns the flow
/// its responses go on. The request's bytes stay as received; its responses
/// carry the stamped top Via.
pub fn stamp(msg: &mut Message, flow: &Flow) -> Flow {
    let (stamp, reply) = match msg.top_via() {
        Ok(via) => {
            let stamp = stamp_for(&via, flow.remote);
            // What the responses' Via says: a stamp writes `rport` only
            // where it was asked for and drops any other (ViaStamp).
            let rport = match stamp {
                Some(_) => via.rport().filter(|r| *r == Rport::Requested),
                None => via.rport(),
            };
            (stamp, reply_flow(rport, via.port(), flow))
        }
        Err(_) => (None, *flow),
    };
    if let Some(stamp) = stamp {
        msg.stamp_top_via(stamp);
    }
    reply
}

/// IPv4 peers of a dual-stack socket appear as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The flow a response to `msg` (received on `flow`) is sent on.
pub fn response_flow(msg: &Message, flow: &Flow) -> Flow {
    match msg.top_via() {
        Ok(via) => reply_flow(via.rport(), via.port(), flow),
        Err(_) => *flow,
    }
}

/// RFC 3261 §18.2.2 and RFC 3581 §4: where the responses to a request go,
/// from its top Via's `rport` and sent-by port.
fn reply_flow(rport: Option<Rport>, sent_by_port: Option<u16>, flow: &Flow) -> Flow {
    if flow.protocol == Protocol::Tcp {
        // §18.2.2: over the connection the request came on.
        return *flow;
    }
    let remote = match rport {
        Some(Rport::Requested) | Some(Rport::Port(_)) => flow.remote,
        // §18.2.2: to the source address, at the port in sent-by (or 5060).
        None => SocketAddr::new(flow.remote.ip(), sent_by_port.unwrap_or(5060)),
    };
    Flow { remote, ..*flow }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(via: &str) -> Message {
        let text = format!(
            "OPTIONS sip:x@example.com SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@example.com>\r\n\
             Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes()).expect("parses")
    }

    /// A response to `m`, parsed back.
    fn answer(m: &Message) -> Message {
        let bytes = m.reply(200, "OK").expect("a request").build();
        Message::parse(&bytes).expect("the response parses")
    }

    fn top_via_of(m: &Message) -> String {
        String::from_utf8_lossy(m.top_via().expect("via").raw()).into_owned()
    }

    fn from(src: &str) -> Flow {
        Flow::udp("127.0.0.1:5060".parse().unwrap(), src.parse().unwrap())
    }

    #[test]
    fn a_stamped_request_keeps_its_bytes_and_its_views() {
        let mut m = msg("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKx");
        m.validate().expect("valid");
        let before = m.as_bytes().to_vec();
        stamp(&mut m, &from("203.0.113.7:40000"));
        assert_eq!(m.as_bytes(), &before[..], "the request is not rewritten");
        assert!(m.via_stamp().is_some());
        assert!(m.kept_top_via().is_some() && m.kept_from().is_some());
        assert_eq!(
            top_via_of(&answer(&m)),
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;received=203.0.113.7;rport=40000"
        );
    }

    #[test]
    fn rport_and_received_are_filled_in() {
        let flow = from("203.0.113.7:40000");
        let mut m = msg("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKx, SIP/2.0/UDP 10.0.0.2");
        let reply = stamp(&mut m, &flow);
        let r = answer(&m);
        assert_eq!(
            top_via_of(&r),
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;received=203.0.113.7;rport=40000"
        );
        assert_eq!(r.vias().count(), 2, "the second Via of the line is kept");
        assert_eq!(
            reply.remote, flow.remote,
            "rport: answer to the source port"
        );
        assert_eq!(response_flow(&m, &flow), reply, "the request says the same");
    }

    #[test]
    fn without_rport_answer_to_via_port_at_source_address() {
        // A client has no business setting rport's value (RFC 3581 §3): the
        // stamp drops it, and the responses go where their Via says, as if
        // it had not been there.
        let flow = from("203.0.113.7:40000");
        for via in [
            "SIP/2.0/UDP client.example.com:5070;branch=z9hG4bKx",
            "SIP/2.0/UDP client.example.com:5070;rport=1234;branch=z9hG4bKx",
        ] {
            let mut m = msg(via);
            let reply = stamp(&mut m, &flow);
            let r = answer(&m);
            assert_eq!(
                top_via_of(&r),
                "SIP/2.0/UDP client.example.com:5070;branch=z9hG4bKx;received=203.0.113.7",
                "{via}"
            );
            assert_eq!(reply.remote, "203.0.113.7:5070".parse().unwrap(), "{via}");
            assert_eq!(r.top_via().expect("via").rport(), None, "{via}");
        }
    }

    #[test]
    fn only_the_top_via_changes_the_rest_is_copied_byte_for_byte() {
        let text =
            "INVITE sip:x@example.com SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.1;rport;branch=z9hG4bKy\r\n\
                    Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKz\r\nFrom: <sip:a@b>;tag=1\r\n\
                    To: <sip:x@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
                    Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";
        let mut m = Message::parse(text.as_bytes()).expect("parses");
        stamp(&mut m, &from("[::ffff:203.0.113.7]:40000"));
        let bytes = m.reply(180, "Ringing").expect("request").build();
        let expected = "SIP/2.0 180 Ringing\r\n\
                        v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKy;received=203.0.113.7;rport=40000\r\n\
                        Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKz\r\nFrom: <sip:a@b>;tag=1\r\n\
                        To: <sip:x@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
                        Content-Length: 0\r\n\r\n";
        assert_eq!(String::from_utf8_lossy(&bytes), expected);
    }

    #[test]
    fn nothing_changes_when_sent_by_is_the_source() {
        let mut m = msg("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx");
        let reply = stamp(&mut m, &from("192.0.2.1:5060"));
        assert_eq!(m.via_stamp(), None);
        assert_eq!(top_via_of(&answer(&m)), top_via_of(&m));
        assert_eq!(reply.remote, "192.0.2.1:5060".parse().unwrap());
    }

    #[test]
    fn a_folded_via_is_stamped_unfolded() {
        // RFC 4475 wsinv folds the Via; §18.2.1 still asks for `received`.
        let text = "OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=z9hG4bK390\r\n\
                    From: <sip:a@b>;tag=1\r\nTo: <sip:x@example.com>\r\nCall-ID: c\r\n\
                    CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let mut m = Message::parse(text.as_bytes()).expect("parses");
        stamp(&mut m, &from("203.0.113.7:40000"));
        assert_eq!(
            top_via_of(&answer(&m)),
            "SIP  /   2.0 /UDP 192.0.2.2;branch=z9hG4bK390;received=203.0.113.7"
        );
    }
}
