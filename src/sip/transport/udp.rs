//! UDP: one socket, one receiving task taking datagrams in batches
//! (`udp_batch` on Linux, one at a time elsewhere: `udp_single`), one
//! allocation per datagram.
//!
//! One task, not one per core: tokio wakes every task waiting on a socket
//! when a datagram arrives, so a second task only doubled the wake-ups
//! (measured: 626 -> 567 µs of CPU per call at 2,000 calls/s). Parsing
//! and the transaction layer's matching stay on the receiving task, which
//! hands the relay core only what is new.
//!
//! The socket's receive buffer is what absorbs a burst while the receiving
//! task is busy: the kernel drops what does not fit (`RcvbufErrors` in
//! /proc/net/snmp), and a lost provisional or final response costs a
//! retransmission 500 ms later, which strict peers take for a new request.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;

#[cfg(target_os = "linux")]
use super::udp_batch::{ReceiveBatch, BATCH};
#[cfg(not(target_os = "linux"))]
use super::udp_single::{ReceiveBatch, BATCH};
use super::{Flow, Framing, Inbound};
use crate::sip::message::is_keepalive;

/// Largest UDP payload (RFC 3261 §18.1.1 lets a message reach 65,535 bytes).
const MAX_DATAGRAM: usize = 65_535;

/// Socket buffer asked of the kernel for each direction: about 4,000
/// datagrams of 1 KB, a fifth of a second at 2,000 calls/s. Linux caps it
/// at `net.core.rmem_max` / `wmem_max` (212,992 bytes on a stock kernel,
/// about 200 datagrams); operators raise those for heavy load.
pub(super) const SOCKET_BUFFER: usize = 4 << 20;

/// Asks for [`SOCKET_BUFFER`] bytes of receive and send buffer; returns
/// the receive buffer the kernel granted.
pub(super) fn size_buffers(socket: &UdpSocket) -> std::io::Result<usize> {
    let sock = socket2::SockRef::from(socket);
    sock.set_recv_buffer_size(SOCKET_BUFFER)?;
    sock.set_send_buffer_size(SOCKET_BUFFER)?;
    sock.recv_buffer_size()
}

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
    let mut batch = ReceiveBatch::new(MAX_DATAGRAM);
    // One future for the whole loop: a fresh `changed()` per readiness
    // would join and leave the channel's waiter list every time.
    let stop = shutdown.changed();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = socket.readable() => if let Err(e) = r {
                tracing::error!(error = %e, "UDP socket no longer pollable");
                return;
            },
            _ = &mut stop => return,
        }
        // One batch per readiness: `readable()` spends the task's
        // cooperative budget, so a flood still lets the timers and the core
        // run. A short batch emptied the queue: answering WouldBlock makes
        // tokio clear the readiness, which it does only if no datagram was
        // signalled since (it compares ticks), and saves the empty call a
        // second `receive` would make.
        let taken = socket.try_io(Interest::READABLE, || match batch.receive(&*socket)? {
            n if n < BATCH => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        });
        match taken {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // ICMP errors from earlier sends surface here on some systems
            // (ECONNREFUSED); they say nothing about this socket.
            Err(e) => {
                tracing::trace!(error = %e, "UDP receive error");
                continue;
            }
        }
        for (datagram, remote) in batch.datagrams() {
            // RFC 5626 §4.4.1 keep-alives and stray CRLFs carry nothing.
            let Some(remote) = remote else { continue };
            if datagram.is_empty() || is_keepalive(datagram) {
                continue;
            }
            inbound.on_frame(
                Bytes::copy_from_slice(datagram),
                Flow::udp(local, remote),
                Framing::Datagram,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's ceiling for a receive buffer an unprivileged socket asks.
    fn rmem_max() -> usize {
        std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn the_receive_buffer_grows_as_far_as_the_kernel_allows() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let before = socket2::SockRef::from(&socket)
            .recv_buffer_size()
            .expect("size");
        let granted = size_buffers(&socket).expect("sized");
        // Linux doubles what it grants for its own bookkeeping.
        let ceiling = rmem_max().min(SOCKET_BUFFER);
        assert!(
            granted >= ceiling,
            "granted {granted} bytes, the kernel allows {ceiling}"
        );
        assert!(granted >= before, "never smaller than the default {before}");
    }
}
