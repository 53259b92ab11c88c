//! Answers the engine gives by itself, before any session logic
//! (RFC 3261 §8.2.1–8.2.2, §16.3, §11).

use crate::sip::message::{Message, Method, Scheme};

/// What the core above the engine handles.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Methods answered by the core (the `Allow` header).
    pub allow: Vec<&'static str>,
    /// Option tags the core understands (`Supported`; others in `Require`
    /// get 420).
    pub supported: Vec<&'static str>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            allow: vec![
                "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE", "REFER",
                "NOTIFY",
            ],
            // Only what is implemented: `timer` (RFC 4028) and `replaces`
            // (RFC 3891). Not `path` (RFC 3327, Path is not stored with
            // bindings).
            supported: vec!["timer", "replaces"],
        }
    }
}

impl Capabilities {
    pub fn allow_header(&self) -> String {
        self.allow.join(", ")
    }

    pub fn supported_header(&self) -> String {
        self.supported.join(", ")
    }
}

/// The engine's decision on a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it on.
    Pass,
    /// Answer it here: status, reason, extra headers.
    Reject(u16, &'static str, Vec<(&'static str, String)>),
    /// OPTIONS aimed at us: 200 with our capabilities.
    Options,
}

/// Checks a validated request in RFC order. ACK is never answered.
pub fn check(msg: &Message, caps: &Capabilities) -> Verdict {
    let Some(method) = msg.method() else {
        return Verdict::Pass;
    };
    if method == Method::Ack {
        return Verdict::Pass;
    }
    // §8.2.1: methods we do not know at all are 501, known ones we do not
    // handle 405, both with Allow.
    let name = method.as_str();
    if !caps.allow.iter().any(|m| *m == name) {
        let allow = vec![("Allow", caps.allow_header())];
        return if method.is_extension() {
            Verdict::Reject(501, "Not Implemented", allow)
        } else {
            Verdict::Reject(405, "Method Not Allowed", allow)
        };
    }
    // §8.2.2.1: a Request-URI scheme we cannot handle.
    match msg.request_uri().map(|u| u.scheme()) {
        Ok(Scheme::Sip | Scheme::Sips | Scheme::Tel) => {}
        _ => return Verdict::Reject(416, "Unsupported URI Scheme", Vec::new()),
    }
    // §8.2.2.3: extensions the client requires and we lack (not for CANCEL).
    if method != Method::Cancel {
        let unsupported: Vec<String> = msg
            .require()
            .filter(|tag| {
                !caps
                    .supported
                    .iter()
                    .any(|s| s.as_bytes().eq_ignore_ascii_case(tag))
            })
            .map(|tag| String::from_utf8_lossy(tag).into_owned())
            .collect();
        if !unsupported.is_empty() {
            return Verdict::Reject(
                420,
                "Bad Extension",
                vec![("Unsupported", unsupported.join(", "))],
            );
        }
    }
    if method == Method::Options {
        return Verdict::Options;
    }
    // §16.3 step 3: a request that may not travel further.
    if matches!(msg.max_forwards(), Ok(Some(0))) {
        return Verdict::Reject(483, "Too Many Hops", Vec::new());
    }
    Verdict::Pass
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(start: &str, extra: &str) -> Message {
        let method = start.split(' ').next().unwrap_or_default();
        let text = format!(
            "{start} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\n\
             Call-ID: c\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes()).expect("parses")
    }

    #[test]
    fn verdicts() {
        let caps = Capabilities::default();
        assert_eq!(check(&req("INVITE sip:x@y", ""), &caps), Verdict::Pass);
        assert_eq!(check(&req("OPTIONS sip:x@y", ""), &caps), Verdict::Options);
        assert!(matches!(
            check(&req("FOO sip:x@y", ""), &caps),
            Verdict::Reject(501, _, _)
        ));
        assert!(matches!(
            check(&req("SUBSCRIBE sip:x@y", ""), &caps),
            Verdict::Reject(405, _, _)
        ));
        assert!(matches!(
            check(&req("INVITE http://x", ""), &caps),
            Verdict::Reject(416, _, _)
        ));
        assert_eq!(
            check(
                &req("INVITE sip:x@y", "Require: 100rel, timer, foo\r\n"),
                &caps
            ),
            Verdict::Reject(
                420,
                "Bad Extension",
                vec![("Unsupported", "100rel, foo".into())]
            )
        );
        assert_eq!(
            check(&req("CANCEL sip:x@y", "Require: foo\r\n"), &caps),
            Verdict::Pass
        );
        let hop = req("INVITE sip:x@y", "").as_bytes().to_vec();
        let hop = String::from_utf8(hop)
            .unwrap()
            .replace("Max-Forwards: 70", "Max-Forwards: 0");
        let hop = Message::parse(hop.as_bytes()).unwrap();
        assert!(matches!(check(&hop, &caps), Verdict::Reject(483, _, _)));
    }
}
