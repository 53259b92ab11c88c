//! Where responses go (RFC 3261 §18.2.1–18.2.2, RFC 3581).
//!
//! The server notes in the top Via where a request really came from
//! (`received`, and `rport` when the client asked for it), and answers there:
//! over the same connection on TCP; on UDP to the source port when `rport`
//! was asked for, else to the source address and the Via's port.

use std::net::{IpAddr, SocketAddr};

use crate::sip::message::{push_decimal, push_ip, unfold, Limits, Message, Rport, Via};
use crate::sip::transport::{Flow, Protocol};

/// The top via-parm rewritten with `received` and `rport` from `source`,
/// or `None` when RFC 3261 §18.2.1 and RFC 3581 §4 ask for no change.
fn stamped_via(via: &Via<'_>, source: SocketAddr) -> Option<Vec<u8>> {
    let rport_requested = matches!(via.rport(), Some(Rport::Requested));
    let source_ip = canonical(source.ip());
    let sent_by_is_source = via.host().ip().map(canonical) == Some(source_ip);
    // §18.2.1: `received` when the sent-by host is not the source address
    // (always with rport, RFC 3581 §4).
    if sent_by_is_source && !rport_requested {
        return None;
    }
    // A folded via-parm is written unfolded: the splice must not break
    // lines, and a fold is one SP (RFC 3261 §7.3.1).
    let raw = unfold(via.raw());
    let mut out = Vec::with_capacity(raw.len() + 48);
    for (i, segment) in raw.split(|&b| b == b';').enumerate() {
        let name = segment
            .split(|&b| b == b'=')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if i > 0 && (name.eq_ignore_ascii_case(b"received") || name.eq_ignore_ascii_case(b"rport"))
        {
            continue;
        }
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(segment);
    }
    out.extend_from_slice(b";received=");
    push_ip(&mut out, source_ip);
    if rport_requested {
        out.extend_from_slice(b";rport=");
        push_decimal(&mut out, u64::from(source.port()));
    }
    Some(out)
}

