//! The messages the relay writes on each leg. Each leg has its own
//! Call-ID, tags, CSeq space and Via; nothing of one side's Via, Contact or
//! Record-Route is copied to the other (topology hiding).

use std::net::SocketAddr;

use bytes::Bytes;

use super::session::{AsLeg, ClientLeg};
use crate::sip::message::{
    push_decimal, push_host_port, push_ip, BuildError, HeaderName, Message, MessageBuilder, Method,
};
use crate::sip::transaction::{new_tag, push_branch, push_hex};
use crate::sip::transport::Flow;

/// Our address as the other side should see it.
#[derive(Debug, Clone, Copy)]
pub struct Local {
    pub addr: SocketAddr,
}

impl Local {
    pub fn via(&self, flow: &Flow) -> String {
        let mut via = String::with_capacity(96);
        via.push_str("SIP/2.0/");
        via.push_str(flow.protocol.via_token());
        via.push(' ');
        push_host_port(&mut via, self.addr);
        via.push_str(";branch=");
        push_branch(&mut via);
        via.push_str(";rport");
        via
    }

    pub fn contact(&self, flow: &Flow) -> String {
        let transport = match flow.protocol {
            crate::sip::transport::Protocol::Tcp => ";transport=tcp",
            crate::sip::transport::Protocol::Udp => "",
        };
        let mut contact = String::with_capacity(80);
        contact.push('<');
        self.push_uri(&mut contact);
        contact.push_str(transport);
        contact.push('>');
        contact
    }

    /// `sip:switchboard@host:port`, our URI as this side sees it.
    fn push_uri(&self, out: &mut String) {
        out.push_str("sip:switchboard@");
        push_host_port(out, self.addr);
    }
}

/// `CSeq: 3 BYE` (RFC 3261 §20.16).
fn cseq_value(seq: u32, method: &Method) -> String {
    let mut v = String::with_capacity(24);
    push_decimal(&mut v, u64::from(seq));
    v.push(' ');
    v.push_str(&method.as_str());
    v
}

pub fn new_call_id(local: &Local) -> String {
    let mut call_id = String::with_capacity(80);
    push_hex(&mut call_id, rand::random::<u128>(), 32);
    call_id.push('@');
    push_ip(&mut call_id, local.addr.ip());
    call_id
}

/// What goes into the inquiry besides the client's offer.
pub struct Inquiry<'a> {
    pub request_uri: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub call_id: &'a str,
    pub local_tag: &'a str,
    pub max_forwards: u8,
    pub asserted_identity: Option<&'a str>,
    /// The `X-Switchboard-Session` header (towards app servers only).
    pub session_id: Option<&'a str>,
    pub attributes: &'a [(String, String)],
    pub session_expires: u32,
    pub min_session_expires: u32,
}

/// The INVITE of an outbound leg. To an app server (SPEC §2 step 4): the
/// client's SDP, the identity we assert and the session id, plus the rule's
/// attributes; to a client contact: the app server's SDP. `offer` is the
/// message whose body is the offer (none: an offerless INVITE, RFC 3725).
pub fn as_invite(
    local: &Local,
    flow: &Flow,
    inq: &Inquiry<'_>,
    offer: Option<&Message>,
) -> Result<Message, BuildError> {
    let mut b = MessageBuilder::request(Method::Invite, inq.request_uri)?
        .header("Via", local.via(flow))?
        .header("Max-Forwards", itoa::Buffer::new().format(inq.max_forwards))?
        .header("From", [inq.from, ";tag=", inq.local_tag].concat())?
        .header("To", inq.to)?
        .header("Call-ID", inq.call_id)?
        .header("CSeq", "1 INVITE")?
        .header("Contact", local.contact(flow))?;
    if let Some(pai) = inq.asserted_identity {
        b = b.header("P-Asserted-Identity", pai)?;
    }
    if let Some(id) = inq.session_id {
        b = b.header("X-Switchboard-Session", id)?;
    }
    for (name, value) in inq.attributes {
        b = b.header(name, value)?;
    }
    b = b.header(
        "Allow",
        "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, REFER, NOTIFY",
    )?;
    // RFC 4028: we support session timers and ask the peer to refresh.
    b = b
        .header("Supported", "timer")?
        .header(
            "Session-Expires",
            [
                itoa::Buffer::new().format(inq.session_expires),
                ";refresher=uas",
            ]
            .concat(),
        )?
        .header(
            "Min-SE",
            itoa::Buffer::new().format(inq.min_session_expires),
        )?;
    let body = offer.map(Message::body).unwrap_or_default();
    if !body.is_empty() {
        if let Some(ct) = offer.and_then(|o| o.get(HeaderName::ContentType)) {
            b = b.header("Content-Type", ct.value)?;
        }
    }
    Ok(b.build_message(body))
}

