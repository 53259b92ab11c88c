//! Where responses go (RFC 3261 §18.2.1–18.2.2, RFC 3581).
//!
//! The server notes in the top Via where a request really came from
//! (`received`, and `rport` when the client asked for it), and answers there:
//! over the same connection on TCP; on UDP to the source port when `rport`
//! was asked for, else to the source address and the Via's port.

use std::net::{IpAddr, SocketAddr};

use crate::sip::message::{Editor, HeaderName, Message, Rport};
use crate::sip::transport::{Flow, Protocol};

/// The top Via value with `received` and `rport` set from `source`, or
/// `None` when RFC 3261 §18.2.1 and RFC 3581 §4 ask for no change.
pub fn stamped_top_via(msg: &Message, source: SocketAddr) -> Option<(usize, Vec<u8>)> {
    let via = msg.top_via().ok()?;
    let field = msg.get(HeaderName::Via)?;
    let rport_requested = matches!(via.rport(), Some(Rport::Requested));
    let source_ip = canonical(source.ip());
    let sent_by_is_source = via.host().ip().map(canonical) == Some(source_ip);
    // §18.2.1: `received` when the sent-by host is not the source address
    // (always with rport, RFC 3581 §4).
    if sent_by_is_source && !rport_requested {
        return None;
    }
    let raw = via.raw();
    let mut top = Vec::with_capacity(raw.len() + 48);
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
            top.push(b';');
        }
        top.extend_from_slice(segment);
    }
    top.extend_from_slice(b";received=");
    top.extend_from_slice(source_ip.to_string().as_bytes());
    if rport_requested {
        top.extend_from_slice(format!(";rport={}", source.port()).as_bytes());
    }
    // Keep whatever follows the top value on the same line (`Via: a, b`).
    let start = (raw.as_ptr() as usize).checked_sub(field.value.as_ptr() as usize)?;
    let rest = field.value.get(start + raw.len()..)?;
    let mut value = field.value.get(..start)?.to_vec();
    value.extend_from_slice(&top);
    value.extend_from_slice(rest);
    Some((field.index, value))
}

/// The request with its top Via stamped, re-parsed; the original when no
/// stamp is needed or the edit fails.
pub fn stamp(
    msg: Message,
    source: SocketAddr,
    reparse: impl Fn(Vec<u8>) -> Option<Message>,
) -> Message {
    let Some((index, value)) = stamped_top_via(&msg, source) else {
        return msg;
    };
    let mut editor = Editor::new(&msg);
    if editor.replace_at(index, &value).is_err() {
        return msg;
    }
    reparse(editor.render()).unwrap_or(msg)
}

/// IPv4 peers of a dual-stack socket appear as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The flow a response to `msg` (received on `flow`) is sent on.
pub fn response_flow(msg: &Message, flow: &Flow) -> Flow {
    if flow.protocol == Protocol::Tcp {
        // §18.2.2: over the connection the request came on.
        return *flow;
    }
    let Ok(via) = msg.top_via() else {
        return *flow;
    };
    let remote = match via.rport() {
        Some(Rport::Requested) | Some(Rport::Port(_)) => flow.remote,
        // §18.2.2: to the source address, at the port in sent-by (or 5060).
        None => SocketAddr::new(flow.remote.ip(), via.port().unwrap_or(5060)),
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

    #[test]
    fn rport_and_received_are_filled_in() {
        let src: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        let m = stamp(
            msg("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKx, SIP/2.0/UDP 10.0.0.2"),
            src,
            |b| Message::parse(&b).ok(),
        );
        assert_eq!(
            top_via_of(&m),
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;received=203.0.113.7;rport=40000"
        );
        assert_eq!(m.vias().count(), 2, "the second Via of the line is kept");
        let f = response_flow(&m, &Flow::udp("127.0.0.1:5060".parse().unwrap(), src));
        assert_eq!(f.remote, src, "rport: answer to the source port");
    }

    #[test]
    fn without_rport_answer_to_via_port_at_source_address() {
        let src: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        let m = stamp(
            msg("SIP/2.0/UDP client.example.com:5070;branch=z9hG4bKx"),
            src,
            |b| Message::parse(&b).ok(),
        );
        assert_eq!(
            top_via_of(&m),
            "SIP/2.0/UDP client.example.com:5070;branch=z9hG4bKx;received=203.0.113.7"
        );
        let f = response_flow(&m, &Flow::udp("127.0.0.1:5060".parse().unwrap(), src));
        assert_eq!(f.remote, "203.0.113.7:5070".parse().unwrap());
    }

    #[test]
    fn nothing_changes_when_sent_by_is_the_source() {
        let src: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        assert!(stamped_top_via(&msg("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx"), src).is_none());
    }
}
