//! The routing configuration held in memory: compiled rules, services,
//! app servers and client credentials. Rebuilt from the store whenever the
//! configuration changes and swapped in whole, so the SIP path reads a
//! consistent snapshot and never waits on the database.

use ahash::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use rand::Rng;

use super::rules::RuleSet;
use super::target::{self, Target};
use crate::store::app_servers::AppServer;
use crate::store::clients::Client;
use crate::store::services::{Service, Strategy};
use crate::store::tariffs::Tariff;
use crate::store::{Store, StoreResult};

/// A service and its round-robin position.
#[derive(Debug)]
pub struct ServiceEntry {
    pub service: Service,
    next: AtomicUsize,
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub rules: RuleSet,
    pub services: HashMap<String, ServiceEntry>,
    pub app_servers: HashMap<String, AppServer>,
    /// Resolved addresses of the app servers, by id.
    pub targets: HashMap<String, Target>,
    /// SIP addresses of enabled app servers: requests from them are not
    /// challenged. The port counts, so a client on the AS's host is still
    /// challenged. Look up with [`Catalog::trusted_source`].
    pub trusted: HashMap<SocketAddr, String>,
    /// Shared: every session of a client holds it, and a copy per session
    /// would cost hundreds of bytes (its digest hashes among them).
    pub clients_by_username: HashMap<String, Arc<Client>>,
    pub tariffs: HashMap<String, Tariff>,
}

/// Why an app server of a pool is not a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Disabled,
    Down,
    Missing,
    Unresolvable,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Down => "down (failed health probes)",
            Self::Missing => "no longer exists",
            Self::Unresolvable => "its URI does not resolve",
        }
    }
}

/// The app servers to try for one request, in order; for `parallel` all at
/// once.
#[derive(Debug, Default)]
pub struct Selection<'a> {
    pub candidates: Vec<&'a AppServer>,
    pub skipped: Vec<(&'a str, Skip)>,
}

impl Catalog {
    /// The ids of the app servers to inquire for `entry`, in order (see
    /// [`Catalog::select`]).
    pub fn candidate_ids(&self, entry: &ServiceEntry) -> Vec<String> {
        self.select(entry, true)
            .candidates
            .iter()
            .map(|a| a.id.clone())
            .collect()
    }

    pub async fn load(store: &Store) -> StoreResult<Self> {
        let rules = RuleSet::new(store.all_rules().await?);
        let services = store
            .all_services()
            .await?
            .into_iter()
            .map(|s| {
                let entry = ServiceEntry {
                    service: s,
                    next: AtomicUsize::new(0),
                };
                (entry.service.id.clone(), entry)
            })
            .collect();
        let app_servers: HashMap<String, AppServer> = store
            .all_app_servers()
            .await?
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        let mut targets = HashMap::default();
        for a in app_servers.values() {
            match target::resolve(&a.uri).await {
                Some(t) => {
                    targets.insert(a.id.clone(), t);
                }
                None => {
                    tracing::warn!(app_server = %a.name, uri = %a.uri, "cannot resolve the app server's URI")
                }
            }
        }
        // A disabled app server is a stranger: its INVITEs are challenged.
        let trusted = targets
            .iter()
            .filter(|(id, _)| app_servers.get(*id).is_some_and(|a| a.enabled))
            .map(|(id, t)| (canonical(t.addr), id.clone()))
            .collect();
        let clients_by_username = store
            .all_clients()
            .await?
            .into_iter()
            .map(|c| (c.username.clone(), Arc::new(c)))
            .collect();
        let tariffs = store
            .all_tariffs()
            .await?
            .into_iter()
            .map(|t| (t.id.clone(), t))
            .collect();
        Ok(Self {
            tariffs,
            rules,
            services,
            app_servers,
            targets,
            trusted,
            clients_by_username,
        })
    }

