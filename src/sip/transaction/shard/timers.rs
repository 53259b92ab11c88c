//! The shard's timer service: deadlines in per-duration queues
//! ([`super::timer_queues`]) with lazy deletion.
//!
//! Stopping or restarting a timer only bumps its generation in the
//! transaction; the old entry is discarded when it surfaces. Most
//! transactions end long before their Timer B/F/H, so stale entries are
//! purged whenever the queues have grown to twice their size after the last
//! purge.

use std::time::Duration;

use tokio::time::Instant;

use super::{ClientEvent, Entry, ServerEvent, Shard, Side, COMPACT_MIN};
use crate::sip::transaction::timers::Timer;

impl Shard {
    fn gens_mut(&mut self, side: Side, id: u64) -> Option<&mut [u32; Timer::COUNT]> {
        match side {
            Side::Server => self.server.get_mut(&id).map(|t| &mut t.gens),
            Side::Client => self.client.get_mut(&id).map(|t| &mut t.gens),
        }
    }

    fn is_live(&self, e: &Entry) -> bool {
        let gens = match e.side {
            Side::Server => self.server.get(&e.id).map(|t| &t.gens),
            Side::Client => self.client.get(&e.id).map(|t| &t.gens),
        };
        gens.is_some_and(|g| g[e.timer.index()] == e.gen)
    }

    pub(super) fn start_timer(&mut self, side: Side, id: u64, timer: Timer, after: Duration) {
        let Some(gens) = self.gens_mut(side, id) else {
            return;
        };
        let g = &mut gens[timer.index()];
        *g = g.wrapping_add(1);
        let gen = *g;
        self.timer_seq += 1;
        self.timers.push(
            after,
            Entry {
                at: Instant::now() + after,
                seq: self.timer_seq,
                side,
                id,
                timer,
                gen,
            },
        );
        if self.timers.len() >= self.compact_at {
            self.compact();
        }
    }

    pub(super) fn stop_timer(&mut self, side: Side, id: u64, timer: Timer) {
        if let Some(gens) = self.gens_mut(side, id) {
            let g = &mut gens[timer.index()];
            *g = g.wrapping_add(1);
        }
    }

    /// Fires every live timer due at `now`, in deadline order.
    pub(super) fn fire_due(&mut self, now: Instant) {
        while let Some(e) = self.timers.pop_due(now) {
            if !self.is_live(&e) {
                continue;
            }
            match e.side {
                Side::Server => {
                    if let Some(t) = self.server.get_mut(&e.id) {
                        let flow = t.flow;
                        let actions = t.machine.handle(ServerEvent::Timer(e.timer));
                        self.apply_server(e.id, flow, actions, None);
                    }
                }
                Side::Client => {
                    if let Some(t) = self.client.get_mut(&e.id) {
                        let flow = t.flow;
                        let actions = t.machine.handle(ClientEvent::Timer(e.timer));
                        self.apply_client(e.id, flow, actions, None);
                    }
                }
            }
        }
    }

    /// Drops stale entries.
    fn compact(&mut self) {
        let mut timers = std::mem::take(&mut self.timers);
        timers.retain(|e| self.is_live(e));
        self.timers = timers;
        self.compact_at = (self.timers.len() * 2).max(COMPACT_MIN);
    }
}
