//! One datagram per system call: the receive and send batches where
//! recvmmsg(2) and sendmmsg(2) are missing (every system but Linux; `libc`
//! is a Linux-only dependency).
//!
//! Same interfaces as the Linux `udp_batch` and `udp_send_batch`, with a
//! batch of one, so the receive and send loops are one piece of code
//! everywhere. Built in tests on Linux
//! too, so the fallback is exercised where CI runs.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;

use bytes::Bytes;
use socket2::{SockAddr, SockRef};

/// Datagrams taken per call at most.
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub(super) const BATCH: usize = 1;

/// One buffer of `slot` bytes and where its datagram came from.
pub(super) struct ReceiveBatch {
    buffer: Vec<u8>,
    received: Option<(usize, Option<SocketAddr>)>,
}

impl ReceiveBatch {
    pub(super) fn new(slot: usize) -> Self {
        ReceiveBatch {
            buffer: vec![0u8; slot],
            received: None,
        }
    }

    /// Takes the next queued datagram without waiting: `Ok(1)`, or
    /// `WouldBlock` when none is queued (the socket is non-blocking, as
    /// tokio's are). A datagram longer than the slot is cut to it.
    pub(super) fn receive<S>(&mut self, socket: &S) -> io::Result<usize>
    where
        for<'s> SockRef<'s>: From<&'s S>,
    {
        self.received = None;
        // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and
        // `recv_from` only writes initialised bytes into the buffer, so it
        // stays initialised for the `&[u8]` reads in `datagrams`.
        let buffer = unsafe {
            &mut *(std::ptr::from_mut(self.buffer.as_mut_slice()) as *mut [MaybeUninit<u8>])
        };
        let (len, from) = SockRef::from(socket).recv_from(buffer)?;
        self.received = Some((len.min(self.buffer.len()), from.as_socket()));
        Ok(1)
    }

    /// The datagram of the last [`ReceiveBatch::receive`], if it took one,
    /// with where it came from (`None`: not an IP address).
    pub(super) fn datagrams(&self) -> impl Iterator<Item = (&[u8], Option<SocketAddr>)> + '_ {
        self.received
            .iter()
            .map(|&(len, from)| (&self.buffer[..len], from))
    }
}

/// Sends one datagram per call.
pub(super) struct SendBatch;

impl SendBatch {
    pub(super) fn new() -> Self {
        SendBatch
    }

    /// Sends the first of `datagrams` without waiting: `Ok(1)` (or `Ok(0)`
    /// for none), `WouldBlock` when the send buffer is full, another error
    /// when it was refused.
    pub(super) fn send<S>(
        &mut self,
        socket: &S,
        datagrams: &[(Bytes, SocketAddr)],
    ) -> io::Result<usize>
    where
        for<'s> SockRef<'s>: From<&'s S>,
    {
        let Some((bytes, to)) = datagrams.first() else {
            return Ok(0);
        };
        SockRef::from(socket).send_to(bytes, &SockAddr::from(*to))?;
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn pair() -> (UdpSocket, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
        rx.set_nonblocking(true).expect("non-blocking");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        (rx, tx)
    }

    #[test]
    fn takes_queued_datagrams_one_at_a_time_with_their_source() {
        let (rx, tx) = pair();
        let to = rx.local_addr().expect("addr");
        tx.send_to(b"first", to).expect("send");
        tx.send_to(b"second!", to).expect("send");
        let mut batch = ReceiveBatch::new(2048);
        for expected in [&b"first"[..], b"second!"] {
            assert_eq!(batch.receive(&rx).expect("received"), 1);
            let got: Vec<_> = batch.datagrams().collect();
            assert_eq!(got, vec![(expected, Some(tx.local_addr().expect("a")))]);
        }
        let empty = batch.receive(&rx).expect_err("nothing queued");
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(
            batch.datagrams().count(),
            0,
            "a failed receive holds nothing"
        );
    }

    #[test]
    fn a_datagram_longer_than_its_slot_is_cut_to_it() {
        let (rx, tx) = pair();
        tx.send_to(&[7u8; 100], rx.local_addr().expect("addr"))
            .expect("send");
        let mut batch = ReceiveBatch::new(40);
        assert_eq!(batch.receive(&rx).expect("received"), 1);
        assert_eq!(batch.datagrams().next().expect("one").0, &[7u8; 40][..]);
    }

    #[test]
    fn sends_the_first_datagram_of_a_batch() {
        let (rx, tx) = pair();
        let to = rx.local_addr().expect("addr");
        let out = [
            (Bytes::from_static(b"one"), to),
            (Bytes::from_static(b"two"), to),
        ];
        let mut batch = SendBatch::new();
        assert_eq!(batch.send(&tx, &out).expect("sent"), 1);
        assert_eq!(batch.send(&tx, &out[1..]).expect("sent"), 1);
        assert_eq!(batch.send(&tx, &[]).expect("nothing"), 0);
        let mut buffer = [0u8; 16];
        for expected in [&b"one"[..], b"two"] {
            let (len, _) = rx.recv_from(&mut buffer).expect("received");
            assert_eq!(&buffer[..len], expected);
        }
    }
}
