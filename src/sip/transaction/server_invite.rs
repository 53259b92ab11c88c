//! INVITE server transaction (RFC 3261 §17.2.1, Figure 7, as corrected by
//! RFC 6026 §7.1 and §8.5-§8.7: a 2xx moves to "Accepted", not Terminated).
//!
//! ```text
//!  Proceeding --300-699 from TU--> Completed --ACK--> Confirmed --Timer I--> Terminated
//!      |                             | Timer H (no ACK) -> Terminated
//!      +------2xx from TU--------> Accepted --Timer L--> Terminated
//! ```

use bytes::Bytes;
use smallvec::smallvec;
use std::time::Duration;

use super::action::{linger, none, Action, Actions, ServerEvent};
use super::timers::{Timer, TimerConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub struct ServerInvite {
    state: State,
    /// The last provisional (Proceeding) or the final (Completed) response.
    last: Option<Bytes>,
    /// Current Timer G interval.
    g: Duration,
    timers: TimerConfig,
    reliable: bool,
}

impl ServerInvite {
    /// §17.2.1: created in Proceeding; the layer passes the 100 Trying it
    /// built so that it is sent at once (it stops the client's Timer A
    /// retransmissions, §17.1.1.2) and re-sent on INVITE retransmissions.
    pub fn new(trying: Option<Bytes>, timers: TimerConfig, reliable: bool) -> (Self, Actions) {
        let out = match &trying {
            Some(b) => smallvec![Action::Send(b.clone())],
            None => none(),
        };
        let m = ServerInvite {
            state: State::Proceeding,
            last: trying,
            g: timers.t1,
            timers,
            reliable,
        };
        (m, out)
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn handle(&mut self, ev: ServerEvent) -> Actions {
        let out = match self.state {
            State::Proceeding => self.proceeding(ev),
            State::Completed => self.completed(ev),
            State::Confirmed => self.confirmed(ev),
            State::Accepted => self.accepted(ev),
            State::Terminated => none(),
        };
        if out.contains(&Action::Terminate) {
            self.state = State::Terminated;
        }
        out
    }

    fn proceeding(&mut self, ev: ServerEvent) -> Actions {
        match ev {
            // §17.2.1: a retransmitted INVITE re-sends the most recent
            // provisional response.
            ServerEvent::Request => self.resend(),
            ServerEvent::Respond { status, response } if status < 200 => {
                self.last = Some(response.clone());
                smallvec![Action::Send(response)]
            }
            // RFC 6026 §8.5 (replacing §17.2.1): a 2xx goes to the
            // transport, the transaction enters Accepted and starts Timer L
            // to absorb INVITE retransmissions; the TU retransmits the 2xx
            // itself (§13.3.1.4).
            ServerEvent::Respond { status, response } if status < 300 => {
                self.state = State::Accepted;
                self.last = None;
                smallvec![
                    Action::Send(response),
                    Action::Start(Timer::L, self.timers.t1x64())
                ]
            }
            // §17.2.1: 300-699 -> Completed; Timer G (unreliable only) and
            // Timer H.
            ServerEvent::Respond { response, .. } => {
                self.state = State::Completed;
                self.last = Some(response.clone());
                let mut out: Actions = smallvec![Action::Send(response)];
                if !self.reliable {
                    out.push(Action::Start(Timer::G, self.g));
                }
                out.push(Action::Start(Timer::H, self.timers.t1x64()));
                out
            }
            // §17.2.4: transport failure -> inform the TU, Terminated.
            ServerEvent::TransportError => smallvec![Action::TransportError, Action::Terminate],
            // An ACK before any final response acknowledges nothing.
            ServerEvent::Ack | ServerEvent::Timer(_) => none(),
        }
    }

    fn completed(&mut self, ev: ServerEvent) -> Actions {
        match ev {
            // §17.2.1: retransmitted INVITE -> re-send the final response.
            ServerEvent::Request => self.resend(),
            // §17.2.1: Timer G fires -> re-send, interval min(2*G, T2).
            ServerEvent::Timer(Timer::G) => {
                self.g = self.timers.backoff_capped(self.g);
                let mut out = self.resend();
                out.push(Action::Start(Timer::G, self.g));
                out
            }
            // §17.2.1: Timer H fires -> Terminated, inform the TU.
            ServerEvent::Timer(Timer::H) => smallvec![Action::Timeout, Action::Terminate],
            // §17.2.1: ACK -> Confirmed, Timer I (T4 on UDP, 0 reliable). The
            // ACK is hop-by-hop: it never reaches the TU.
            ServerEvent::Ack => {
                self.state = State::Confirmed;
                let mut out: Actions = smallvec![Action::Stop(Timer::G), Action::Stop(Timer::H)];
                linger(&mut out, Timer::I, self.timers.timer_i(self.reliable));
                out
            }
            ServerEvent::TransportError => smallvec![Action::TransportError, Action::Terminate],
            // Other finals from the TU are discarded.
            ServerEvent::Respond { .. } | ServerEvent::Timer(_) => none(),
        }
    }

    fn confirmed(&mut self, ev: ServerEvent) -> Actions {
        match ev {
            // §17.2.1: Timer I fires -> Terminated; ACK retransmissions are
            // absorbed meanwhile.
            ServerEvent::Timer(Timer::I) => smallvec![Action::Terminate],
            _ => none(),
        }
    }

    fn accepted(&mut self, ev: ServerEvent) -> Actions {
        match ev {
            // RFC 6026 §8.7: INVITE retransmissions are absorbed (the TU's
            // own 2xx retransmissions cover their loss).
            ServerEvent::Request => none(),
            // RFC 6026 §8.7: an ACK matching the transaction goes to the TU
            // (it acknowledges the 2xx end to end).
            ServerEvent::Ack => smallvec![Action::PassToTu],
            // RFC 6026 §8.7: further 2xx (retransmissions, or other forks'
            // answers from a B2BUA) are passed to the transport.
            ServerEvent::Respond { status, response } if (200..300).contains(&status) => {
                smallvec![Action::Send(response)]
            }
            // RFC 6026 §8.7: Timer L fires -> Terminated.
            ServerEvent::Timer(Timer::L) => smallvec![Action::Terminate],
            // The TU learns of the failure; the transaction stays until
            // Timer L to keep absorbing INVITE retransmissions.
            ServerEvent::TransportError => smallvec![Action::TransportError],
            ServerEvent::Respond { .. } | ServerEvent::Timer(_) => none(),
        }
    }

    fn resend(&self) -> Actions {
        match &self.last {
            Some(b) => smallvec![Action::Send(b.clone())],
            None => none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::Sim;
    use super::*;

    fn respond(status: u16) -> ServerEvent {
        ServerEvent::Respond {
            status,
            response: Bytes::from(format!("{status}")),
        }
    }

    fn start(reliable: bool) -> (ServerInvite, Sim) {
        let (m, a) = ServerInvite::new(Some(Bytes::from("100")), TimerConfig::default(), reliable);
        let mut sim = Sim::default();
        sim.apply(a);
        (m, sim)
    }

    #[test]
    fn trying_at_once_and_resent_on_retransmission() {
        let (mut m, mut sim) = start(false);
        assert_eq!(sim.send_times_ms(), vec![0]);
        sim.apply(m.handle(ServerEvent::Request));
        assert_eq!(sim.sent.len(), 2);
        assert_eq!(sim.sent[1].1, Bytes::from("100"));
        sim.apply(m.handle(respond(180)));
        sim.apply(m.handle(ServerEvent::Request));
        assert_eq!(sim.sent[3].1, Bytes::from("180"));
    }

    #[test]
    fn non_2xx_timer_g_schedule_until_timer_h() {
        let (mut m, mut sim) = start(false);
        sim.apply(m.handle(respond(486)));
        assert_eq!(m.state(), State::Completed);
        while let Some(t) = sim.next_timer() {
            sim.apply(m.handle(ServerEvent::Timer(t)));
        }
        // 100 + 486 at 0, then G: 0.5, 1.5, 3.5, 7.5, then every 4 s (T2)
        // until H at 32 s.
        let mut want = vec![0, 0, 500, 1500, 3500, 7500];
        let mut t = 7500;
        while t + 4000 < 32_000 {
            t += 4000;
            want.push(t);
        }
        assert_eq!(sim.send_times_ms(), want);
        assert_eq!(sim.timeouts, 1);
        assert_eq!(sim.terminated, Some(Duration::from_secs(32)));
        assert_eq!(m.state(), State::Terminated);
    }

    #[test]
    fn ack_confirms_and_timer_i_terminates() {
        let (mut m, mut sim) = start(false);
        sim.apply(m.handle(respond(404)));
        sim.now = Duration::from_millis(700);
        sim.apply(m.handle(ServerEvent::Ack));
        assert_eq!(m.state(), State::Confirmed);
        assert_eq!(sim.to_tu, 0, "ACK for a non-2xx is hop by hop");
        assert_eq!(sim.running(Timer::G), None);
        assert_eq!(sim.running(Timer::H), None);
        // ACK and INVITE retransmissions absorbed.
        sim.apply(m.handle(ServerEvent::Ack));
        sim.apply(m.handle(ServerEvent::Request));
        assert_eq!(sim.next_timer(), Some(Timer::I));
        sim.apply(m.handle(ServerEvent::Timer(Timer::I)));
        assert_eq!(sim.terminated, Some(Duration::from_millis(5700)));
        assert_eq!(sim.sent.len(), 2);
    }

    #[test]
    fn reliable_no_timer_g_and_ack_terminates() {
        let (mut m, mut sim) = start(true);
        sim.apply(m.handle(respond(486)));
        assert_eq!(sim.running(Timer::G), None);
        assert_eq!(sim.running(Timer::H), Some(Duration::from_secs(32)));
        sim.apply(m.handle(ServerEvent::Ack));
        assert_eq!(sim.terminated, Some(Duration::ZERO));
    }

    #[test]
    fn reliable_timer_h_without_ack() {
        let (mut m, mut sim) = start(true);
        sim.apply(m.handle(respond(603)));
        assert_eq!(sim.next_timer(), Some(Timer::H));
        sim.apply(m.handle(ServerEvent::Timer(Timer::H)));
        assert_eq!(sim.timeouts, 1);
        assert_eq!(sim.terminated, Some(Duration::from_secs(32)));
        assert_eq!(sim.sent.len(), 2);
    }

    #[test]
    fn accepted_state_rfc6026() {
        let (mut m, mut sim) = start(false);
        sim.apply(m.handle(respond(200)));
        assert_eq!(m.state(), State::Accepted);
        assert_eq!(sim.running(Timer::L), Some(Duration::from_secs(32)));
        // INVITE retransmission absorbed, no re-send.
        sim.apply(m.handle(ServerEvent::Request));
        assert_eq!(sim.sent.len(), 2);
        // 2xx retransmission from the TU goes out.
        sim.apply(m.handle(respond(200)));
        assert_eq!(sim.sent.len(), 3);
        // ACK goes to the TU.
        sim.apply(m.handle(ServerEvent::Ack));
        assert_eq!(sim.to_tu, 1);
        assert_eq!(sim.next_timer(), Some(Timer::L));
        sim.apply(m.handle(ServerEvent::Timer(Timer::L)));
        assert_eq!(sim.terminated, Some(Duration::from_secs(32)));
    }

    #[test]
    fn transport_error_terminates_in_proceeding() {
        let (mut m, mut sim) = start(false);
        sim.apply(m.handle(ServerEvent::TransportError));
        assert_eq!(sim.transport_errors, 1);
        assert_eq!(m.state(), State::Terminated);
    }
}
