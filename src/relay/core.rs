//! The relay's transaction user: takes what the transaction layer delivers
//! and decides. Today it authenticates, runs the registrar and refuses what
//! the relay cannot serve yet; the B2BUA sessions plug in here.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::auth::{AuthOutcome, DigestAuth};
use super::catalog::CatalogHandle;
use super::registrar::Registrar;
use crate::sip::message::{Message, Method};
use crate::sip::transaction::{ServerTxId, TransactionLayer, TuEvent};
use crate::sip::transport::Flow;
use crate::store::clients::Client;

pub struct Core {
    pub layer: TransactionLayer,
    pub auth: Arc<DigestAuth>,
    pub registrar: Arc<Registrar>,
    pub catalog: CatalogHandle,
    pub product: String,
}

impl Core {
    /// Handles events until the layer closes or shutdown is signalled.
    pub async fn run(
        self,
        mut events: mpsc::Receiver<TuEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let event = tokio::select! {
                e = events.recv() => match e {
                    Some(e) => e,
                    None => return,
                },
                _ = shutdown.changed() => return,
            };
            if let TuEvent::Request {
                tx, message, flow, ..
            } = event
            {
                self.on_request(tx, message, flow);
            }
        }
    }

    fn on_request(&self, tx: ServerTxId, msg: Message, flow: Flow) {
        match msg.method() {
            Some(Method::Register) => self.on_register(&tx, &msg, &flow),
            Some(Method::Invite) => {
                if let Some(_client) = self.authenticate(&tx, &msg, &flow, true) {
                    // Sessions arrive with the relay; until then say so.
                    self.respond(&tx, &msg, 501, "Relay Not Available", &[]);
                }
            }
            Some(Method::Ack) => {}
            // In-dialog requests and CANCELs for dialogs or transactions
            // this node does not hold (RFC 3261 §12.2.2, §9.2).
            _ => self.respond(&tx, &msg, 481, "Call/Transaction Does Not Exist", &[]),
        }
    }

    fn on_register(&self, tx: &ServerTxId, msg: &Message, flow: &Flow) {
        let Some(client) = self.authenticate(tx, msg, flow, false) else {
            return;
        };
        let answer = self.registrar.register(msg, flow, &client);
        tracing::debug!(client = %client.username, code = answer.code, "REGISTER");
        self.respond(tx, msg, answer.code, answer.reason, &answer.headers);
    }

    /// Digest authentication (401 for REGISTER, 407 otherwise, RFC 3261
    /// §22.2–22.3); answers the request itself when it is not authenticated.
    fn authenticate(
        &self,
        tx: &ServerTxId,
        msg: &Message,
        flow: &Flow,
        proxy: bool,
    ) -> Option<Arc<Client>> {
        let catalog = self.catalog.snapshot();
        match self.auth.verify(msg, proxy, &catalog, flow.remote.ip()) {
            AuthOutcome::Authenticated(client) => Some(client),
            AuthOutcome::Challenge { stale } => {
                let (code, reason, header) = if proxy {
                    (407, "Proxy Authentication Required", "Proxy-Authenticate")
                } else {
                    (401, "Unauthorized", "WWW-Authenticate")
                };
                let headers: Vec<(&'static str, String)> = self
                    .auth
                    .challenges(stale)
                    .into_iter()
                    .map(|c| (header, c))
                    .collect();
                self.respond(tx, msg, code, reason, &headers);
                None
            }
            AuthOutcome::BadRequest(reason) => {
                self.respond(tx, msg, 400, reason, &[]);
                None
            }
            AuthOutcome::Forbidden(reason) => {
                self.respond(tx, msg, 403, reason, &[]);
                None
            }
        }
    }

    fn respond(
        &self,
        tx: &ServerTxId,
        msg: &Message,
        code: u16,
        reason: &str,
        headers: &[(&'static str, String)],
    ) {
        let tag = format!("{:016x}", rand::random::<u64>());
        let built = msg.reply(code, reason).and_then(|b| {
            let mut b = b.to_tag(&tag).header("Server", &self.product)?;
            for (name, value) in headers {
                b = b.header(name, value)?;
            }
            Ok(b.build())
        });
        match built {
            Ok(bytes) => self.layer.respond(tx, code, Bytes::from(bytes)),
            Err(e) => tracing::warn!(error = %e, code, "could not build a response"),
        }
    }
}