/// Header values of the AS leg's INVITE, reused by ACK, CANCEL and BYE.
struct AsDialog<'a> {
    from: &'a [u8],
    to: &'a [u8],
}

fn as_dialog(leg: &AsLeg) -> Result<AsDialog<'_>, BuildError> {
    let invite = leg.invite.as_ref().ok_or(BuildError::NoRequest)?;
    let value = |name| {
        invite
            .get(name)
            .map(|h| h.value)
            .ok_or(BuildError::InvalidHeaderValue)
    };
    Ok(AsDialog {
        from: value(HeaderName::From)?,
        to: value(HeaderName::To)?,
    })
}

/// CANCEL of the AS INVITE (§9.1): same Request-URI, top Via branch, From,
/// To (no tag) and Call-ID as the INVITE.
pub fn as_cancel(leg: &AsLeg) -> Result<Message, BuildError> {
    let d = as_dialog(leg)?;
    let via = leg
        .invite
        .as_ref()
        .ok_or(BuildError::NoRequest)?
        .get(HeaderName::Via)
        .ok_or(BuildError::InvalidHeaderValue)?;
    let b = MessageBuilder::request(Method::Cancel, &leg.request_uri)?
        .header("Via", via.value)?
        .header("Max-Forwards", "70")?
        .header("From", d.from)?
        .header("To", d.to)?
        .header("Call-ID", &leg.call_id)?
        .header("CSeq", "1 CANCEL")?;
    Ok(b.build_message(b""))
}

/// A request inside a dialog: the remote target, our From with our tag,
/// their To with theirs, the dialog's Call-ID and route set.
struct DialogView<'a> {
    target: &'a str,
    routes: &'a [String],
    from: Vec<u8>,
    to: Vec<u8>,
    call_id: &'a str,
    flow: &'a Flow,
}

/// What goes into an in-dialog request besides the dialog.
pub struct InDialog<'a> {
    pub method: Method<'a>,
    /// The CSeq number; ACK reuses its INVITE's (§13.2.2.4).
    pub cseq: u32,
    /// Max-Forwards (a relayed request carries the original's, less one).
    pub max_forwards: u8,
    pub headers: &'a [(&'a str, String)],
    pub body: Option<(&'a str, &'a [u8])>,
}

impl<'a> InDialog<'a> {
    pub fn bare(method: Method<'a>, cseq: u32) -> Self {
        Self::with_headers(method, cseq, &[])
    }