    /// The app server a request came from, judged by the socket address the
    /// bytes really came from (never by Via, which the sender writes).
    pub fn trusted_source(&self, source: SocketAddr) -> Option<&str> {
        self.trusted.get(&canonical(source)).map(String::as_str)
    }

    /// The tariff of a session: the client's override, else the service's.
    pub fn tariff_for(&self, client: Option<&Client>, service_id: Option<&str>) -> Option<&Tariff> {
        let id = client.and_then(|c| c.tariff_id.as_deref()).or_else(|| {
            service_id
                .and_then(|s| self.services.get(s))
                .and_then(|e| e.service.tariff_id.as_deref())
        })?;
        self.tariffs.get(id)
    }

    /// Orders the usable app servers of `service` by its strategy. With
    /// `advance` false a round-robin position is only looked at (dry runs).
    pub fn select<'a>(&'a self, entry: &'a ServiceEntry, advance: bool) -> Selection<'a> {
        let mut sel = Selection::default();
        let mut usable: Vec<(usize, &AppServer)> =
            Vec::with_capacity(entry.service.app_server_ids.len());
        for (position, id) in entry.service.app_server_ids.iter().enumerate() {
            match self.app_servers.get(id) {
                None => sel.skipped.push((id, Skip::Missing)),
                Some(a) if !a.enabled => sel.skipped.push((id, Skip::Disabled)),
                Some(a) if a.health == "down" => sel.skipped.push((id, Skip::Down)),
                Some(_) if !self.targets.contains_key(id) => {
                    sel.skipped.push((id, Skip::Unresolvable))
                }
                Some(a) => usable.push((position, a)),
            }
        }
        // Priority order (lower first), the operator's pool order breaking ties.
        usable.sort_by_key(|(position, a)| (a.priority, *position));
        let mut ordered: Vec<&AppServer> = usable.into_iter().map(|(_, a)| a).collect();
        match entry.service.strategy {
            Strategy::RoundRobin if !ordered.is_empty() => {
                let n = if advance {
                    entry.next.fetch_add(1, Ordering::Relaxed)
                } else {
                    entry.next.load(Ordering::Relaxed)
                };
                let len = ordered.len();
                ordered.rotate_left(n % len);
            }
            Strategy::Weighted => weighted_order(&mut ordered, &mut rand::thread_rng()),
            _ => {}
        }
        sel.candidates = ordered;
        sel
    }
}

/// IPv4 peers of a dual-stack socket appear as `::ffff:a.b.c.d`.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Weighted random order without replacement: each next app server is drawn
/// with probability proportional to its weight; weight 0 goes last.
fn weighted_order(list: &mut [&AppServer], rng: &mut impl Rng) {
    for i in 0..list.len() {
        let total: u64 = list[i..].iter().map(|a| a.weight.max(0) as u64).sum();
        if total == 0 {
            break;
        }
        let mut pick = rng.gen_range(0..total);
        for j in i..list.len() {
            let w = list[j].weight.max(0) as u64;
            if pick < w {
                list.swap(i, j);
                break;
            }
            pick -= w;
        }
    }
}

/// The live catalog, shared by the relay and the API.
#[derive(Debug, Clone, Default)]
pub struct CatalogHandle(Arc<CatalogCell>);

#[derive(Debug, Default)]
struct CatalogCell {
    /// Numbers reloads in the order they started.
    started: AtomicU64,
    /// The snapshot and the number of the reload that built it.
    current: RwLock<(u64, Arc<Catalog>)>,
}

