//! INVITE client transaction (RFC 3261 §17.1.1, Figure 5, as corrected by
//! RFC 6026 §7.2 and §8.4: a 2xx moves to "Accepted", where further 2xx
//! responses still reach the TU, until Timer M).
//!
//! ```text
//!  Calling --1xx--> Proceeding --300-699 (send ACK)--> Completed --Timer D--> Terminated
//!    | Timer A: re-send, 2A     \--2xx--> Accepted --Timer M--> Terminated
//!    | Timer B / transport error -> Terminated
//! ```

use bytes::Bytes;
use smallvec::smallvec;
use std::time::Duration;

use super::action::{linger, none, Action, Actions, ClientEvent};
use super::messages::ack_for;
use super::timers::{Timer, TimerConfig};
use crate::sip::message::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub struct ClientInvite {
    state: State,
    /// The INVITE while Timer A may re-send it and a non-2xx final may
    /// need an ACK built from it (kept parsed); let go on the final
    /// response, since the Accepted state lingers 64*T1 (RFC 6026 §8.4)
    /// and needs neither.
    request: Option<Message>,
    /// The ACK sent for the non-2xx final, re-sent on its retransmissions.
    ack: Option<Bytes>,
    /// Current Timer A interval.
    a: Duration,
    timers: TimerConfig,
    reliable: bool,
}

impl ClientInvite {
    /// §17.1.1.2: send the INVITE, start Timer A (unreliable only) at T1 and
    /// Timer B at 64*T1.
    pub fn start(request: Message, timers: TimerConfig, reliable: bool) -> (Self, Actions) {
        let mut out: Actions = smallvec![Action::Send(request.bytes().clone())];
        if !reliable {
            out.push(Action::Start(Timer::A, timers.t1));
        }
        out.push(Action::Start(Timer::B, timers.t1x64()));
        let m = ClientInvite {
            state: State::Calling,
            request: Some(request),
            ack: None,
            a: timers.t1,
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
            State::Calling => self.calling(ev),
            State::Proceeding => self.proceeding(ev),
            State::Completed => self.completed(ev),
            State::Accepted => self.accepted(ev),
            State::Terminated => none(),
        };
        if out.contains(&Action::Terminate) {
            self.state = State::Terminated;
        }
        out
    }

    fn calling(&mut self, ev: ClientEvent<'_>) -> Actions {
        match ev {
            // §17.1.1.2: Timer A fires -> re-send, A doubles (no cap: Timer
            // B ends the schedule).
            ClientEvent::Timer(Timer::A) => {
                self.a *= 2;
                let mut out = none();
                if let Some(r) = &self.request {
                    out.push(Action::Send(r.bytes().clone()));
                }
                out.push(Action::Start(Timer::A, self.a));
                out
            }
            // §17.1.1.2: Timer B fires in Calling -> Terminated, TU told.
            ClientEvent::Timer(Timer::B) => smallvec![Action::Timeout, Action::Terminate],
            ClientEvent::Response(r) => self.response(r),
            // §17.1.1.2: transport error -> Terminated, TU told.
            ClientEvent::TransportError => smallvec![Action::TransportError, Action::Terminate],
            ClientEvent::Timer(_) => none(),
        }
    }

    fn proceeding(&mut self, ev: ClientEvent<'_>) -> Actions {
        match ev {
            ClientEvent::Response(r) => self.response(r),
            ClientEvent::TransportError => smallvec![Action::TransportError, Action::Terminate],
            // No retransmission and no Timer B in Proceeding (§17.1.1.2);
            // ending a call that rings forever is the TU's business (CANCEL).
            ClientEvent::Timer(_) => none(),
        }
    }

    /// A response in Calling or Proceeding.
    fn response(&mut self, r: &Message) -> Actions {
        let Some(status) = r.status() else {
            return none();
        };
        let stop = [Action::Stop(Timer::A), Action::Stop(Timer::B)];
        if status < 200 {
            // §17.1.1.2: provisional -> Proceeding (retransmissions stop),
            // passed to the TU.
            let mut out = none();
            if self.state == State::Calling {
                out.extend(stop);
                self.state = State::Proceeding;
            }
            out.push(Action::PassToTu);
            out
        } else if status < 300 {
            // RFC 6026 §8.4: 2xx -> Accepted, Timer M, to the TU (which
            // sends the ACK itself, §13.2.2.4).
            self.state = State::Accepted;
            self.request = None;
            let mut out: Actions = stop.into_iter().collect();
            out.push(Action::PassToTu);
            out.push(Action::Start(Timer::M, self.timers.t1x64()));
            out
        } else {
            // §17.1.1.2: 300-699 -> ACK (§17.1.1.3), to the TU, Completed,
            // Timer D (>= 32 s on UDP, 0 on reliable transports).
            self.state = State::Completed;
            self.ack = self.request.take().and_then(|req| ack_for(&req, r));
            let mut out: Actions = stop.into_iter().collect();
            if let Some(ack) = &self.ack {
                out.push(Action::Send(ack.clone()));
            }
            out.push(Action::PassToTu);
            linger(&mut out, Timer::D, self.timers.timer_d(self.reliable));
            out
        }
    }

    fn completed(&mut self, ev: ClientEvent<'_>) -> Actions {
        match ev {
            // §17.1.1.2: a retransmitted final re-sends the ACK and is not
            // passed to the TU.
            ClientEvent::Response(r) if r.status().is_some_and(|s| s >= 300) => match &self.ack {
                Some(ack) => smallvec![Action::Send(ack.clone())],
                None => none(),
            },
            // §17.1.1.2: Timer D fires -> Terminated.
            ClientEvent::Timer(Timer::D) => smallvec![Action::Terminate],
            // §17.1.1.2: a transport failure sending the ACK -> Terminated.
            ClientEvent::TransportError => smallvec![Action::TransportError, Action::Terminate],
            _ => none(),
        }
    }

