//! The SIP engine: what every message meets between the transports and the
//! transaction layer. It parses, validates, answers what can be answered
//! without state (400, 416, 420, 483, 405/501, OPTIONS), stamps the top Via
//! with where the request came from, and hands the rest on.
//!
//! Nothing here allocates session state: a request that is refused costs a
//! parse and one response.

pub mod checks;
pub mod received;

use std::sync::Arc;

use bytes::Bytes;

use self::checks::{Capabilities, Verdict};
use super::message::{parse_datagram, parse_stream_frame, Limits, Message, ParseError};
use super::transaction::TransactionLayer;
use super::transport::{Flow, Framing, Inbound, Incoming, Outbound};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub limits: Limits,
    pub capabilities: Capabilities,
    /// `Server` / `User-Agent` value.
    pub product: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            capabilities: Capabilities::default(),
            product: format!("Switchboard/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

pub struct Engine {
    config: EngineConfig,
    outbound: Arc<dyn Outbound>,
    layer: TransactionLayer,
    /// Seeds the To tags of stateless answers (the same request always gets
    /// the same tag, so retransmissions get identical answers).
    tag_seed: u64,
}

impl Engine {
    pub fn new(config: EngineConfig, outbound: Arc<dyn Outbound>, layer: TransactionLayer) -> Self {
        Self {
            config,
            outbound,
            layer,
            tag_seed: rand::random(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    fn on_message(&self, mut msg: Message, flow: Flow) {
        if msg.is_response() {
            // Responses are matched by the transaction layer; one that is
            // malformed or matches nothing is dropped (RFC 3261 §18.1.2).
            if msg.validate().is_ok() {
                self.layer.receive(Incoming {
                    message: msg,
                    flow,
                    source: flow.remote,
                });
            }
            return;
        }
        if let Err(e) = msg.validate() {
            self.answer_error(&msg, &flow, e);
            return;
        }
        let reply_flow = received::stamp(&mut msg, &flow);
        match checks::check(&msg, &self.config.capabilities) {
            Verdict::Pass => self.layer.receive(Incoming {
                message: msg,
                flow: reply_flow,
                source: flow.remote,
            }),
            Verdict::Options => {
                let caps = &self.config.capabilities;
                let headers = [
                    ("Allow", caps.allow_header()),
                    ("Accept", "application/sdp".to_string()),
                    ("Supported", caps.supported_header()),
                ];
                self.answer(&msg, &reply_flow, 200, "OK", &headers);
            }
            Verdict::Reject(code, reason, headers) => {
                self.answer(&msg, &reply_flow, code, reason, &headers)
            }
        }
    }

    /// Answers a request that failed parsing or validation, if enough of it
    /// is known to build a response; drops it otherwise.
    fn answer_error(&self, msg: &Message, flow: &Flow, e: ParseError) {
        if msg.is_request()
            && msg.is_answerable()
            && msg.method() != Some(super::message::Method::Ack)
        {
            let reply_flow = received::response_flow(msg, flow);
            self.answer(msg, &reply_flow, e.status_code(), &e.to_string(), &[]);
        } else {
            tracing::debug!(%flow, error = %e, "dropped an unanswerable message");
        }
    }

    fn unparsable(&self, bytes: Bytes, flow: Flow, e: ParseError) {
        match Message::salvage(bytes, &self.config.limits) {
            Some(head) => self.answer_error(&head, &flow, e),
            None => tracing::debug!(%flow, error = %e, "dropped an unparsable message"),
        }
    }

    /// A stateless answer (RFC 3261 §8.2.6, §16.7 for the To tag).
    fn answer(
        &self,
        req: &Message,
        flow: &Flow,
        code: u16,
        reason: &str,
        headers: &[(&str, String)],
    ) {
        let tag = self.stateless_tag(req);
        let built = req.reply(code, reason).and_then(|b| {
            let mut b = b.to_tag(&tag).header("Server", &self.config.product)?;
            for (name, value) in headers {
                b = b.header(name, value)?;
            }
            Ok(b.build())
        });
        match built {
            Ok(bytes) => {
                tracing::debug!(%flow, code, reason, "stateless answer");
                if let Err(e) = self.outbound.send(flow, Bytes::from(bytes)) {
                    tracing::debug!(%flow, error = %e, "stateless answer not sent");
                }
            }
            Err(e) => tracing::debug!(%flow, error = %e, "cannot build an answer"),
        }
    }

    fn stateless_tag(&self, req: &Message) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.tag_seed.hash(&mut h);
        req.call_id().unwrap_or_default().hash(&mut h);
        req.top_via()
            .ok()
            .and_then(|v| v.branch())
            .unwrap_or_default()
            .hash(&mut h);
        format!("sb{:016x}", h.finish())
    }
}

impl Inbound for Engine {
    fn on_frame(&self, bytes: Bytes, flow: Flow, framing: Framing) {
        let parsed = match framing {
            Framing::Datagram => parse_datagram(bytes.clone(), &self.config.limits),
            Framing::Stream => parse_stream_frame(bytes.clone(), &self.config.limits),
        };
        match parsed {
            Ok(msg) => self.on_message(msg, flow),
            Err(e) => self.unparsable(bytes, flow, e),
        }
    }

    fn on_stream_error(&self, bytes: Bytes, flow: Flow, error: ParseError) {
        self.unparsable(bytes, flow, error);
    }
}
