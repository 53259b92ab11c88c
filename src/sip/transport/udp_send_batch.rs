//! Many datagrams per system call on the way out: sendmmsg(2) on Linux.
//!
//! At 2,000 calls/s the SIP thread made nine `sendto` calls per call, one
//! per datagram, and spent a fifth of its time in them (bench/RESULTS.md,
//! twelfth session). The datagrams one turn of the SIP runtime produces
//! (a 100 and the relayed INVITE, a 200 and its ACK, answers to several
//! calls) leave in one call, and a peer that was asleep is woken once for
//! them rather than once each.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use bytes::Bytes;

/// Datagrams given to the kernel per call at most.
pub(super) const BATCH: usize = 64;

/// Message headers for [`SendBatch::send`], with the iovec and the
/// destination address each one points at, all set for each call.
pub(super) struct SendBatch {
    destinations: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside `iovecs` and `headers` are written and
// read only within `send`, which borrows the datagrams they point at;
// afterwards they are stale and never read.
unsafe impl Send for SendBatch {}

impl SendBatch {
    pub(super) fn new() -> Self {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain old data;
        // all zeros is valid for each.
        let (destination, iovec, header) = unsafe { std::mem::zeroed() };
        SendBatch {
            destinations: vec![destination; BATCH],
            iovecs: vec![iovec; BATCH],
            headers: vec![header; BATCH],
        }
    }

    /// Hands the first [`BATCH`] of `datagrams` (at most) to the kernel
    /// without waiting. `Ok(n)`: the first `n` left, and the next one, if
    /// any, failed (its error comes back when it is sent again).
    /// `WouldBlock`: the send buffer is full; another error: the first
    /// datagram was refused.
    pub(super) fn send(
        &mut self,
        socket: &impl AsRawFd,
        datagrams: &[(Bytes, SocketAddr)],
    ) -> io::Result<usize> {
        let n = datagrams.len().min(BATCH);
        // The pointers the kernel follows are all derived from these three,
        // and the vectors are reached only through them until the call
        // returns, so none is invalidated by a later borrow.
        let destinations = self.destinations.as_mut_ptr();
        let iovecs = self.iovecs.as_mut_ptr();
        let headers = self.headers.as_mut_ptr();
        for (i, (bytes, to)) in datagrams[..n].iter().enumerate() {
            // SAFETY: `i < n <= BATCH`, the length of each vector.
            unsafe {
                let destination = destinations.add(i);
                let iov = iovecs.add(i);
                let header = &mut (*headers.add(i)).msg_hdr;
                (*iov).iov_base = bytes.as_ptr().cast_mut().cast();
                (*iov).iov_len = bytes.len();
                header.msg_name = destination.cast();
                header.msg_namelen = write_address(destination, *to);
                header.msg_iov = iov;
                header.msg_iovlen = 1;
            }
        }
        // SAFETY: the first `n` headers point at their own iovec and
        // address; each iovec points at a datagram that `datagrams` keeps
        // alive and unchanged until the call returns, with its length; the
        // kernel only reads them. MSG_DONTWAIT: the tokio reactor does the
        // waiting.
        let sent = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers,
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }
}

/// Writes `to` into `storage` as the kernel reads it; returns its length.
///
/// # Safety
/// `storage` must be valid for writes of a `sockaddr_storage`.
unsafe fn write_address(storage: *mut libc::sockaddr_storage, to: SocketAddr) -> libc::socklen_t {
    match to {
        SocketAddr::V4(a) => {
            let address = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `storage` is valid for writes (the caller's promise),
            // and sockaddr_storage is sized and aligned to hold any socket
            // address, a sockaddr_in among them.
            unsafe { storage.cast::<libc::sockaddr_in>().write(address) };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let address = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for a sockaddr_in6.
            unsafe { storage.cast::<libc::sockaddr_in6>().write(address) };
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn datagrams(count: usize, to: SocketAddr) -> Vec<(Bytes, SocketAddr)> {
        (0..count)
            .map(|i| (Bytes::from(format!("datagram {i}")), to))
            .collect()
    }

    fn received(rx: &UdpSocket) -> Vec<(String, SocketAddr)> {
        rx.set_nonblocking(true).expect("non-blocking");
        let mut buffer = [0u8; 128];
        let mut got = Vec::new();
        while let Ok((len, from)) = rx.recv_from(&mut buffer) {
            got.push((String::from_utf8_lossy(&buffer[..len]).into_owned(), from));
        }
        got
    }

    #[test]
    fn a_batch_leaves_in_order_to_each_destination() {
        let (a, b) = (
            UdpSocket::bind("127.0.0.1:0").expect("bind a"),
            UdpSocket::bind("127.0.0.1:0").expect("bind b"),
        );
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        let mut out = datagrams(3, a.local_addr().expect("addr"));
        out.insert(
            1,
            (Bytes::from_static(b"to b"), b.local_addr().expect("addr")),
        );
        let mut batch = SendBatch::new();
        assert_eq!(batch.send(&tx, &out).expect("sent"), 4);
        let from = tx.local_addr().expect("addr");
        let at_a: Vec<_> = received(&a).into_iter().map(|(text, _)| text).collect();
        assert_eq!(at_a, ["datagram 0", "datagram 1", "datagram 2"]);
        assert_eq!(received(&b), [("to b".to_string(), from)]);
    }

    #[test]
    fn more_than_a_batch_takes_several_calls() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        let out = datagrams(BATCH + 5, rx.local_addr().expect("addr"));
        let mut batch = SendBatch::new();
        assert_eq!(batch.send(&tx, &out).expect("first"), BATCH);
        assert_eq!(batch.send(&tx, &out[BATCH..]).expect("second"), 5);
        let got = received(&rx);
        assert_eq!(got.len(), BATCH + 5);
        assert_eq!(got[BATCH].0, format!("datagram {BATCH}"));
    }

    #[test]
    fn a_refused_first_datagram_is_an_error_and_a_later_one_stops_the_count() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        let to = rx.local_addr().expect("addr");
        // Port 0 is no destination (Linux answers EINVAL).
        let nowhere: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let mut out = datagrams(2, to);
        out.push((Bytes::from_static(b"lost"), nowhere));
        out.push((Bytes::from_static(b"after"), to));
        let mut batch = SendBatch::new();
        assert_eq!(batch.send(&tx, &out).expect("two"), 2);
        batch.send(&tx, &out[2..]).expect_err("refused");
        assert_eq!(batch.send(&tx, &out[3..]).expect("last"), 1);
        let got: Vec<_> = received(&rx).into_iter().map(|(text, _)| text).collect();
        assert_eq!(got, ["datagram 0", "datagram 1", "after"]);
    }

    #[test]
    fn ipv6_destinations_are_written_whole() {
        let Ok(rx) = UdpSocket::bind("[::1]:0") else {
            eprintln!("SKIPPED: no IPv6 loopback on this machine");
            return;
        };
        let tx = UdpSocket::bind("[::1]:0").expect("bind sender");
        let out = datagrams(1, rx.local_addr().expect("addr"));
        assert_eq!(SendBatch::new().send(&tx, &out).expect("sent"), 1);
        let from = tx.local_addr().expect("addr");
        assert_eq!(received(&rx), [("datagram 0".to_string(), from)]);
    }
}
