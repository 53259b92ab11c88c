//! The relay's transaction user: one task that owns every session of this
//! node and reacts to what the transaction layer, the API and its own
//! timers deliver. It never waits on the database: what it learns is
//! queued for the publishers.

use ahash::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::auth::{AuthOutcome, DigestAuth};
use super::catalog::CatalogHandle;
use super::legs::Local;
use super::registrar::Registrar;
use super::table::SessionTable;
use super::timers::{TimerKey, TimerService};
use super::RelayCommand;
use crate::sip::message::{Message, Method};
use crate::sip::transaction::{ServerTxId, TransactionLayer, TuEvent, TuEvents};
use crate::sip::transport::Flow;
use crate::store::clients::Client;
use crate::store::sessions::SessionChange;

/// Relay timing.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Longest wait for an app server's final answer (RFC 3261 §16.8
    /// Timer C, at least 3 minutes) unless the service sets a ring timeout.
    pub timer_c: Duration,
    /// How long an app server may stay silent (not even 100 Trying) before
    /// the next one is tried, like a proxy's fr_timer: a dead AS costs
    /// seconds, not Timer B's 32.
    pub response_timeout: Duration,
    /// Smallest Session-Expires accepted (RFC 4028 Min-SE, 90 s).
    pub min_session_expires: u32,
    /// How long a relayed 2xx waits for the client's ACK (64·T1).
    pub ack_timeout: Duration,
    /// How long an ended session still absorbs late messages.
    pub linger: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            timer_c: Duration::from_secs(180),
            response_timeout: Duration::from_secs(5),
            min_session_expires: 90,
            ack_timeout: Duration::from_secs(32),
            linger: Duration::from_secs(32),
        }
    }
}

/// Timers the core sets for itself.
#[derive(Debug)]
pub enum CoreTimer {
    /// The AS on this leg did not answer in time.
    Ring { session: String, leg: usize },
    /// The AS on this leg has not responded at all (not even 100).
    Silent { session: String, leg: usize },
    /// The client did not ACK our 2xx.
    NoAck { session: String },
    /// An ended session may be forgotten.
    Reap { session: String },
    /// Time to probe the app servers.
    Probe,
    /// A side's session timer (RFC 4028): our refresh is due, or the
    /// peer's is overdue, unless its deadline moved since.
    Session { session: String, inbound: bool },
}

/// App server probing.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub interval: Duration,
    /// Unanswered probes in a row before an app server is down.
    pub failures: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            failures: 3,
        }
    }
}

/// What the core needs from the rest of the node.
pub struct CoreDeps {
    pub layer: TransactionLayer,
    pub auth: Arc<DigestAuth>,
    pub registrar: Arc<Registrar>,
    pub catalog: CatalogHandle,
    pub product: String,
    /// The SIP listen address (its IP may be a wildcard).
    pub listen: std::net::SocketAddr,
    pub node: String,
    pub publish: mpsc::UnboundedSender<SessionChange>,
    /// CDRs of ended sessions.
    pub cdrs: mpsc::UnboundedSender<crate::store::cdrs::CdrRecord>,
    /// Charges taken in SIP.
    pub charges: mpsc::UnboundedSender<crate::store::charges::NewCharge>,
    pub config: RelayConfig,
    pub health: HealthConfig,
    pub store: crate::store::Store,
    /// Where the core's database work runs: the main runtime. The core
    /// itself runs on the SIP runtime, whose reactor must not come to own
    /// database connections (they would die with it).
    pub background: tokio::runtime::Handle,
}

pub struct Core {
    pub(super) d: CoreDeps,
    pub(super) sessions: SessionTable,
    pub(super) prober: super::health::Prober,
    pub(super) timers: TimerService<CoreTimer>,
    /// Parallel fan-outs still waiting for answers.
    pub(super) fanouts: super::b2bua::FanOuts,
    /// Our source IP per destination, when listening on a wildcard. Bounded:
    /// destinations come from the network.
    local_ips: HashMap<IpAddr, IpAddr>,
}

/// Destinations whose local IP is remembered (beyond, it is looked up each
/// time).
const MAX_LOCAL_IPS: usize = 4096;

impl Core {
    pub fn new(d: CoreDeps) -> Self {
        Self {
            d,
            sessions: SessionTable::default(),
            prober: super::health::Prober::default(),
            timers: TimerService::default(),
            fanouts: Default::default(),
            local_ips: HashMap::default(),
        }
    }

