//! Many datagrams per system call: recvmmsg(2) on Linux.
//!
//! At 2,000 calls/s the SIP thread made nine `recvfrom` calls per call, one
//! per datagram, a third of its system calls. A wake-up usually finds
//! several datagrams queued (a 180 and a 200 from the app server, the ACK
//! and the next INVITE from clients); one `recvmmsg` takes them all.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;

/// Datagrams taken per call at most.
pub(super) const BATCH: usize = 32;

/// Buffers for one [`ReceiveBatch::receive`]: [`BATCH`] slots of `slot`
/// bytes each, and where each datagram came from. The buffer is allocated
/// zeroed and only the pages datagrams land in are ever touched, so RSS
/// stays near the size of the datagrams, not `BATCH × slot`.
pub(super) struct ReceiveBatch {
    buffer: Vec<u8>,
    slot: usize,
    sources: Vec<libc::sockaddr_storage>,
    lengths: [usize; BATCH],
    received: usize,
}

impl ReceiveBatch {
    pub(super) fn new(slot: usize) -> Self {
        // SAFETY: sockaddr_storage is plain old data; all zeros is valid.
        let empty: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        ReceiveBatch {
            buffer: vec![0u8; BATCH * slot],
            slot,
            sources: vec![empty; BATCH],
            lengths: [0; BATCH],
            received: 0,
        }
    }

    /// Takes up to [`BATCH`] queued datagrams without waiting. `Ok(n)` with
    /// `n < BATCH` means the queue is empty now; `WouldBlock` that it was
    /// empty already. A datagram longer than the slot is cut to it, as
    /// `recv_from` into a buffer of that size would.
    pub(super) fn receive(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.received = 0;
        let mut iovecs: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: mmsghdr is plain old data; all zeros is valid.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, (chunk, iov)) in self
            .buffer
            .chunks_exact_mut(self.slot)
            .zip(iovecs.iter_mut())
            .enumerate()
        {
            iov.iov_base = chunk.as_mut_ptr().cast();
            iov.iov_len = chunk.len();
            let header = &mut headers[i].msg_hdr;
            header.msg_name = std::ptr::from_mut(&mut self.sources[i]).cast();
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = iov;
            header.msg_iovlen = 1;
        }
        // SAFETY: every header points at its own slot of `self.buffer`, its
        // own `sockaddr_storage` and its own iovec, all alive and not
        // otherwise borrowed until the call returns; the lengths given are
        // theirs. MSG_DONTWAIT: the tokio reactor does the waiting.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (length, header) in self.lengths.iter_mut().zip(&headers[..n]) {
            *length = (header.msg_len as usize).min(self.slot);
        }
        self.received = n;
        Ok(n)
    }

    /// The datagrams of the last [`ReceiveBatch::receive`], in arrival
    /// order, with where they came from (`None`: an address family other
    /// than IPv4 and IPv6, which a UDP/IP socket never reports).
    pub(super) fn datagrams(&self) -> impl Iterator<Item = (&[u8], Option<SocketAddr>)> + '_ {
        (0..self.received).map(move |i| {
            let start = i * self.slot;
            (
                &self.buffer[start..start + self.lengths[i]],
                source(&self.sources[i]),
            )
        })
    }
}

/// The address the kernel wrote into `addr`.
fn source(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: for AF_INET the kernel wrote a sockaddr_in, which
            // sockaddr_storage is sized and aligned to hold.
            let a = unsafe { &*std::ptr::from_ref(addr).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, a sockaddr_in6 for AF_INET6.
            let a = unsafe { &*std::ptr::from_ref(addr).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn pair(bind: &str) -> (UdpSocket, UdpSocket) {
        let rx = UdpSocket::bind(bind).expect("bind receiver");
        let tx = UdpSocket::bind(bind).expect("bind sender");
        (rx, tx)
    }

    #[test]
    fn takes_every_queued_datagram_in_order_with_its_source() {
        let (rx, tx) = pair("127.0.0.1:0");
        let to = rx.local_addr().expect("addr");
        for i in 0..5u8 {
            tx.send_to(&vec![b'a' + i; 10 + usize::from(i)], to)
                .expect("send");
        }
        let mut batch = ReceiveBatch::new(2048);
        assert_eq!(batch.receive(&rx).expect("received"), 5);
        let got: Vec<_> = batch.datagrams().collect();
        for (i, (bytes, from)) in got.iter().enumerate() {
            assert_eq!(bytes.len(), 10 + i);
            assert!(bytes.iter().all(|&b| b == b'a' + i as u8));
            assert_eq!(*from, Some(tx.local_addr().expect("addr")));
        }
        let empty = batch.receive(&rx).expect_err("nothing queued");
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_full_queue_is_taken_a_batch_at_a_time() {
        let (rx, tx) = pair("127.0.0.1:0");
        let to = rx.local_addr().expect("addr");
        for i in 0..(BATCH + 3) {
            tx.send_to(format!("{i}").as_bytes(), to).expect("send");
        }
        let mut batch = ReceiveBatch::new(64);
        assert_eq!(batch.receive(&rx).expect("first"), BATCH);
        let last = batch.datagrams().last().expect("one").0.to_vec();
        assert_eq!(last, format!("{}", BATCH - 1).into_bytes());
        assert_eq!(batch.receive(&rx).expect("second"), 3);
        let first = batch.datagrams().next().expect("one").0.to_vec();
        assert_eq!(first, format!("{BATCH}").into_bytes());
    }

    #[test]
    fn a_datagram_longer_than_its_slot_is_cut_to_it() {
        let (rx, tx) = pair("127.0.0.1:0");
        tx.send_to(&[7u8; 100], rx.local_addr().expect("addr"))
            .expect("send");
        let mut batch = ReceiveBatch::new(40);
        assert_eq!(batch.receive(&rx).expect("received"), 1);
        assert_eq!(batch.datagrams().next().expect("one").0, &[7u8; 40][..]);
    }

    #[test]
    fn ipv6_sources_are_read_back() {
        let Ok(rx) = UdpSocket::bind("[::1]:0") else {
            eprintln!("SKIPPED: no IPv6 loopback on this machine");
            return;
        };
        let tx = UdpSocket::bind("[::1]:0").expect("bind sender");
        tx.send_to(b"x", rx.local_addr().expect("addr"))
            .expect("send");
        let mut batch = ReceiveBatch::new(64);
        assert_eq!(batch.receive(&rx).expect("received"), 1);
        assert_eq!(
            batch.datagrams().next().expect("one").1,
            Some(tx.local_addr().expect("addr"))
        );
    }
}