    fn accepted(&mut self, ev: ClientEvent<'_>) -> Actions {
        match ev {
            // RFC 6026 §8.4: every 2xx (retransmission or another fork's
            // answer) goes to the TU; anything else is discarded.
            ClientEvent::Response(r) if r.status().is_some_and(|s| (200..300).contains(&s)) => {
                smallvec![Action::PassToTu]
            }
            // RFC 6026 §8.4: Timer M fires -> Terminated.
            ClientEvent::Timer(Timer::M) => smallvec![Action::Terminate],
            _ => none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::{msg, Sim};
    use super::*;
    use crate::sip::message::Method;

    const INVITE: &str = "INVITE sip:bob@b SIP/2.0\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\n\
From: <sip:a@a>;tag=1\nTo: <sip:bob@b>\nCall-ID: c\nCSeq: 1 INVITE\nMax-Forwards: 70\n\
Content-Length: 0\n\n";

    fn response(status: u16) -> Message {
        msg(&format!(
            "SIP/2.0 {status} X\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nFrom: <sip:a@a>;tag=1\n\
To: <sip:bob@b>;tag=2\nCall-ID: c\nCSeq: 1 INVITE\nContent-Length: 0\n\n"
        ))
    }

    fn start(reliable: bool) -> (ClientInvite, Sim) {
        let (m, a) = ClientInvite::start(msg(INVITE), TimerConfig::default(), reliable);
        let mut sim = Sim::default();
        sim.apply(a);
        (m, sim)
    }

    #[test]
    fn timer_a_doubles_until_timer_b() {
        let (mut m, mut sim) = start(false);
        while let Some(t) = sim.next_timer() {
            sim.apply(m.handle(ClientEvent::Timer(t)));
        }
        // 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5; Timer B at 32 s.
        assert_eq!(
            sim.send_times_ms(),
            vec![0, 500, 1500, 3500, 7500, 15500, 31500]
        );
        assert_eq!(sim.timeouts, 1);
        assert_eq!(sim.terminated, Some(Duration::from_secs(32)));
    }

    #[test]
    fn provisional_stops_retransmissions() {
        let (mut m, mut sim) = start(false);
        sim.now = Duration::from_millis(100);
        let r = response(180);
        sim.apply(m.handle(ClientEvent::Response(&r)));
        assert_eq!(m.state(), State::Proceeding);
        assert_eq!(sim.running(Timer::A), None);
        assert_eq!(sim.running(Timer::B), None);
        assert_eq!(sim.to_tu, 1);
        assert_eq!(sim.next_timer(), None);
    }

    #[test]
    fn non_2xx_is_acked_and_absorbed_until_timer_d() {
        let (mut m, mut sim) = start(false);
        let r = response(486);
        sim.now = Duration::from_secs(1);
        sim.apply(m.handle(ClientEvent::Response(&r)));
        assert_eq!(m.state(), State::Completed);
        assert!(m.request.is_none(), "the ACK is built: the INVITE goes");
        assert_eq!(sim.to_tu, 1);
        assert_eq!(sim.sent.len(), 2);
        let ack = Message::parse(&sim.sent[1].1).unwrap();
        assert_eq!(ack.method(), Some(Method::Ack));
        assert_eq!(ack.to_header().unwrap().tag(), Some(&b"2"[..]));
        // Retransmitted 486: ACK re-sent, TU not told again.
        sim.apply(m.handle(ClientEvent::Response(&r)));
        assert_eq!(sim.sent.len(), 3);
        assert_eq!(sim.sent[2].1, sim.sent[1].1);
        assert_eq!(sim.to_tu, 1);
        assert_eq!(sim.next_timer(), Some(Timer::D));
        sim.apply(m.handle(ClientEvent::Timer(Timer::D)));
        assert_eq!(sim.terminated, Some(Duration::from_secs(33)));
    }

    #[test]
    fn accepted_passes_2xx_until_timer_m() {
        let (mut m, mut sim) = start(false);
        let ok = response(200);
        sim.apply(m.handle(ClientEvent::Response(&ok)));
        assert_eq!(m.state(), State::Accepted);
        assert!(m.request.is_none(), "nothing in Accepted needs the INVITE");
        sim.apply(m.handle(ClientEvent::Response(&ok)));
        assert_eq!(sim.to_tu, 2);
        let late = response(500);
        sim.apply(m.handle(ClientEvent::Response(&late)));
        assert_eq!(sim.to_tu, 2);
        assert_eq!(sim.sent.len(), 1, "no ACK from the transaction for a 2xx");
        assert_eq!(sim.next_timer(), Some(Timer::M));
        sim.apply(m.handle(ClientEvent::Timer(Timer::M)));
        assert_eq!(sim.terminated, Some(Duration::from_secs(32)));
    }

    #[test]
    fn reliable_no_timer_a_and_timer_d_zero() {
        let (mut m, mut sim) = start(true);
        assert_eq!(sim.running(Timer::A), None);
        assert_eq!(sim.running(Timer::B), Some(Duration::from_secs(32)));
        let r = response(603);
        sim.apply(m.handle(ClientEvent::Response(&r)));
        assert_eq!(sim.terminated, Some(Duration::ZERO));
        assert_eq!(sim.sent.len(), 2);
    }

    #[test]
    fn reliable_timer_b() {
        let (mut m, mut sim) = start(true);
        assert_eq!(sim.next_timer(), Some(Timer::B));
        sim.apply(m.handle(ClientEvent::Timer(Timer::B)));
        assert_eq!(sim.timeouts, 1);
        assert_eq!(sim.sent.len(), 1);
    }
}
