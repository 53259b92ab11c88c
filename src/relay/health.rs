//! App server health (SPEC §2): each enabled app server is asked OPTIONS
//! every interval; one that leaves N probes in a row unanswered is marked
//! down (and skipped by routing) until it answers again. A probe counts as
//! unanswered when the next one is due, so detection takes about N
//! intervals whatever the transaction timers say.

use std::collections::HashMap;

use super::core::{Core, CoreTimer};
use super::legs;
use crate::sip::transaction::ClientTxId;
use crate::sip::transport::Flow;

/// What the prober knows of one app server.
#[derive(Debug, Default)]
pub struct AsHealth {
    up: Option<bool>,
    missed: u64,
    pending: Option<ClientTxId>,
}

#[derive(Debug, Default)]
pub struct Prober {
    servers: HashMap<String, AsHealth>,
    /// Probe transaction → app server.
    probes: HashMap<ClientTxId, String>,
}

impl Core {
    /// Sends the next round of probes and counts unanswered ones.
    pub(super) fn probe_all(&mut self) {
        let catalog = self.d.catalog.snapshot();
        let mut missed = Vec::new();
        for (id, app_server) in &catalog.app_servers {
            let Some(target) = catalog.targets.get(id) else {
                continue;
            };
            if !app_server.enabled {
                continue;
            }
            let entry = self.prober.servers.entry(id.clone()).or_default();
            if let Some(tx) = entry.pending.take() {
                self.prober.probes.remove(&tx);
                missed.push(id.clone());
            }
            let flow = Flow {
                protocol: target.protocol,
                remote: target.addr,
                local: self.d.listen,
                connection: 0,
            };
            let local = self.local_for(&flow);
            let Ok(options) = legs::options(&local, &flow, &app_server.uri) else {
                continue;
            };
            if let Ok(tx) = self.d.layer.request(options, flow) {
                self.prober.probes.insert(tx, id.clone());
                self.prober.servers.entry(id.clone()).or_default().pending = Some(tx);
            }
        }
        for id in missed {
            self.probe_result(&id, false);
        }
        self.schedule(self.d.health.interval, CoreTimer::Probe);
    }

    /// A response or failure of a probe; false when `tx` is not a probe.
    pub(super) fn on_probe_answer(&mut self, tx: &ClientTxId, answered: Option<u16>) -> bool {
        let Some(id) = self.prober.probes.remove(tx) else {
            return false;
        };
        if let Some(entry) = self.prober.servers.get_mut(&id) {
            entry.pending = None;
        }
        // Any answer but 503 shows the app server can take requests.
        self.probe_result(&id, matches!(answered, Some(code) if code != 503));
        true
    }

    fn probe_result(&mut self, id: &str, ok: bool) {
        let limit = self.d.health.failures;
        let entry = self.prober.servers.entry(id.to_string()).or_default();
        let change = if ok {
            entry.missed = 0;
            (entry.up != Some(true)).then_some("up")
        } else {
            entry.missed += 1;
            (entry.missed >= limit && entry.up != Some(false)).then_some("down")
        };
        let Some(health) = change else { return };
        entry.up = Some(health == "up");
        if health == "down" {
            tracing::warn!(app_server = %id, missed = entry.missed, "app server down");
        } else {
            tracing::info!(app_server = %id, "app server up");
        }
        // Stored, then the routing snapshot rebuilt, off the SIP path.
        let store = self.d.store.clone();
        let catalog = self.d.catalog.clone();
        let id = id.to_string();
        self.d.background.spawn(async move {
            if let Err(e) = store.set_app_server_health(&id, health).await {
                tracing::warn!(app_server = %id, error = %e, "cannot store app server health");
            }
            if let Err(e) = catalog.reload(&store).await {
                tracing::warn!(error = %e, "cannot reload the routing configuration");
            }
        });
    }
}
