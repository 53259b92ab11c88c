//! Second parsing step: typed validation of what every element relies on.
//!
//! [`super::parse_datagram`] / [`super::parse_stream_frame`] only split
//! lines, so a message with e.g. a broken Contact still yields a
//! [`Message`] from which a 400 can be built (its raw Via/From/To/Call-ID/
//! CSeq lines are copied, RFC 3261 §8.2.6.2). The engine calls
//! [`Message::validate`] on every message before acting on it.
//!
//! What is checked here (all syntax, RFC 3261 §8.2.2 / §16.3 "reasonable
//! syntax check"): version (505), exactly one From/To/Call-ID/CSeq
//! (RFC 4475 multi01, insuf), at most one Max-Forwards/Content-Type, at least
//! one Via and all Via values, From/To/Contact/Route/Record-Route syntax,
//! Call-ID syntax, CSeq range and (requests) CSeq method = request method
//! (mismatch01/02), Max-Forwards range, Request-URI syntax and no URI headers
//! in it (escruri), Content-Type syntax.
//!
//! What is deliberately *not* checked, because it is the engine's decision
//! or irrelevant to relaying: Date (baddate: ignore), Expires (scalar02:
//! treat as absent), URI schemes (unkscm/novelsc: 416), unknown methods
//! (501/forward), Require/Proxy-Require (bext01: 420), Max-Forwards = 0
//! (zeromf: 483), Authorization schemes (regaut01), To/From schemes
//! (unksm2: only a registrar cares), branch cookie (badbranch).

use super::header::HeaderName;
use super::msg::Message;
use super::name_addr::Contact;
use super::views::Views;
use super::ParseError;
use std::sync::Arc;

impl Message {
    /// Validates the headers the SIP core depends on (see module docs) and
    /// keeps the top Via, From, To, Request-URI and first Contact it
    /// parsed, so that reading them afterwards costs no parse. The first problem found is
    /// returned; its `status_code()` and `Display` make the error response.
    pub fn validate(&mut self) -> Result<(), ParseError> {
        let views = self.check()?;
        self.views = Some(Arc::new(views));
        Ok(())
    }

    fn check(&self) -> Result<Views, ParseError> {
        if !self.is_sip2() {
            return Err(ParseError::VersionNotSupported);
        }
        // One pass over the header index counts what must be single
        // (and, for the first four, present).
        const SINGLE: [(HeaderName, bool); 6] = [
            (HeaderName::From, true),
            (HeaderName::To, true),
            (HeaderName::CallId, true),
            (HeaderName::CSeq, true),
            (HeaderName::MaxForwards, false),
            (HeaderName::ContentType, false),
        ];
        let mut counts = [0usize; SINGLE.len()];
        for entry in &self.headers {
            if let Some(i) = SINGLE.iter().position(|(n, _)| *n == entry.name) {
                counts[i] += 1;
            }
        }
        for ((name, required), count) in SINGLE.iter().zip(counts) {
            match count {
                0 if *required => return Err(ParseError::MissingHeader(name.as_str())),
                0 | 1 => {}
                _ => return Err(ParseError::DuplicateHeader(name.as_str())),
            }
        }
        let mut vias = self.vias();
        let top_via = vias.next().ok_or(ParseError::MissingHeader("Via"))??;
        for v in vias {
            v?;
        }
        let from = self.from_header()?;
        let to = self.to_header()?;
        self.call_id()?;
        let cseq = self.cseq()?;
        let mut request_uri = None;
        if let Some(method) = self.method() {
            let uri = self.request_uri()?;
            if uri.headers().is_some() {
                return Err(ParseError::BadRequestUri);
            }
            if cseq.method != method {
                return Err(ParseError::CSeqMethodMismatch);
            }
            self.max_forwards()?;
            request_uri = Some(uri);
        }
        let mut n = 0;
        let mut star = false;
        let mut contact = None;
        for c in self.contacts() {
            match c? {
                Contact::Star => star = true,
                Contact::Addr(a) if n == 0 => contact = Some(a),
                Contact::Addr(_) => {}
            }
            n += 1;
        }
        if star && n > 1 {
            return Err(ParseError::BadHeader("Contact"));
        }
        for r in self.routes() {
            r?;
        }
        for r in self.record_routes() {
            r?;
        }
        self.content_type()?;
        Ok(Views::keep(
            &self.buf,
            &top_via,
            &from,
            &to,
            request_uri.as_ref(),
            contact.as_ref(),
        ))
    }
}
