//! The registrar (RFC 3261 §10.3): bindings of each client's address of
//! record to its contacts, held in memory (the SIP path never waits on the
//! database) and published to the store in batches.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::sip::message::{Contact, Message};
use crate::sip::transport::Flow;
use crate::store::clients::Client;
use crate::store::registrations::{Registration, RegistrationChange};
use crate::store::{new_id, Timestamp};

/// Registrar limits (RFC 3261 §10.2.1.1, §10.3 step 7).
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// Contacts one client may bind at once.
    pub max_contacts: usize,
    pub node: String,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_contacts: 10,
            node: "switchboard".into(),
        }
    }
}

/// A live binding: the published record plus the flow to reach it by.
#[derive(Debug, Clone)]
pub struct Binding {
    pub record: Registration,
    pub flow: Flow,
    pub q: Option<u16>,
}

/// The answer to a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterAnswer {
    pub code: u16,
    pub reason: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl RegisterAnswer {
    fn fail(code: u16, reason: &'static str) -> Self {
        Self {
            code,
            reason,
            headers: Vec::new(),
        }
    }
}

pub struct Registrar {
    config: RegistrarConfig,
    /// client id → bindings. Locked only for in-memory updates, never
    /// across an await.
    bindings: Mutex<HashMap<String, Vec<Binding>>>,
    publish: mpsc::UnboundedSender<RegistrationChange>,
}

