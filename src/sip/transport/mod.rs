//! SIP transports: UDP and TCP on one port (RFC 3261 §18).
//!
//! A [`Flow`] names the path a message arrived on; answering on the same
//! flow is what makes responses reach clients behind NAT (RFC 3581) and what
//! lets requests to a registered client reuse its connection (RFC 5626 §3).

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

use super::message::Message;

/// The transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Udp,
    Tcp,
}

impl Protocol {
    /// The Via transport token (RFC 3261 §20.42).
    pub fn via_token(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
        }
    }

    /// Reliable transports do not retransmit (RFC 3261 §17.1.1.2, §17.1.2.2).
    pub fn is_reliable(self) -> bool {
        matches!(self, Self::Tcp)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_token())
    }
}

/// One path between us and a peer: a UDP 5-tuple, or one TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub protocol: Protocol,
    /// The peer's address: the source of what we received, the destination
    /// of what we send.
    pub remote: SocketAddr,
    /// Our address on this flow.
    pub local: SocketAddr,
    /// The TCP connection's number (0 for UDP, and for "any connection to
    /// `remote`, or a new one").
    pub connection: u64,
}

impl Flow {
    pub fn udp(local: SocketAddr, remote: SocketAddr) -> Self {
        Self {
            protocol: Protocol::Udp,
            remote,
            local,
            connection: 0,
        }
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.protocol, self.remote)?;
        if self.connection != 0 {
            write!(f, " #{}", self.connection)?;
        }
        Ok(())
    }
}

/// A message received, with the flow it came on.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub message: Message,
    /// Where responses go: for a UDP request without `rport` its remote
    /// port is the Via sent-by port (RFC 3261 §18.2.2), which the sender
    /// chooses freely.
    pub flow: Flow,
    /// The socket peer address the bytes really came from. Decisions about
    /// who sent a message (trust, rate limits) use this, never `flow`.
    pub source: SocketAddr,
}

/// Why a message could not be handed to the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The TCP connection is gone and no new one may be opened for it.
    #[error("connection closed")]
    Closed,
    /// Send queues are full: the peer does not read fast enough.
    #[error("send queue full")]
    Congested,
    #[error("cannot send to {0}")]
    Unreachable(SocketAddr),
    /// Larger than one UDP datagram can carry (RFC 768: 65,507 bytes of
    /// payload over IPv4, 65,527 over IPv6).
    #[error("{0} bytes do not fit one UDP datagram")]
    TooLarge(usize),
}

/// The sending half of the transports, as the transaction layer and the
/// core see it. Sending never waits: UDP datagrams are queued and leave
/// together when the sending task next runs (a datagram the kernel refuses
/// then is lost like any UDP loss, and covered by retransmission), TCP
/// bytes are queued on the connection's writer.
pub trait Outbound: Send + Sync + 'static {
    /// Sends `bytes` on `flow`: on TCP, over that connection when it is
    /// alive, else over any connection to `flow.remote`, else a new one.
    /// Called under a transaction shard's lock: it must not wait, nor call
    /// back into the transaction layer.
    fn send(&self, flow: &Flow, bytes: Bytes) -> Result<(), SendError>;
}

mod connections;
mod tcp;
mod udp;
#[cfg(target_os = "linux")]
mod udp_batch;
mod udp_out;
mod udp_refused;
#[cfg(target_os = "linux")]
mod udp_send_batch;
#[cfg(any(not(target_os = "linux"), test))]
mod udp_single;

pub use connections::Transports;
pub use tcp::TcpConfig;

/// Locks `mutex`. A poisoned lock means a panic while it was held; what
/// the transports guard with one (a queue, a map) is still whole.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a received frame was delimited: a whole datagram, or a message cut
/// from a stream by its Content-Length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Datagram,
    Stream,
}

/// Where the transports deliver what they receive. Called on the receiving
/// task: implementations must not block.
pub trait Inbound: Send + Sync + 'static {
    /// One datagram, or one message framed from a stream.
    fn on_frame(&self, bytes: Bytes, flow: Flow, framing: Framing);
    /// A stream that cannot be framed any more (e.g. a negative
    /// Content-Length): `bytes` is what was buffered, for a best-effort
    /// 400. The connection is closed after this call.
    fn on_stream_error(&self, bytes: Bytes, flow: Flow, error: super::message::ParseError);
}
