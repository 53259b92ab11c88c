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

/// Buffers for [`ReceiveBatch::receive`]: [`BATCH`] slots of `slot` bytes
/// each, where each datagram came from, and the iovecs and message headers
/// the kernel reads, which point into both. The buffer is allocated zeroed
/// and only the pages datagrams land in are ever touched, so RSS stays near
/// the size of the datagrams, not `BATCH × slot`.
///
/// The headers are built once: a wake-up at low load finds one datagram,
/// and rebuilding 32 headers for it cost more instructions than the
/// system calls saved.
pub(super) struct ReceiveBatch {
    buffer: Vec<u8>,
    slot: usize,
    sources: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    received: usize,
}

// SAFETY: the raw pointers inside `iovecs` and `headers` point only into
// the heap blocks of this struct's own vectors, which never grow or shrink
// after `new` and do not move when the struct does; they are used only
// through `&mut self`.
unsafe impl Send for ReceiveBatch {}

const SOURCE_SIZE: libc::socklen_t = std::mem::size_of::<libc::sockaddr_storage>() as _;

impl ReceiveBatch {
    pub(super) fn new(slot: usize) -> Self {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain old data;
        // all zeros is valid for each.
        let (source, iovec, header) = unsafe { std::mem::zeroed() };
        let mut batch = ReceiveBatch {
            buffer: vec![0u8; BATCH * slot],
            slot,
            sources: vec![source; BATCH],
            iovecs: vec![iovec; BATCH],
            headers: vec![header; BATCH],
            received: 0,
        };
        let slots = batch.buffer.chunks_exact_mut(slot);
        for (((chunk, iov), source), header) in slots
            .zip(&mut batch.iovecs)
            .zip(&mut batch.sources)
            .zip(&mut batch.headers)
        {
            iov.iov_base = chunk.as_mut_ptr().cast();
            iov.iov_len = chunk.len();
            header.msg_hdr.msg_name = std::ptr::from_mut(source).cast();
            header.msg_hdr.msg_namelen = SOURCE_SIZE;
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
        }
        batch
    }

    /// Takes up to [`BATCH`] queued datagrams without waiting. `Ok(n)` with
    /// `n < BATCH` means the queue is empty now; `WouldBlock` that it was
    /// empty already. A datagram longer than the slot is cut to it, as
    /// `recv_from` into a buffer of that size would.
    pub(super) fn receive(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        // The kernel wrote each used header's address length; a shorter
        // one left in place would cut the next, longer address.
        for header in &mut self.headers[..self.received] {
            header.msg_hdr.msg_namelen = SOURCE_SIZE;
        }
        self.received = 0;
        // SAFETY: the headers point at their own slot, address and iovec,
        // all owned by `self` and not otherwise borrowed until the call
        // returns (see `new`); the lengths given are theirs. MSG_DONTWAIT:
        // the tokio reactor does the waiting.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = n as usize;
        Ok(self.received)
    }

    /// The datagrams of the last [`ReceiveBatch::receive`], in arrival
    /// order, with where they came from (`None`: an address family other
    /// than IPv4 and IPv6, which a UDP/IP socket never reports).
    pub(super) fn datagrams(&self) -> impl Iterator<Item = (&[u8], Option<SocketAddr>)> + '_ {
        let used = self.headers[..self.received].iter();
        used.zip(&self.sources)
            .enumerate()
            .map(|(i, (header, source))| {
                let start = i * self.slot;
                let len = (header.msg_len as usize).min(self.slot);
                (&self.buffer[start..start + len], self::source(source))
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
