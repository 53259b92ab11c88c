//! Sending UDP: what the SIP tasks send during one turn of the runtime
//! queues here, and one task hands it to the kernel in batches
//! (`udp_send_batch` on Linux, one at a time elsewhere: `udp_single`).
//!
//! Sending stays non-blocking for the caller and the order of datagrams is
//! kept. The sending task is woken by the first datagram queued; on a
//! runtime of one worker it is the next task to run once the current one
//! yields (tokio's LIFO slot), or it waits behind the tasks already ready,
//! so a datagram waits at most one pass of the run queue and meanwhile the
//! others that pass produces join it.
//!
//! A datagram the kernel refuses for its destination (no route, a
//! broadcast address, a firewall rule) is refused after `send` returned,
//! so its transaction learns nothing until its timer fires. The
//! destination is then remembered (`udp_refused`) and later sends to it
//! fail at once, so the relay moves on to another app server without
//! waiting.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use super::udp_refused::RefusedDestinations;
#[cfg(target_os = "linux")]
use super::udp_send_batch::SendBatch;
#[cfg(not(target_os = "linux"))]
use super::udp_single::SendBatch;
use super::{lock, SendError};

/// Datagrams that may wait for the sending task. More are dropped, as the
/// kernel drops what does not fit a full socket buffer: at 2,000 calls/s
/// a call sends nine, so this is about half a second of traffic, which
/// only fills while the socket's send buffer stays full (the kernel cannot
/// hand datagrams to the interface as fast as they come).
const MAX_QUEUED: usize = 8192;

/// The largest UDP payload over IPv4 and over IPv6 (RFC 768: 65,535 bytes
/// less the IP and UDP headers). The kernel would refuse more only after
/// `send` returned, and every retransmission with it.
const MAX_PAYLOAD_V4: usize = 65_507;
const MAX_PAYLOAD_V6: usize = 65_527;

/// The UDP socket's sending half.
pub(super) struct UdpOut {
    socket: Arc<UdpSocket>,
    /// Whether the socket is IPv4, which cannot reach an IPv6 address.
    ipv4: bool,
    queue: Mutex<Vec<(Bytes, SocketAddr)>>,
    wake: Arc<Notify>,
    refused: RefusedDestinations,
    /// Whether the queue filled since the sending task last took it.
    full: AtomicBool,
}

impl UdpOut {
    /// Wraps `socket` and starts its sending task on the current runtime;
    /// the task ends when the last handle to the returned value is gone.
    pub(super) fn start(socket: Arc<UdpSocket>) -> io::Result<Arc<Self>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let out = Arc::new(Self {
            ipv4: socket.local_addr()?.is_ipv4(),
            socket,
            queue: Mutex::new(Vec::new()),
            wake: Arc::new(Notify::new()),
            refused: RefusedDestinations::default(),
            full: AtomicBool::new(false),
        });
        runtime.spawn(send_loop(Arc::downgrade(&out), out.wake.clone()));
        Ok(out)
    }

    fn queue(&self) -> MutexGuard<'_, Vec<(Bytes, SocketAddr)>> {
        lock(&self.queue)
    }

    /// Queues `bytes` for `remote`. A destination no datagram can reach is
    /// refused at once (RFC 3261 §18.4: the transport error is reported);
    /// one the kernel refuses later is lost like any UDP datagram, which
    /// retransmission and the transaction timers cover.
    pub(super) fn send(&self, remote: SocketAddr, bytes: Bytes) -> Result<(), SendError> {
        if remote.port() == 0 || (self.ipv4 && remote.is_ipv6()) || self.refused.contains(remote) {
            return Err(SendError::Unreachable(remote));
        }
        let max = if remote.is_ipv4() || self.ipv4 {
            MAX_PAYLOAD_V4
        } else {
            MAX_PAYLOAD_V6
        };
        if bytes.len() > max {
            return Err(SendError::TooLarge(bytes.len()));
        }
        let mut queue = self.queue();
        if queue.len() >= MAX_QUEUED {
            drop(queue);
            // Once per filling: the sending task empties the queue whole.
            if !self.full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    queued = MAX_QUEUED,
                    "UDP send queue full: datagrams dropped until it drains"
                );
            }
            return Ok(());
        }
        let first = queue.is_empty();
        queue.push((bytes, remote));
        drop(queue);
        if first {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Sends `datagrams` in order, waiting for room in the socket buffer
    /// when it is full; a datagram the kernel refuses is skipped.
    async fn send_all(&self, batch: &mut SendBatch, datagrams: &[(Bytes, SocketAddr)]) {
        let mut at = 0;
        while at < datagrams.len() {
            let rest = &datagrams[at..];
            match self
                .socket
                .try_io(Interest::WRITABLE, || batch.send(&*self.socket, rest))
            {
                // Linux never answers 0 for a non-empty batch; were it
                // to, the datagram is skipped rather than retried for ever.
                Ok(sent) => at += sent.max(1),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.socket.writable().await {
                        tracing::error!(error = %e, "UDP socket no longer pollable");
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(to = %rest[0].1, error = %e, "UDP datagram refused");
                    self.refused.remember(rest[0].1, &e);
                    at += 1;
                }
            }
        }
    }
}