impl Registrar {
    pub fn new(
        config: RegistrarConfig,
        publish: mpsc::UnboundedSender<RegistrationChange>,
    ) -> Self {
        Self {
            config,
            bindings: Mutex::new(HashMap::new()),
            publish,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Binding>>> {
        self.bindings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Restores bindings published before a restart (UDP flows only can be
    /// reused; TCP ones are reached by a new connection to the source).
    pub fn restore(&self, records: Vec<Registration>, local: std::net::SocketAddr) {
        let mut map = self.lock();
        for record in records {
            let Ok(remote) = record.source.parse() else {
                continue;
            };
            let protocol = if record.transport == "TCP" {
                crate::sip::transport::Protocol::Tcp
            } else {
                crate::sip::transport::Protocol::Udp
            };
            let flow = Flow {
                protocol,
                remote,
                local,
                connection: 0,
            };
            map.entry(record.client_id.clone())
                .or_default()
                .push(Binding {
                    record,
                    flow,
                    q: None,
                });
        }
    }

    /// Current bindings of a client (unexpired).
    pub fn lookup(&self, client_id: &str) -> Vec<Binding> {
        let now = Timestamp::now();
        self.lock()
            .get(client_id)
            .map(|v| {
                v.iter()
                    .filter(|b| b.record.expires_at > now)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes one binding (admin action); true when it existed here.
    pub fn remove(&self, id: &str) -> bool {
        let mut map = self.lock();
        for list in map.values_mut() {
            if let Some(i) = list.iter().position(|b| b.record.id == id) {
                list.remove(i);
                let _ = self
                    .publish
                    .send(RegistrationChange::Delete(id.to_string()));
                return true;
            }
        }
        false
    }

    /// Drops expired bindings (RFC 3261 §10.3: a binding lives until its
    /// expiration interval ends). Returns how many.
    pub fn expire(&self) -> usize {
        let now = Timestamp::now();
        let mut removed = 0;
        let mut map = self.lock();
        map.retain(|_, list| {
            list.retain(|b| {
                let live = b.record.expires_at > now;
                if !live {
                    removed += 1;
                    let _ = self
                        .publish
                        .send(RegistrationChange::Delete(b.record.id.clone()));
                }
                live
            });
            !list.is_empty()
        });
        removed
    }

    /// Processes an authenticated REGISTER from `client` (§10.3 steps 5–8).
    pub fn register(&self, msg: &Message, flow: &Flow, client: &Client) -> RegisterAnswer {
        // Step 5: a client registers its own address of record only.
        let Ok(to) = msg.to_header() else {
            return RegisterAnswer::fail(400, "Malformed To header");
        };
        let to_user = to.uri().user_unescaped();
        if to_user.as_deref() != Some(client.username.as_bytes()) {
            return RegisterAnswer::fail(403, "To does not match the authenticated user");
        }
        let aor = format!("sip:{}@{}", client.username, client.realm);
        let call_id = String::from_utf8_lossy(msg.call_id().unwrap_or_default()).into_owned();
        let cseq = msg.cseq().map(|c| c.seq).unwrap_or_default();
        let header_expires = msg.expires().ok().flatten();
        let user_agent = msg
            .header_value("User-Agent")
            .map(|v| String::from_utf8_lossy(v).into_owned());

        let contacts: Vec<Contact<'_>> = match msg.contacts().collect::<Result<_, _>>() {
            Ok(c) => c,
            Err(_) => return RegisterAnswer::fail(400, "Malformed Contact header"),
        };
        let now = Timestamp::now();
        let mut map = self.lock();
        let current = map.get(&client.id).cloned().unwrap_or_default();
        let mut next: Vec<Binding> = current
            .iter()
            .filter(|b| b.record.expires_at > now)
            .cloned()
            .collect();
        let mut changes = Vec::new();

        // Step 6: "*" removes every binding, and only with Expires: 0.
        if contacts.iter().any(|c| matches!(c, Contact::Star)) {
            if contacts.len() != 1 || header_expires != Some(0) {
                return RegisterAnswer::fail(
                    400,
                    "Contact * needs Expires: 0 and no other Contact",
                );
            }
            for b in next.drain(..) {
                if b.record.call_id == call_id && cseq <= b.record.cseq as u32 {
                    return RegisterAnswer::fail(500, "Out of order REGISTER");
                }
                changes.push(RegistrationChange::Delete(b.record.id));
            }
        }
        for contact in &contacts {
            let Contact::Addr(addr) = contact else {
                continue;
            };
            let expires = match addr.expires() {
                Some(Ok(e)) => e,
                Some(Err(_)) => return RegisterAnswer::fail(400, "Malformed Contact expires"),
                None => header_expires.unwrap_or(self.config.default_expires),
            };
            // §10.3 step 7 (via §10.2.8): too brief a registration is refused.
            if expires != 0 && expires < self.config.min_expires {
                return RegisterAnswer {
                    code: 423,
                    reason: "Interval Too Brief",
                    headers: vec![("Min-Expires", self.config.min_expires.to_string())],
                };
            }
            let expires = expires.min(self.config.max_expires);
            let uri = String::from_utf8_lossy(addr.uri().raw()).into_owned();
            let existing = next.iter().position(|b| b.record.contact == uri);
            if let Some(i) = existing {
                let b = &next[i];
                if b.record.call_id == call_id && cseq <= b.record.cseq as u32 {
                    return RegisterAnswer::fail(500, "Out of order REGISTER");
                }
            }
            if expires == 0 {
                if let Some(i) = existing {
                    changes.push(RegistrationChange::Delete(next.remove(i).record.id));
                }
                continue;
            }
            let record = Registration {
                id: existing.map_or_else(new_id, |i| next[i].record.id.clone()),
                client_id: client.id.clone(),
                aor: aor.clone(),
                contact: uri,
                source: flow.remote.to_string(),
                transport: flow.protocol.via_token().into(),
                call_id: call_id.clone(),
                cseq: i64::from(cseq),
                user_agent: user_agent.clone(),
                node: self.config.node.clone(),
                expires_at: Timestamp::from_millis(now.millis() + i64::from(expires) * 1000),
                created_at: existing.map_or(now, |i| next[i].record.created_at),
                updated_at: now,
            };
            changes.push(RegistrationChange::Upsert(Box::new(record.clone())));
            let binding = Binding {
                record,
                flow: *flow,
                q: addr.q().and_then(Result::ok),
            };
            match existing {
                Some(i) => next[i] = binding,
                None => next.push(binding),
            }
        }
        if next.len() > self.config.max_contacts {
            return RegisterAnswer::fail(403, "Too Many Contacts");
        }
        // Step 8: 200 with every current binding.
        let mut headers: Vec<(&'static str, String)> = next
            .iter()
            .map(|b| {
                let left = (b.record.expires_at.millis() - now.millis()).max(0) / 1000;
                ("Contact", format!("<{}>;expires={left}", b.record.contact))
            })
            .collect();
        headers.push(("Date", httpdate(now)));
        if next.is_empty() {
            map.remove(&client.id);
        } else {
            map.insert(client.id.clone(), next);
        }
        drop(map);
        for change in changes {
            let _ = self.publish.send(change);
        }
        RegisterAnswer {
            code: 200,
            reason: "OK",
            headers,
        }
    }
}

/// RFC 3261 §20.17 Date (RFC 1123 form, GMT).
fn httpdate(t: Timestamp) -> String {
    t.0.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, expires_in_ms: i64) -> Registration {
        let now = Timestamp::now();
        Registration {
            id: id.into(),
            client_id: "c1".into(),
            aor: "sip:alice@example.com".into(),
            contact: format!("sip:alice@192.0.2.1:{}", 5060 + id.len()),
            source: "192.0.2.1:5060".into(),
            transport: "UDP".into(),
            call_id: "call".into(),
            cseq: 1,
            user_agent: None,
            node: "n".into(),
            expires_at: Timestamp::from_millis(now.millis() + expires_in_ms),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn expired_bindings_are_dropped_and_unpublished() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r = Registrar::new(RegistrarConfig::default(), tx);
        r.restore(
            vec![record("live", 60_000), record("gone", -1)],
            "127.0.0.1:5060".parse().unwrap(),
        );
        assert_eq!(
            r.lookup("c1").len(),
            1,
            "lookup never returns an expired binding"
        );
        assert_eq!(r.expire(), 1);
        assert!(matches!(rx.try_recv(), Ok(RegistrationChange::Delete(id)) if id == "gone"));
        assert_eq!(r.expire(), 0);
        assert!(r.remove("live"));
        assert!(r.lookup("c1").is_empty());
    }
}
