//! Non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6).
//!
//! ```text
//!  Trying --1xx--> Proceeding --200-699--> Completed --Timer K--> Terminated
//!    |  Timer E: re-send, min(2E, T2)  |  Timer E: re-send, T2
//!    +--200-699--> Completed            Timer F / transport error -> Terminated
//! ```

use bytes::Bytes;
use smallvec::smallvec;
use std::time::Duration;

use super::action::{linger, none, Action, Actions, ClientEvent};
use super::timers::{Timer, TimerConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub struct ClientNonInvite {
    state: State,
    request: Bytes,
    /// Current Timer E interval.
    e: Duration,
    timers: TimerConfig,
    reliable: bool,
}

impl ClientNonInvite {
    /// §17.1.2.2: send the request, start Timer E (unreliable only) at T1
    /// and Timer F at 64*T1.
    pub fn start(request: Bytes, timers: TimerConfig, reliable: bool) -> (Self, Actions) {
        let mut out: Actions = smallvec![Action::Send(request.clone())];
        if !reliable {
            out.push(Action::Start(Timer::E, timers.t1));
        }
        out.push(Action::Start(Timer::F, timers.t1x64()));
        let m = ClientNonInvite {
            state: State::Trying,
            request,
            e: timers.t1,
            timers,
            reliable,
        };
        (m, out)
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn handle(&mut self, ev: ClientEvent<'_>) -> Actions {
        let out = match self.state {
            State::Trying => self.trying(ev),
            State::Proceeding => self.proceeding(ev),
            State::Completed => self.completed(ev),
            State::Terminated => none(),
        };
        if out.contains(&Action::Terminate) {
            self.state = State::Terminated;
        }
        out
    }

    fn trying(&mut self, ev: ClientEvent<'_>) -> Actions {
        match ev {
            // §17.1.2.2: Timer E fires in Trying -> re-send, E = min(2E, T2).
            ClientEvent::Timer(Timer::E) => {
                self.e = self.timers.backoff_capped(self.e);
                smallvec![
                    Action::Send(self.request.clone()),
                    Action::Start(Timer::E, self.e)
                ]
            }
            _ => self.common(ev),
        }
    }

    fn proceeding(&mut self, ev: ClientEvent<'_>) -> Actions {
        match ev {
            // §17.1.2.2: Timer E fires in Proceeding -> re-send, E = T2.
            ClientEvent::Timer(Timer::E) => {
                self.e = self.timers.t2;
                smallvec![
                    Action::Send(self.request.clone()),
                    Action::Start(Timer::E, self.e)
                ]
            }
            _ => self.common(ev),
        }
    }

    /// Transitions shared by Trying and Proceeding.
    fn common(&mut self, ev: ClientEvent<'_>) -> Actions {
        match ev {
            ClientEvent::Response(r) => match r.status() {
                // §17.1.2.2: a provisional -> Proceeding, to the TU.
                Some(s) if s < 200 => {
                    self.state = State::Proceeding;
                    smallvec![Action::PassToTu]
                }
                // §17.1.2.2: a final -> Completed, to the TU, Timer K (T4
                // on UDP, 0 on reliable transports).
                Some(_) => {
                    self.state = State::Completed;
                    let mut out: Actions = smallvec![
                        Action::Stop(Timer::E),
                        Action::Stop(Timer::F),
                        Action::PassToTu
                    ];
                    linger(&mut out, Timer::K, self.timers.timer_k(self.reliable));
                    out
                }
                None => none(),
            },
            // §17.1.2.2: Timer F -> Terminated, TU told of the timeout.
            ClientEvent::Timer(Timer::F) => smallvec![Action::Timeout, Action::Terminate],
            // §17.1.2.2: transport error -> Terminated, TU told.
            ClientEvent::TransportError => smallvec![Action::TransportError, Action::Terminate],
            ClientEvent::Timer(_) => none(),
        }
    }

    fn completed(&mut self, ev: ClientEvent<'_>) -> Actions {
        match ev {
            // §17.1.2.2: Timer K fires -> Terminated; response
            // retransmissions are absorbed meanwhile.
            ClientEvent::Timer(Timer::K) => smallvec![Action::Terminate],
            _ => none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::{msg, Sim};
    use super::*;
    use crate::sip::message::Message;

    fn response(status: u16) -> Message {
        msg(&format!(
            "SIP/2.0 {status} X\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nFrom: <sip:a@a>;tag=1\n\
To: <sip:b@b>\nCall-ID: c\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
        ))
    }

    fn start(reliable: bool) -> (ClientNonInvite, Sim) {
        let (m, a) = ClientNonInvite::start(Bytes::from("REQ"), TimerConfig::default(), reliable);
        let mut sim = Sim::default();
        sim.apply(a);
        (m, sim)
    }

    #[test]
    fn timer_e_caps_at_t2_and_timer_f_times_out() {
        let (mut m, mut sim) = start(false);
        while let Some(t) = sim.next_timer() {
            sim.apply(m.handle(ClientEvent::Timer(t)));
        }
        // 0, then 0.5, 1.5, 3.5, 7.5, then every T2 = 4 s until F at 32 s.
        assert_eq!(
            sim.send_times_ms(),
            vec![0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(sim.timeouts, 1);
        assert_eq!(sim.terminated, Some(Duration::from_secs(32)));
        assert_eq!(m.state(), State::Terminated);
    }

    #[test]
    fn proceeding_retransmits_every_t2() {
        let (mut m, mut sim) = start(false);
        // First E at 0.5 s.
        let t = sim.next_timer().unwrap();
        sim.apply(m.handle(ClientEvent::Timer(t)));
        sim.now = Duration::from_millis(600);
        let r = response(100);
        sim.apply(m.handle(ClientEvent::Response(&r)));
        assert_eq!(m.state(), State::Proceeding);
        assert_eq!(sim.to_tu, 1);
        // Timer E still runs (next at 1.5 s), then every T2.
        while let Some(t) = sim.next_timer_until(Duration::from_millis(14_000)) {
            sim.apply(m.handle(ClientEvent::Timer(t)));
        }
        assert_eq!(sim.send_times_ms(), vec![0, 500, 1500, 5500, 9500, 13500]);
        let r = response(200);
        sim.apply(m.handle(ClientEvent::Response(&r)));
        assert_eq!(sim.to_tu, 2);
        assert_eq!(sim.running(Timer::E), None);
        assert_eq!(sim.running(Timer::K), Some(Duration::from_secs(19)));
        // Retransmitted final absorbed.
        sim.apply(m.handle(ClientEvent::Response(&r)));
        assert_eq!(sim.to_tu, 2);
        assert_eq!(sim.next_timer(), Some(Timer::K));
        sim.apply(m.handle(ClientEvent::Timer(Timer::K)));
        assert_eq!(sim.terminated, Some(Duration::from_secs(19)));
        assert_eq!(sim.timeouts, 0);
    }

    #[test]
    fn reliable_no_retransmission_and_no_timer_k() {
        let (mut m, mut sim) = start(true);
        assert_eq!(sim.running(Timer::E), None);
        assert_eq!(sim.running(Timer::F), Some(Duration::from_secs(32)));
        let r = response(404);
        sim.apply(m.handle(ClientEvent::Response(&r)));
        assert_eq!(sim.terminated, Some(Duration::ZERO));
        assert_eq!(sim.sent.len(), 1);
    }

    #[test]
    fn transport_error() {
        let (mut m, mut sim) = start(false);
        sim.apply(m.handle(ClientEvent::TransportError));
        assert_eq!(sim.transport_errors, 1);
        assert_eq!(m.state(), State::Terminated);
    }
}