    pub fn with_headers(method: Method<'a>, cseq: u32, headers: &'a [(&'a str, String)]) -> Self {
        Self {
            method,
            cseq,
            max_forwards: 70,
            headers,
            body: None,
        }
    }
}

fn in_dialog(local: &Local, d: DialogView<'_>, r: &InDialog<'_>) -> Result<Message, BuildError> {
    let mut b = MessageBuilder::request(r.method, d.target)?
        .header("Via", local.via(d.flow))?
        .header("Max-Forwards", itoa::Buffer::new().format(r.max_forwards))?
        .header("From", d.from)?
        .header("To", d.to)?
        .header("Call-ID", d.call_id)?
        .header("CSeq", cseq_value(r.cseq, &r.method))?;
    // RFC 3261 §12.2.1.1: the route set, loose routing (the Request-URI is
    // the remote target).
    for route in d.routes {
        b = b.header("Route", route)?;
    }
    if matches!(r.method, Method::Invite | Method::Update) {
        b = b.header("Contact", local.contact(d.flow))?;
    }
    for (name, value) in r.headers {
        b = b.header(name, value)?;
    }
    let body = match r.body {
        Some((ct, body)) if !body.is_empty() => {
            b = b.header("Content-Type", ct)?;
            body
        }
        _ => &b""[..],
    };
    Ok(b.build_message(body))
}

/// A request on an AS leg (ACK, BYE, re-INVITE, UPDATE, INFO …).
pub fn as_request(local: &Local, leg: &AsLeg, r: &InDialog<'_>) -> Result<Message, BuildError> {
    let d = as_dialog(leg)?;
    let view = DialogView {
        target: leg.remote_target.as_deref().unwrap_or(&leg.request_uri),
        routes: &leg.route_set,
        from: d.from.to_vec(),
        to: with_tag(d.to, leg.remote_tag.as_deref()),
        call_id: &leg.call_id,
        flow: &leg.flow,
    };
    in_dialog(local, view, r)
}

/// A request to the client on the inbound leg: From is the client's To
/// with our tag, To is the client's From, sent to the client's Contact
/// over the flow the client used.
pub fn client_request(
    local: &Local,
    leg: &ClientLeg,
    r: &InDialog<'_>,
) -> Result<Message, BuildError> {
    let inv = leg.invite.as_ref().ok_or(BuildError::NoRequest)?;
    let view = DialogView {
        target: &leg.remote_target,
        routes: &leg.route_set,
        from: with_tag(
            inv.get(HeaderName::To)
                .ok_or(BuildError::InvalidHeaderValue)?
                .value,
            Some(&leg.local_tag),
        ),
        to: inv
            .get(HeaderName::From)
            .ok_or(BuildError::InvalidHeaderValue)?
            .value
            .to_vec(),
        call_id: &leg.call_id,
        flow: &leg.flow,
    };
    in_dialog(local, view, r)
}

/// `value` with `;tag=…` appended unless it has one.
fn with_tag(value: &[u8], tag: Option<&str>) -> Vec<u8> {
    let mut v = value.to_vec();
    if let Some(tag) = tag {
        let has_tag = String::from_utf8_lossy(value)
            .to_ascii_lowercase()
            .contains(";tag=");
        if !has_tag {
            v.extend_from_slice(b";tag=");
            v.extend_from_slice(tag.as_bytes());
        }
    }
    v
}

/// A response to the client's INVITE carrying the AS's answer (status,
/// reason and SDP) but our tag and Contact.
pub fn client_response(
    local: &Local,
    leg: &ClientLeg,
    code: u16,
    reason: &str,
    answer: Option<&Message>,
    extra: &[(&'static str, String)],
) -> Result<Bytes, BuildError> {
    // RFC 3261 §12.1.1: a dialog-creating response echoes the INVITE's
    // Record-Route, so the client's proxies stay on the path.
    let mut b = leg
        .invite
        .as_ref()
        .ok_or(BuildError::NoRequest)?
        .reply(code, reason)?
        .to_tag(&leg.local_tag)
        .copy_record_route((101..300).contains(&code));
    if (101..300).contains(&code) {
        b = b.header("Contact", local.contact(&leg.flow))?;
    }
    for (name, value) in extra {
        b = b.header(name, value)?;
    }
    let (ct, body) = match answer {
        Some(a) if !a.body().is_empty() => (
            a.get(HeaderName::ContentType)
                .and_then(|h| h.value_str())
                .unwrap_or("application/sdp"),
            a.body(),
        ),
        _ => ("", &b""[..]),
    };
    if !body.is_empty() {
        b = b.body(ct, body)?;
    }
    Ok(Bytes::from(b.build()))
}

/// A display name as a quoted-string (RFC 3261 §25.1): `"` and `\` are
/// escaped, and characters a quoted-string cannot hold (CR, LF and other
/// controls) are dropped, so a name cannot break the header it is put in.
pub fn quoted_display(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Record-Route values of a message, each header value split at its
/// top-level commas, in order.
pub fn record_routes(msg: &Message) -> Vec<String> {
    msg.record_routes()
        .filter_map(Result::ok)
        .map(|r| String::from_utf8_lossy(r.raw()).into_owned())
        .collect()
}

/// An OPTIONS probe of an app server (RFC 3261 §11).
pub fn options(local: &Local, flow: &Flow, uri: &str) -> Result<Message, BuildError> {
    let b = MessageBuilder::request(Method::Options, uri)?
        .header("Via", local.via(flow))?
        .header("Max-Forwards", "70")?
        .header("From", {
            let mut from = String::from("<");
            local.push_uri(&mut from);
            from.push_str(">;tag=");
            from.push_str(&new_tag());
            from
        })?
        .header("To", format!("<{uri}>"))?
        .header("Call-ID", new_call_id(local))?
        .header("CSeq", "1 OPTIONS")?
        .header("Accept", "application/sdp")?;
    Ok(b.build_message(b""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_cannot_break_out_of_their_quotes() {
        assert_eq!(quoted_display("Alice"), "\"Alice\"");
        assert_eq!(
            quoted_display("Al \"the pal\" \\ ice"),
            r#""Al \"the pal\" \\ ice""#
        );
        assert_eq!(
            quoted_display("Eve\r\nVia: x"),
            "\"EveVia: x\"",
            "no header injection"
        );
    }
}
