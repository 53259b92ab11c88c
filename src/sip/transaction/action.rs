//! What a state machine asks its driver (the layer's shard) to do.
//!
//! The machines never touch a socket, a clock or a channel: they get an
//! event and return a short list of actions. The driver owns the I/O, the
//! timer service and the TU channel, which is what lets the machines be
//! tested with synthetic time (see `sim` in the tests).

use bytes::Bytes;
use smallvec::SmallVec;
use std::time::Duration;

use super::timers::Timer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Hand these bytes to the transport on the transaction's flow.
    Send(Bytes),
    /// (Re)start a timer; a running timer of the same name is replaced.
    Start(Timer, Duration),
    /// Stop a timer (no-op if not running).
    Stop(Timer),
    /// Pass the message of the current event (a response, or an ACK in the
    /// INVITE server "Accepted" state) to the TU.
    PassToTu,
    /// Tell the TU the transaction timed out (Timer B, F or H).
    Timeout,
    /// Tell the TU the transport failed (§17.1.1.2, §17.1.2.2, §17.2.4).
    TransportError,
    /// The transaction is over: forget it.
    Terminate,
}

/// Most transitions produce at most three actions; no heap allocation.
pub type Actions = SmallVec<[Action; 4]>;

/// Shortcut used by the machines.
pub(crate) fn none() -> Actions {
    SmallVec::new()
}

/// Ends a transaction at once or after `wait` (the "zero on reliable
/// transports" timers D, I, J, K): a zero timer is not scheduled.
pub(crate) fn linger(out: &mut Actions, timer: Timer, wait: Duration) {
    if wait.is_zero() {
        out.push(Action::Terminate);
    } else {
        out.push(Action::Start(timer, wait));
    }
}

/// Events of a server transaction (§17.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A retransmission of the request that created the transaction.
    Request,
    /// An ACK matching the transaction (INVITE only).
    Ack,
    /// The TU sends a response with this status code.
    Respond {
        status: u16,
        response: Bytes,
    },
    Timer(Timer),
    /// The transport refused to send.
    TransportError,
}

/// Events of a client transaction (§17.1).
#[derive(Debug, Clone, Copy)]
pub enum ClientEvent<'a> {
    /// A response matching the transaction (§17.1.3).
    Response(&'a crate::sip::message::Message),
    Timer(Timer),
    TransportError,
}
