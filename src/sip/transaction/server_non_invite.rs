//! Non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8).
//!
//! ```text
//!  Trying --1xx from TU--> Proceeding --200-699 from TU--> Completed
//!    |                                                      | Timer J
//!    +---------------200-699 from TU--------------------->  v
//!                                                       Terminated
//! ```

use bytes::Bytes;
use smallvec::smallvec;

use super::action::{linger, none, Action, Actions, ServerEvent};
use super::timers::{Timer, TimerConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub struct ServerNonInvite {
    state: State,
    /// The last response sent, re-sent on request retransmissions.
    last: Option<Bytes>,
    timers: TimerConfig,
    reliable: bool,
}

impl ServerNonInvite {
    /// §17.2.2: "the state machine is initialized in the Trying state";
    /// nothing is sent until the TU answers.
    pub fn new(timers: TimerConfig, reliable: bool) -> Self {
        ServerNonInvite {
            state: State::Trying,
            last: None,
            timers,
            reliable,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn handle(&mut self, ev: ServerEvent) -> Actions {
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

    fn trying(&mut self, ev: ServerEvent) -> Actions {
        match ev {
            // §17.2.2: "any further request retransmissions are discarded"
            // while in Trying (there is nothing to re-send yet).
            ServerEvent::Respond { status, response } => self.respond(status, response),
            _ => none(),
        }
    }

    fn proceeding(&mut self, ev: ServerEvent) -> Actions {
        match ev {
            // §17.2.2: a retransmission re-sends the most recent provisional.
            ServerEvent::Request => self.resend(),
            ServerEvent::Respond { status, response } => self.respond(status, response),
            // §17.2.2: transport failure -> inform the TU, Terminated.
            ServerEvent::TransportError => smallvec![Action::TransportError, Action::Terminate],
            _ => none(),
        }
    }

    fn completed(&mut self, ev: ServerEvent) -> Actions {
        match ev {
            // §17.2.2: retransmissions re-send the final response; other
            // final responses from the TU are discarded.
            ServerEvent::Request => self.resend(),
            // §17.2.2: Timer J fires -> Terminated.
            ServerEvent::Timer(Timer::J) => smallvec![Action::Terminate],
            ServerEvent::TransportError => smallvec![Action::TransportError, Action::Terminate],
            _ => none(),
        }
    }

    /// §17.2.2: a 1xx from the TU moves to Proceeding, a 200-699 to
    /// Completed with Timer J (64*T1 on UDP, 0 on reliable transports).
    fn respond(&mut self, status: u16, response: Bytes) -> Actions {
        let mut out: Actions = smallvec![Action::Send(response.clone())];
        self.last = Some(response);
        if status < 200 {
            self.state = State::Proceeding;
        } else {
            self.state = State::Completed;
            linger(&mut out, Timer::J, self.timers.timer_j(self.reliable));
        }
        out
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
    use std::time::Duration;

    fn respond(status: u16) -> ServerEvent {
        ServerEvent::Respond {
            status,
            response: Bytes::from(format!("{status}")),
        }
    }

    #[test]
    fn udp_absorbs_and_resends_then_timer_j() {
        let mut m = ServerNonInvite::new(TimerConfig::default(), false);
        let mut sim = Sim::default();
        // Retransmission before any response: absorbed silently.
        sim.apply(m.handle(ServerEvent::Request));
        assert!(sim.sent.is_empty());
        sim.apply(m.handle(respond(180)));
        assert_eq!(m.state(), State::Proceeding);
        sim.apply(m.handle(ServerEvent::Request));
        assert_eq!(sim.sent.len(), 2);
        assert_eq!(sim.sent[1].1, Bytes::from("180"));
        sim.now = Duration::from_secs(1);
        sim.apply(m.handle(respond(200)));
        assert_eq!(m.state(), State::Completed);
        assert_eq!(sim.running(Timer::J), Some(Duration::from_secs(33)));
        sim.apply(m.handle(ServerEvent::Request));
        sim.apply(m.handle(ServerEvent::Request));
        assert_eq!(sim.sent.len(), 5);
        assert_eq!(sim.sent[4].1, Bytes::from("200"));
        // Later finals from the TU are discarded.
        sim.apply(m.handle(respond(500)));
        assert_eq!(sim.sent.len(), 5);
        assert_eq!(sim.next_timer(), Some(Timer::J));
        sim.apply(m.handle(ServerEvent::Timer(Timer::J)));
        assert_eq!(sim.terminated, Some(Duration::from_secs(33)));
        assert_eq!(m.state(), State::Terminated);
        assert!(m.handle(ServerEvent::Request).is_empty());
    }

    #[test]
    fn reliable_terminates_on_final() {
        let mut m = ServerNonInvite::new(TimerConfig::default(), true);
        let mut sim = Sim::default();
        sim.apply(m.handle(respond(404)));
        assert_eq!(sim.sent.len(), 1);
        assert_eq!(sim.terminated, Some(Duration::ZERO));
        assert_eq!(m.state(), State::Terminated);
    }

    #[test]
    fn transport_error_in_proceeding() {
        let mut m = ServerNonInvite::new(TimerConfig::default(), false);
        let mut sim = Sim::default();
        sim.apply(m.handle(respond(100)));
        sim.apply(m.handle(ServerEvent::TransportError));
        assert_eq!(sim.transport_errors, 1);
        assert!(sim.terminated.is_some());
    }
}