impl Drop for UdpOut {
    /// Lets the sending task see that it is the last one left.
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// The sending task: takes the whole queue at each wake-up and sends it.
async fn send_loop(out: Weak<UdpOut>, wake: Arc<Notify>) {
    let mut batch = SendBatch::new();
    let mut sending = Vec::new();
    loop {
        wake.notified().await;
        let Some(out) = out.upgrade() else { return };
        std::mem::swap(&mut sending, &mut *out.queue());
        out.full.store(false, Ordering::Relaxed);
        out.send_all(&mut batch, &sending).await;
        sending.clear();
        // A burst's worth of room is kept; a flood's is given back.
        sending.shrink_to(1024);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transport::udp_refused::{MAX_REFUSED, REFUSAL_MEMORY};
    use std::time::Duration;

    async fn pair() -> (Arc<UdpOut>, UdpSocket) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let rx = UdpSocket::bind("127.0.0.1:0").await.expect("bind receiver");
        (UdpOut::start(Arc::new(socket)).expect("started"), rx)
    }

    async fn next(rx: &UdpSocket) -> String {
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), rx.recv_from(&mut buffer));
        let (len, _) = read.await.expect("a datagram in time").expect("read");
        String::from_utf8_lossy(&buffer[..len]).into_owned()
    }

    #[tokio::test]
    async fn datagrams_queued_in_one_turn_all_leave_in_order() {
        let (out, rx) = pair().await;
        let to = rx.local_addr().expect("addr");
        for i in 0..200 {
            out.send(to, Bytes::from(format!("{i}"))).expect("queued");
        }
        assert_eq!(
            out.queue().len(),
            200,
            "nothing leaves before the turn ends"
        );
        for i in 0..200 {
            assert_eq!(next(&rx).await, format!("{i}"));
        }
        out.send(to, Bytes::from_static(b"later")).expect("queued");
        assert_eq!(next(&rx).await, "later", "the task waits for more");
    }

    #[tokio::test]
    async fn a_destination_no_datagram_reaches_is_refused_at_once() {
        let (out, _rx) = pair().await;
        for nowhere in ["127.0.0.1:0", "[::1]:5060"] {
            let nowhere: SocketAddr = nowhere.parse().expect("address");
            assert_eq!(
                out.send(nowhere, Bytes::from_static(b"x")),
                Err(SendError::Unreachable(nowhere))
            );
        }
        assert!(out.queue().is_empty());
    }

    #[tokio::test]
    async fn a_destination_the_kernel_refused_is_refused_at_once_for_a_while() {
        let (out, rx) = pair().await;
        // Broadcast without SO_BROADCAST: the kernel answers EACCES.
        let broadcast: SocketAddr = "255.255.255.255:5060".parse().expect("address");
        out.send(broadcast, Bytes::from_static(b"x"))
            .expect("queued: the refusal comes later");
        let to = rx.local_addr().expect("addr");
        out.send(to, Bytes::from_static(b"after")).expect("queued");
        assert_eq!(
            next(&rx).await,
            "after",
            "the refusal loses no other datagram"
        );
        // Paused only now: the datagram above needed the real clock.
        tokio::time::pause();
        assert_eq!(
            out.send(broadcast, Bytes::from_static(b"x")),
            Err(SendError::Unreachable(broadcast))
        );
        assert_eq!(
            out.send(to, Bytes::from_static(b"y")),
            Ok(()),
            "others pass"
        );
        tokio::time::advance(REFUSAL_MEMORY).await;
        assert_eq!(out.send(broadcast, Bytes::from_static(b"x")), Ok(()));
        assert_eq!(out.refused.len(), 0, "forgotten");
    }

    #[tokio::test]
    async fn refused_destinations_are_remembered_up_to_a_bound() {
        let (out, rx) = pair().await;
        for port in 1..=(MAX_REFUSED as u16 + 10) {
            let broadcast = SocketAddr::from(([255, 255, 255, 255], port));
            out.send(broadcast, Bytes::from_static(b"x"))
                .expect("queued");
        }
        let to = rx.local_addr().expect("addr");
        out.send(to, Bytes::from_static(b"after")).expect("queued");
        assert_eq!(next(&rx).await, "after");
        assert_eq!(out.refused.len(), MAX_REFUSED);
    }

    #[tokio::test]
    async fn a_message_larger_than_a_datagram_is_refused_at_once() {
        let (out, rx) = pair().await;
        let to = rx.local_addr().expect("addr");
        let big = Bytes::from(vec![b'x'; MAX_PAYLOAD_V4 + 1]);
        assert_eq!(
            out.send(to, big),
            Err(SendError::TooLarge(MAX_PAYLOAD_V4 + 1))
        );
        let largest = Bytes::from(vec![b'x'; MAX_PAYLOAD_V4]);
        assert_eq!(out.send(to, largest), Ok(()));
    }

    #[tokio::test]
    async fn a_full_queue_drops_what_comes_after() {
        let (out, rx) = pair().await;
        let to = rx.local_addr().expect("addr");
        for _ in 0..MAX_QUEUED + 10 {
            out.send(to, Bytes::from_static(b"x")).expect("accepted");
        }
        assert_eq!(out.queue().len(), MAX_QUEUED);
    }

    #[tokio::test]
    async fn the_sending_task_ends_with_its_sending_half() {
        let (out, _rx) = pair().await;
        let wake = out.wake.clone();
        drop(out);
        for _ in 0..100 {
            if Arc::strong_count(&wake) == 1 {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the sending task outlived its sending half");
    }
}
