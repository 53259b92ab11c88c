//! The shard's timer service: deadlines in per-duration queues
//! ([`super::timer_queues`]) with lazy deletion.
//!
//! Stopping or restarting a timer only bumps its generation in the
//! transaction; the old entry is discarded when it surfaces. Most
//! transactions end long before their Timer B/F/H, so stale entries are
//! purged whenever the queues have grown to twice their size after the last
//! purge, and the timer task drops those at the head before it sleeps
//! ([`Shard::next_live_deadline`]).

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

    /// The earliest deadline of a live timer. Stale entries met on the way
    /// are dropped: a transaction answered within its Timer A, E or G, or
    /// ended before its B, F or H, leaves one behind, and sleeping until it
    /// would wake the timer task for nothing (half its wake-ups at low load).
    pub(super) fn next_live_deadline(&mut self) -> Option<Instant> {
        loop {
            let e = *self.timers.head_entry()?;
            if self.is_live(&e) {
                return Some(e.at);
            }
            self.timers.pop_first();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Message;
    use crate::sip::transaction::key::ClientKey;
    use crate::sip::transaction::shard::lone_shard;
    use crate::sip::transaction::ClientTxId;
    use crate::sip::transport::Flow;

    #[tokio::test(start_paused = true)]
    async fn a_stopped_timer_does_not_set_the_next_deadline() {
        let mut shard = lone_shard();
        let mut invite = Message::parse(
            b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKs1\r\n\
              From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: s1\r\n\
              CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("parses");
        invite.validate().expect("valid");
        let key = ClientKey::of(&invite).expect("matchable");
        let flow = Flow::udp(
            "127.0.0.1:5060".parse().expect("addr"),
            "127.0.0.1:5070".parse().expect("addr"),
        );
        let t0 = Instant::now();
        shard.start_client(ClientTxId(0), invite, flow, key);
        // Timer A (T1) and Timer B (64·T1) over UDP.
        assert_eq!(
            shard.next_live_deadline(),
            Some(t0 + Duration::from_millis(500))
        );
        shard.stop_timer(Side::Client, 0, Timer::A);
        assert_eq!(
            shard.next_live_deadline(),
            Some(t0 + Duration::from_secs(32))
        );
        assert_eq!(shard.timers.len(), 1, "the stale Timer A entry is gone");
    }
}
