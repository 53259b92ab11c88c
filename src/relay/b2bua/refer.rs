//! What a REFER asks for (RFC 3515): its Refer-To checked, the request the
//! rules are searched with, and the SDP answer with which an offer of a
//! transfer that will not happen is declined.

use super::*;
use crate::relay::request_view::RequestView;
use crate::sip::message::{HeaderName, Uri};

/// The request a REFER is searched with: the session's INVITE (method,
/// headers, SDP) with the Refer-To URI as Request-URI.
pub(super) struct ReferredRequest<'a> {
    pub original: &'a Message,
    pub target: Uri<'a>,
}

impl RequestView for ReferredRequest<'_> {
    fn method(&self) -> std::borrow::Cow<'_, str> {
        RequestView::method(self.original)
    }

    fn request_uri_user(&self) -> Option<std::borrow::Cow<'_, str>> {
        let user = self.target.user_unescaped()?;
        Some(std::borrow::Cow::Owned(text(&user)))
    }

    fn request_uri_host(&self) -> std::borrow::Cow<'_, str> {
        let host = self.target.host().map(|h| h.as_str()).unwrap_or_default();
        std::borrow::Cow::Borrowed(host)
    }

    fn any_header_value(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.original.any_header_value(name, f)
    }

    fn sdp(&self) -> Option<&[u8]> {
        self.original.sdp()
    }
}

/// The Refer-To URI of a REFER we can carry out, or the refusal.
pub(super) fn refer_target(msg: &Message) -> Result<String, (u16, &'static str)> {
    // RFC 3515 §2.4.2: exactly one Refer-To value, else 400.
    let mut values = msg.get_all(HeaderName::ReferTo);
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err((400, "Exactly One Refer-To Required"));
    };
    let Ok(na) = crate::sip::message::NameAddr::parse(value.value) else {
        return Err((400, "Bad Refer-To"));
    };
    let uri = na.uri();
    // Only a SIP URI can name a service; RFC 3261 §21.4.16 names the
    // refusal of a URI scheme we cannot handle.
    if !uri.is_sip() {
        return Err((416, "Unsupported URI Scheme"));
    }
    // A Replaces header in the Refer-To asks for an attended transfer to a
    // dialog (RFC 3891 §7.1): we transfer to services, not to dialogs,
    // and refuse it (RFC 3515 §2.4.2 allows any 4xx); likewise a method
    // other than INVITE (RFC 3515 §2.1).
    let replaces = uri.headers().is_some_and(|h| {
        h.split(|&b| b == b'&').any(|field| {
            let name = field.split(|&b| b == b'=').next().unwrap_or_default();
            name.eq_ignore_ascii_case(b"Replaces")
        })
    });
    if replaces {
        return Err((403, "Attended Transfer Not Supported"));
    }
    let method = uri.params().get_value("method");
    if method.is_some_and(|m| !m.eq_ignore_ascii_case(b"INVITE")) {
        return Err((403, "Only INVITE Can Be Referred"));
    }
    Ok(text(uri.raw()))
}

/// An SDP answer rejecting every stream of `offer` (RFC 3264 §6: port 0 on
/// each m-line, in the offer's order), for an offer nobody will use.
pub(super) fn rejecting_answer(offer: &[u8]) -> Vec<u8> {
    let mut sdp =
        b"v=0\r\no=switchboard 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n".to_vec();
    for line in offer.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(media) = line.strip_prefix(b"m=") else {
            continue;
        };
        let mut fields = media.split(|&b| b == b' ');
        let kind = fields.next().unwrap_or_default();
        let _port = fields.next();
        sdp.extend_from_slice(b"m=");
        sdp.extend_from_slice(kind);
        sdp.extend_from_slice(b" 0");
        for f in fields {
            sdp.push(b' ');
            sdp.extend_from_slice(f);
        }
        sdp.extend_from_slice(b"\r\n");
    }
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refer(refer_to: &str) -> Message {
        let text = format!(
            "REFER sip:sb@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr\r\n\
             From: <sip:alice@x>;tag=1\r\nTo: <sip:voicemail@x>;tag=2\r\nCall-ID: c\r\n\
             CSeq: 3 REFER\r\nMax-Forwards: 70\r\n{refer_to}Content-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes()).expect("parses")
    }

    #[test]
    fn refer_to_names_one_sip_service() {
        assert_eq!(
            refer_target(&refer("Refer-To: <sip:conference@x>\r\n")),
            Ok("sip:conference@x".into())
        );
        assert_eq!(refer_target(&refer("")).map_err(|e| e.0), Err(400));
        let two = "Refer-To: <sip:a@x>\r\nRefer-To: <sip:b@x>\r\n";
        assert_eq!(refer_target(&refer(two)).map_err(|e| e.0), Err(400));
        let tel = "Refer-To: <tel:+123>\r\n";
        assert_eq!(refer_target(&refer(tel)).map_err(|e| e.0), Err(416));
        let attended = "Refer-To: <sip:bob@x?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n";
        assert_eq!(refer_target(&refer(attended)).map_err(|e| e.0), Err(403));
        let bye = "Refer-To: <sip:bob@x;method=BYE>\r\n";
        assert_eq!(refer_target(&refer(bye)).map_err(|e| e.0), Err(403));
    }

    #[test]
    fn a_rejecting_answer_has_every_stream_at_port_zero() {
        let offer = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
                      m=audio 7000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\nm=video 7002 RTP/AVP 96\r\n";
        let answer = String::from_utf8(rejecting_answer(offer)).expect("text");
        assert!(answer.ends_with("m=audio 0 RTP/AVP 0 8\r\nm=video 0 RTP/AVP 96\r\n"));
        assert!(!answer.contains("7000"));
    }
}