/// The request with its top Via stamped from where it came (`flow`), and
/// the flow its responses go on. Only the top via-parm's bytes change: the
/// rest of the line (`Via: a, b`) and of the message is copied as it is,
/// and the header index is shifted rather than parsed again. The request is
/// returned as it was when no stamp is needed, or when the stamped request
/// would exceed `limits` (as a re-parse would have refused it).
pub fn stamp(msg: Message, flow: &Flow, limits: &Limits) -> (Message, Flow) {
    let (stamped, reply) = match msg.top_via() {
        Ok(via) => {
            let stamped = stamped_via(&via, flow.remote).and_then(|parm| {
                let buf = msg.as_bytes();
                let raw = via.raw();
                let start = (raw.as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
                let end = start.checked_add(raw.len())?;
                msg.splice_value(start..end, &parm, limits)
            });
            // What the forwarded Via says: a stamp writes `rport` only
            // where it was asked for and drops any other (see stamped_via).
            let rport = match stamped {
                Some(_) => via.rport().filter(|r| *r == Rport::Requested),
                None => via.rport(),
            };
            (stamped, reply_flow(rport, via.port(), flow))
        }
        Err(_) => (None, *flow),
    };
    match stamped {
        Some(mut stamped) => {
            // The transaction layer and the relay read the new top Via.
            stamped.keep_top_via();
            (stamped, reply)
        }
        None => (msg, reply),
    }
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

    fn top_via_of(m: &Message) -> String {
        String::from_utf8_lossy(m.top_via().expect("via").raw()).into_owned()
    }

    fn from(src: &str) -> Flow {
        Flow::udp("127.0.0.1:5060".parse().unwrap(), src.parse().unwrap())
    }

    #[test]
    fn a_stamped_request_keeps_its_views_at_their_new_places() {
        let mut m = msg("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKx");
        m.validate().expect("valid");
        let (m, _) = stamp(m, &from("203.0.113.7:40000"), &Limits::default());
        let fresh = Message::parse(m.as_bytes()).expect("parses");
        // The stamped Via, and From and To, which moved behind it.
        assert_eq!(top_via_of(&m), top_via_of(&fresh));
        assert_eq!(m.top_via().expect("via"), fresh.top_via().expect("via"));
        assert_eq!(
            m.from_header().expect("from"),
            fresh.from_header().expect("from")
        );
        assert_eq!(m.to_header().expect("to"), fresh.to_header().expect("to"));
        assert_eq!(m.from_tag(), Some(&b"1"[..]));
        assert_eq!(
            m.request_uri().expect("uri"),
            fresh.request_uri().expect("uri")
        );
        // Read from what was kept, not parsed again.
        assert!(m.kept_top_via().is_some(), "the stamped Via was kept");
        assert!(m.kept_from().is_some() && m.kept_to().is_some());
        assert!(m.kept_request_uri().is_some());
    }

    #[test]
    fn rport_and_received_are_filled_in() {
        let flow = from("203.0.113.7:40000");
        let (m, reply) = stamp(
            msg("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKx, SIP/2.0/UDP 10.0.0.2"),
            &flow,
            &Limits::default(),
        );
        assert_eq!(
            top_via_of(&m),
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;received=203.0.113.7;rport=40000"
        );
        assert_eq!(m.vias().count(), 2, "the second Via of the line is kept");
        assert_eq!(
            reply.remote, flow.remote,
            "rport: answer to the source port"
        );
        assert_eq!(
            response_flow(&m, &flow),
            reply,
            "the stamped Via says the same"
        );
    }

    #[test]
    fn without_rport_answer_to_via_port_at_source_address() {
        // A client has no business setting rport's value (RFC 3581 §3): the
        // stamp drops it, and the responses go where the forwarded Via says,
        // as if it had not been there.
        let flow = from("203.0.113.7:40000");
        for via in [
            "SIP/2.0/UDP client.example.com:5070;branch=z9hG4bKx",
            "SIP/2.0/UDP client.example.com:5070;rport=1234;branch=z9hG4bKx",
        ] {
            let (m, reply) = stamp(msg(via), &flow, &Limits::default());
            assert_eq!(
                top_via_of(&m),
                "SIP/2.0/UDP client.example.com:5070;branch=z9hG4bKx;received=203.0.113.7",
                "{via}"
            );
            assert_eq!(reply.remote, "203.0.113.7:5070".parse().unwrap(), "{via}");
            assert_eq!(response_flow(&m, &flow), reply, "{via}");
        }
    }

    #[test]
    fn only_the_top_via_changes_the_rest_is_copied_byte_for_byte() {
        let text =
            "INVITE sip:x@example.com SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.1;rport;branch=z9hG4bKy\r\n\
                    Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKz\r\nFrom: <sip:a@b>;tag=1\r\n\
                    To: <sip:x@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
                    Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";
        let m = Message::parse(text.as_bytes()).expect("parses");
        let (out, _) = stamp(m, &from("[::ffff:203.0.113.7]:40000"), &Limits::default());
        let expected = text.replacen(
            "10.0.0.1;rport;branch=z9hG4bKy",
            "10.0.0.1;branch=z9hG4bKy;received=203.0.113.7;rport=40000",
            1,
        );
        assert_eq!(String::from_utf8_lossy(out.as_bytes()), expected);
        // The shifted index finds what a fresh parse finds.
        let again = Message::parse(out.as_bytes()).expect("parses");
        assert_eq!(out.body(), again.body());
        assert_eq!(out.cseq().ok(), again.cseq().ok());
        assert_eq!(top_via_of(&out), top_via_of(&again));
    }

    #[test]
    fn nothing_changes_when_sent_by_is_the_source() {
        let m = msg("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx");
        let (out, reply) = stamp(m.clone(), &from("192.0.2.1:5060"), &Limits::default());
        assert_eq!(out.as_bytes(), m.as_bytes());
        assert_eq!(reply.remote, "192.0.2.1:5060".parse().unwrap());
    }

    #[test]
    fn a_folded_via_is_stamped_unfolded() {
        // RFC 4475 wsinv folds the Via; §18.2.1 still asks for `received`.
        let text = "OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=z9hG4bK390\r\n\
                    From: <sip:a@b>;tag=1\r\nTo: <sip:x@example.com>\r\nCall-ID: c\r\n\
                    CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let m = Message::parse(text.as_bytes()).expect("parses");
        let (out, _) = stamp(m, &from("203.0.113.7:40000"), &Limits::default());
        assert_eq!(
            top_via_of(&out),
            "SIP  /   2.0 /UDP 192.0.2.2;branch=z9hG4bK390;received=203.0.113.7"
        );
        Message::parse(out.as_bytes()).expect("still parses");
    }

    #[test]
    fn a_request_that_a_stamp_would_push_over_the_limit_goes_on_unstamped() {
        let m = msg("SIP/2.0/UDP client.example.com:5070;branch=z9hG4bKx");
        let limits = Limits {
            max_message_size: m.as_bytes().len() + 10,
            ..Limits::default()
        };
        let (out, reply) = stamp(m.clone(), &from("203.0.113.7:40000"), &limits);
        assert_eq!(out.as_bytes(), m.as_bytes());
        assert_eq!(reply.remote, "203.0.113.7:5070".parse().unwrap());
    }
}
