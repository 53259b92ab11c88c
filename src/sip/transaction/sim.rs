//! Synthetic-time driver for the pure machines' unit tests.

use std::collections::BTreeMap;
use std::time::Duration;

use super::action::{Action, Actions};
use super::timers::Timer;

/// Records what a machine asked for, with the synthetic time it was asked.
#[derive(Default)]
pub struct Sim {
    pub now: Duration,
    timers: BTreeMap<Timer, Duration>,
    /// Times at which bytes were sent, with the bytes.
    pub sent: Vec<(Duration, bytes::Bytes)>,
    pub to_tu: usize,
    pub timeouts: usize,
    pub transport_errors: usize,
    pub terminated: Option<Duration>,
}

impl Sim {
    pub fn apply(&mut self, actions: Actions) {
        assert!(self.terminated.is_none(), "actions after Terminate");
        for a in actions {
            match a {
                Action::Send(b) => self.sent.push((self.now, b)),
                Action::Start(t, d) => {
                    self.timers.insert(t, self.now + d);
                }
                Action::Stop(t) => {
                    self.timers.remove(&t);
                }
                Action::PassToTu => self.to_tu += 1,
                Action::Timeout => self.timeouts += 1,
                Action::TransportError => self.transport_errors += 1,
                Action::Terminate => {
                    self.terminated = Some(self.now);
                    self.timers.clear();
                }
            }
        }
    }

    /// Advances to the earliest running timer and removes it.
    pub fn next_timer(&mut self) -> Option<Timer> {
        let (&t, &at) = self.timers.iter().min_by_key(|(t, at)| (**at, **t))?;
        self.timers.remove(&t);
        self.now = at;
        Some(t)
    }

    /// Advances to the earliest timer if it is due by `until`.
    pub fn next_timer_until(&mut self, until: Duration) -> Option<Timer> {
        let (_, &at) = self.timers.iter().min_by_key(|(t, at)| (**at, **t))?;
        if at > until {
            self.now = until;
            return None;
        }
        self.next_timer()
    }

    pub fn running(&self, t: Timer) -> Option<Duration> {
        self.timers.get(&t).copied()
    }

    pub fn send_times_ms(&self) -> Vec<u128> {
        self.sent.iter().map(|(t, _)| t.as_millis()).collect()
    }
}

/// Parses a test message (CRLF line ends from `\n`).
pub fn msg(text: &str) -> crate::sip::message::Message {
    crate::sip::message::Message::parse_text(text, &Default::default()).expect("test message")
}
