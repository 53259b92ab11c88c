//! The transports as one object: the UDP socket, the TCP listener and the
//! table of live TCP connections, which is what lets a request to a client
//! reuse the connection the client opened (RFC 5626 §3, RFC 3261 §18.2.2).

use ahash::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};

use super::udp_out::UdpOut;
use super::{tcp, udp, Flow, Inbound, Outbound, Protocol, SendError, TcpConfig};
use crate::sip::message::Limits;

struct Conn {
    remote: SocketAddr,
    tx: mpsc::Sender<Bytes>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<u64, Conn>,
    /// The newest connection to each remote address.
    by_remote: HashMap<SocketAddr, u64>,
}

/// Live TCP connections. The lock guards map updates only; it is never
/// held across an await.
pub(super) struct ConnTable {
    pub(super) config: TcpConfig,
    pub(super) limits: Limits,
    next_id: AtomicU64,
    inner: Mutex<Inner>,
}

impl ConnTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        super::lock(&self.inner)
    }

    /// Adds a connection to `remote`; `None` when the limit is reached.
    pub(super) fn register(&self, remote: SocketAddr) -> Option<(u64, mpsc::Receiver<Bytes>)> {
        let mut inner = self.lock();
        if inner.by_id.len() >= self.config.max_connections {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.config.send_queue);
        inner.by_id.insert(id, Conn { remote, tx });
        inner.by_remote.insert(remote, id);
        Some((id, rx))
    }

    pub(super) fn remove(&self, id: u64) {
        let mut inner = self.lock();
        if let Some(conn) = inner.by_id.remove(&id) {
            if inner.by_remote.get(&conn.remote) == Some(&id) {
                inner.by_remote.remove(&conn.remote);
            }
        }
    }

    /// Queues bytes on connection `id`.
    pub(super) fn send_on(&self, id: u64, bytes: Bytes) -> Result<(), SendError> {
        let tx = self
            .lock()
            .by_id
            .get(&id)
            .map(|c| c.tx.clone())
            .ok_or(SendError::Closed)?;
        queue(&tx, bytes)
    }

    fn sender_to(&self, remote: SocketAddr) -> Option<mpsc::Sender<Bytes>> {
        let inner = self.lock();
        let id = inner.by_remote.get(&remote)?;
        inner.by_id.get(id).map(|c| c.tx.clone())
    }

    pub(super) fn len(&self) -> usize {
        self.lock().by_id.len()
    }
}

fn queue(tx: &mpsc::Sender<Bytes>, bytes: Bytes) -> Result<(), SendError> {
    tx.try_send(bytes).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => SendError::Congested,
        mpsc::error::TrySendError::Closed(_) => SendError::Closed,
    })
}

/// UDP and TCP on one address.
pub struct Transports {
    udp: Arc<UdpSocket>,
    udp_out: Arc<UdpOut>,
    tcp: std::sync::Mutex<Option<TcpListener>>,
    udp_local: SocketAddr,
    tcp_local: SocketAddr,
    table: Arc<ConnTable>,
    inbound: OnceLock<Arc<dyn Inbound>>,
    shutdown: watch::Receiver<bool>,
}

impl Transports {
    /// Wraps sockets the caller bound (port 0 in tests), and starts the
    /// UDP sending task on the current runtime (an error outside one).
    /// Nothing is received until [`Transports::run`].
    pub fn new(
        udp: UdpSocket,
        tcp: TcpListener,
        config: TcpConfig,
        limits: Limits,
        shutdown: watch::Receiver<bool>,
    ) -> io::Result<Arc<Self>> {
        match udp::size_buffers(&udp) {
            Ok(granted) if granted < udp::SOCKET_BUFFER => tracing::info!(
                granted,
                asked = udp::SOCKET_BUFFER,
                "UDP receive buffer capped by the kernel (net.core.rmem_max)"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot size the UDP socket buffers"),
        }
        let udp = Arc::new(udp);
        Ok(Arc::new(Self {
            udp_local: udp.local_addr()?,
            tcp_local: tcp.local_addr()?,
            udp_out: UdpOut::start(udp.clone())?,
            udp,
            tcp: std::sync::Mutex::new(Some(tcp)),
            table: Arc::new(ConnTable {
                config,
                limits,
                next_id: AtomicU64::new(1),
                inner: Mutex::new(Inner::default()),
            }),
            inbound: OnceLock::new(),
            shutdown,
        }))
    }

    /// Starts receiving: the UDP task and the TCP accept loop, delivering
    /// to `inbound`. Runs until the shutdown signal.
    pub fn run(&self, inbound: Arc<dyn Inbound>) {
        if self.inbound.set(inbound.clone()).is_err() {
            return;
        }
        tokio::spawn(udp::receive_loop(
            self.udp.clone(),
            inbound.clone(),
            self.shutdown.clone(),
        ));
        let listener = self.tcp.lock().ok().and_then(|mut l| l.take());
        if let Some(listener) = listener {
            tokio::spawn(tcp::accept_loop(
                listener,
                self.table.clone(),
                inbound,
                self.shutdown.clone(),
            ));
        }
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_local
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_local
    }

    /// Open TCP connections.
    pub fn tcp_connections(&self) -> usize {
        self.table.len()
    }

    fn send_tcp(&self, flow: &Flow, bytes: Bytes) -> Result<(), SendError> {
        if flow.connection != 0 {
            match self.table.send_on(flow.connection, bytes.clone()) {
                Err(SendError::Closed) => {}
                other => return other,
            }
        }
        if let Some(tx) = self.table.sender_to(flow.remote) {
            return queue(&tx, bytes);
        }
        // No connection: open one; the message waits in its queue.
        let inbound = self
            .inbound
            .get()
            .cloned()
            .ok_or(SendError::Unreachable(flow.remote))?;
        let (id, rx) = self
            .table
            .register(flow.remote)
            .ok_or(SendError::Congested)?;
        self.table.send_on(id, bytes)?;
        tokio::spawn(tcp::connect(
            flow.remote,
            id,
            rx,
            self.table.clone(),
            inbound,
            self.shutdown.clone(),
        ));
        Ok(())
    }
}

impl Outbound for Transports {
    fn send(&self, flow: &Flow, bytes: Bytes) -> Result<(), SendError> {
        match flow.protocol {
            Protocol::Udp => self.udp_out.send(flow.remote, bytes),
            Protocol::Tcp => self.send_tcp(flow, bytes),
        }
    }
}
