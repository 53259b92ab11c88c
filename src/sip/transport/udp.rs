//! UDP: one socket, several receiving tasks (the kernel spreads datagrams
//! over them), one allocation per datagram.

use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::{Flow, Framing, Inbound};
use crate::sip::message::is_keepalive;

/// Largest UDP payload (RFC 3261 §18.1.1 lets a message reach 65,535 bytes).
const MAX_DATAGRAM: usize = 65_535;

pub(super) async fn receive_loop(
    socket: Arc<UdpSocket>,
    inbound: Arc<dyn Inbound>,
    mut shutdown: watch::Receiver<bool>,
) {
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "UDP socket has no local address");
            return;
        }
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = shutdown.changed() => return,
        };
        match received {
            Ok((n, remote)) => {
                let datagram = &buf[..n];
                // RFC 5626 §4.4.1 keep-alives and stray CRLFs carry nothing.
                if n == 0 || is_keepalive(datagram) {
                    continue;
                }
                inbound.on_frame(
                    Bytes::copy_from_slice(datagram),
                    Flow::udp(local, remote),
                    Framing::Datagram,
                );
            }
            // ICMP errors from earlier sends surface here on some systems
            // (ECONNREFUSED); they say nothing about this socket.
            Err(e) => tracing::trace!(error = %e, "UDP receive error"),
        }
    }
}