impl CatalogHandle {
    /// The current snapshot; the lock is held only to clone an `Arc`.
    pub fn snapshot(&self) -> Arc<Catalog> {
        match self.0.current.read() {
            Ok(guard) => guard.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }

    /// Rebuilds the snapshot from the store and swaps it in, unless a reload
    /// that started later (and so read newer data) has already finished.
    pub async fn reload(&self, store: &Store) -> StoreResult<()> {
        let number = self.0.started.fetch_add(1, Ordering::SeqCst) + 1;
        let fresh = Arc::new(Catalog::load(store).await?);
        let mut guard = match self.0.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if number > guard.0 {
            *guard = (number, fresh);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::target::Target;
    use crate::sip::transport::Protocol;
    use crate::store::Timestamp;

    fn app_server(id: &str, priority: i32, weight: i32) -> AppServer {
        AppServer {
            id: id.into(),
            name: id.into(),
            uri: format!("sip:{id}.example.com"),
            priority,
            weight,
            enabled: true,
            health: "up".into(),
            health_changed_at: None,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    fn catalog(strategy: Strategy, servers: &[AppServer]) -> (Catalog, ServiceEntry) {
        let mut c = Catalog::default();
        for (i, a) in servers.iter().enumerate() {
            c.app_servers.insert(a.id.clone(), a.clone());
            let target = Target {
                addr: SocketAddr::from(([127, 0, 0, 1], 5080 + i as u16)),
                protocol: Protocol::Udp,
            };
            c.targets.insert(a.id.clone(), target);
        }
        let service = Service {
            id: "s".into(),
            name: "s".into(),
            strategy,
            app_server_ids: servers.iter().map(|a| a.id.clone()).collect(),
            tariff_id: None,
            ring_timeout_seconds: None,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        };
        let entry = ServiceEntry {
            service,
            next: AtomicUsize::new(0),
        };
        (c, entry)
    }

    fn order(c: &Catalog, e: &ServiceEntry) -> Vec<String> {
        c.select(e, true)
            .candidates
            .iter()
            .map(|a| a.id.clone())
            .collect()
    }

    #[test]
    fn failover_follows_priority_and_skips_unusable() {
        let mut down = app_server("d", 0, 1);
        down.health = "down".into();
        let mut off = app_server("o", 0, 1);
        off.enabled = false;
        let (c, e) = catalog(
            Strategy::Failover,
            &[app_server("b", 20, 1), down, app_server("a", 10, 1), off],
        );
        assert_eq!(order(&c, &e), ["a", "b"]);
        let skipped: Vec<_> = c
            .select(&e, false)
            .skipped
            .iter()
            .map(|(id, why)| (id.to_string(), *why))
            .collect();
        assert_eq!(
            skipped,
            [
                ("d".to_string(), Skip::Down),
                ("o".to_string(), Skip::Disabled)
            ]
        );
    }

    #[test]
    fn round_robin_rotates_per_request() {
        let (c, e) = catalog(
            Strategy::RoundRobin,
            &[
                app_server("a", 1, 1),
                app_server("b", 2, 1),
                app_server("c", 3, 1),
            ],
        );
        assert_eq!(order(&c, &e), ["a", "b", "c"]);
        assert_eq!(order(&c, &e), ["b", "c", "a"]);
        assert_eq!(order(&c, &e), ["c", "a", "b"]);
        assert_eq!(
            c.select(&e, false).candidates[0].id,
            "a",
            "a dry run does not advance"
        );
    }

    #[test]
    fn weighted_shares_follow_weights() {
        let (c, e) = catalog(
            Strategy::Weighted,
            &[
                app_server("heavy", 1, 3),
                app_server("light", 1, 1),
                app_server("never", 1, 0),
            ],
        );
        let mut heavy_first = 0;
        for _ in 0..4000 {
            let o = order(&c, &e);
            assert_eq!(o.len(), 3, "every app server stays a fallback");
            assert_eq!(o[2], "never", "weight 0 goes last");
            if o[0] == "heavy" {
                heavy_first += 1;
            }
        }
        // Expected 3000 of 4000 (sigma 27); ±6 sigma keeps this test from
        // failing by chance more than once in 10^9 runs.
        assert!(
            (2835..=3165).contains(&heavy_first),
            "heavy first {heavy_first} times"
        );
    }
}