    /// Handles events until the layer closes or shutdown is signalled.
    pub async fn run(
        mut self,
        mut events: TuEvents,
        mut commands: mpsc::Receiver<RelayCommand>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.probe_all();
        // One timer entry, moved when the earliest deadline moves: a new
        // `Sleep` per event would register and cancel a timer each time.
        let sleep = tokio::time::sleep(Duration::from_secs(86_400));
        tokio::pin!(sleep);
        // One future for the whole loop: a fresh `changed()` per pass
        // would join and leave the channel's waiter list for every event.
        let stop = shutdown.changed();
        tokio::pin!(stop);
        let mut armed: Option<Instant> = None;
        loop {
            let wake = self.timers.next_deadline();
            if wake != armed {
                if let Some(at) = wake {
                    sleep.as_mut().reset(at);
                }
                armed = wake;
            }
            tokio::select! {
                e = events.recv() => match e {
                    Some(e) => self.on_event(e),
                    None => return,
                },
                Some(c) = commands.recv() => self.on_command(c),
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    self.fire_due_timers();
                }
                _ = &mut stop => return,
            }
        }
    }

    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        while let Some(timer) = self.timers.pop_due(now) {
            self.on_timer(timer);
        }
    }

    fn on_event(&mut self, event: TuEvent) {
        match event {
            TuEvent::Request {
                tx,
                message,
                flow,
                source,
                cancels,
            } => self.on_request(tx, message, flow, source, cancels),
            TuEvent::Ack { message, .. } => self.on_ack(&message),
            TuEvent::Response { tx, message, .. } => {
                let code = message.status();
                if !(code.is_some_and(|c| c >= 200) && self.on_probe_answer(&tx, code)) {
                    self.on_response(tx, &message);
                }
            }
            TuEvent::Timeout { tx } | TuEvent::TransportError { tx } => {
                if !self.on_probe_answer(&tx, None) {
                    self.on_request_failed(tx);
                }
            }
            TuEvent::ServerTimeout { .. } | TuEvent::ServerTransportError { .. } => {}
        }
    }

    fn on_command(&mut self, command: RelayCommand) {
        match command {
            RelayCommand::Terminate { session_id, reply } => {
                let _ = reply.send(self.terminate(&session_id, "admin"));
            }
        }
    }

    fn on_request(
        &mut self,
        tx: ServerTxId,
        msg: Message,
        flow: Flow,
        source: std::net::SocketAddr,
        cancels: Option<ServerTxId>,
    ) {
        let has_to_tag = msg.to_tag().is_some();
        match msg.method() {
            Some(Method::Register) => self.on_register(&tx, &msg, &flow),
            Some(Method::Invite) if !has_to_tag => self.on_invite(tx, msg, flow, source),
            Some(Method::Bye) => self.on_bye(&tx, &msg),
            Some(Method::Cancel) => self.on_cancel(&tx, &msg, cancels),
            Some(Method::Ack) => {}
            // In-dialog requests the relay does not change yet, and
            // requests for dialogs this node does not hold (§12.2.2).
            _ if has_to_tag && self.find_dialog(&msg).is_some() => self.on_in_dialog(tx, msg),
            _ => self.respond(&tx, &msg, 481, "Call/Transaction Does Not Exist", &[]),
        }
    }

    fn on_register(&self, tx: &ServerTxId, msg: &Message, flow: &Flow) {
        let Some(client) = self.authenticate(tx, msg, flow, false) else {
            return;
        };
        let answer = self.d.registrar.register(msg, flow, &client);
        tracing::debug!(client = %client.username, code = answer.code, "REGISTER");
        self.respond(tx, msg, answer.code, answer.reason, &answer.headers);
    }

    /// Digest authentication (401 for REGISTER, 407 otherwise, RFC 3261
    /// §22.2–22.3); answers the request itself when it is not authenticated.
    pub(super) fn authenticate(
        &self,
        tx: &ServerTxId,
        msg: &Message,
        flow: &Flow,
        proxy: bool,
    ) -> Option<Arc<Client>> {
        let catalog = self.d.catalog.snapshot();
        match self.d.auth.verify(msg, proxy, &catalog, flow.remote.ip()) {
            AuthOutcome::Authenticated(client) => Some(client),
            AuthOutcome::Challenge { stale } => {
                let (code, reason, header) = if proxy {
                    (407, "Proxy Authentication Required", "Proxy-Authenticate")
                } else {
                    (401, "Unauthorized", "WWW-Authenticate")
                };
                let headers: Vec<(&'static str, String)> = self
                    .d
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

    /// Answers a request with a response of our own making.
    pub(super) fn respond(
        &self,
        tx: &ServerTxId,
        msg: &Message,
        code: u16,
        reason: &str,
        headers: &[(&'static str, String)],
    ) {
        let tag = crate::sip::transaction::new_tag();
        let built = msg.reply(code, reason).and_then(|b| {
            let mut b = b.to_tag(&tag).header("Server", &self.d.product)?;
            for (name, value) in headers {
                b = b.header(name, value)?;
            }
            Ok(b.build())
        });
        match built {
            Ok(bytes) => self.d.layer.respond(tx, code, Bytes::from(bytes)),
            Err(e) => tracing::warn!(error = %e, code, "could not build a response"),
        }
    }

    /// Our address as seen from `flow`'s peer: the listen address, or the
    /// connection's local address, or what the routing table says.
    pub(super) fn local_for(&mut self, flow: &Flow) -> Local {
        let port = self.d.listen.port();
        let ip = if !self.d.listen.ip().is_unspecified() {
            self.d.listen.ip()
        } else if !flow.local.ip().is_unspecified() {
            flow.local.ip()
        } else {
            let dest = flow.remote.ip();
            match self.local_ips.get(&dest) {
                Some(ip) => *ip,
                None => {
                    let ip = super::target::local_ip_for(dest).unwrap_or(dest);
                    if self.local_ips.len() < MAX_LOCAL_IPS {
                        self.local_ips.insert(dest, ip);
                    }
                    ip
                }
            }
        };
        Local {
            addr: std::net::SocketAddr::new(ip, port),
        }
    }

    pub(super) fn schedule(&mut self, after: Duration, timer: CoreTimer) -> TimerKey {
        self.timers.schedule(Instant::now() + after, timer)
    }
}
