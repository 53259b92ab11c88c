//! TCP: connections framed by Content-Length (RFC 3261 §18.3), with the
//! limits that keep slow, silent or hostile peers from pinning resources.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::connections::ConnTable;
use super::{Flow, Framing, Inbound, Protocol};
use crate::sip::message::{frame_stream, Frame, Limits};

/// Limits of the TCP transport.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// Connections open at once, both directions; more are refused.
    pub max_connections: usize,
    /// A connection with no bytes in either direction for this long is
    /// closed (clients keep flows alive with CRLF pings, RFC 5626 §3.5.1).
    pub idle_timeout: Duration,
    /// A message must arrive whole within this time of its first byte.
    pub message_timeout: Duration,
    /// Messages queued for sending per connection before sends fail.
    pub send_queue: usize,
    /// Time allowed to open an outgoing connection.
    pub connect_timeout: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(300),
            message_timeout: Duration::from_secs(10),
            send_queue: 256,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// How long a connection whose reading ended keeps sending answers.
const LINGER: Duration = Duration::from_secs(2);

pub(super) async fn accept_loop(
    listener: TcpListener,
    table: Arc<ConnTable>,
    inbound: Arc<dyn Inbound>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some((id, rx)) = table.register(remote) else {
            tracing::debug!(%remote, "TCP connection refused: connection limit reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(run_connection(
            stream,
            id,
            rx,
            table.clone(),
            inbound.clone(),
            shutdown.clone(),
        ));
    }
}

/// Opens a connection for queued outgoing messages, then runs it.
pub(super) async fn connect(
    remote: SocketAddr,
    id: u64,
    rx: mpsc::Receiver<Bytes>,
    table: Arc<ConnTable>,
    inbound: Arc<dyn Inbound>,
    shutdown: watch::Receiver<bool>,
) {
    let timeout = table.config.connect_timeout;
    match tokio::time::timeout(timeout, TcpStream::connect(remote)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            run_connection(stream, id, rx, table, inbound, shutdown).await;
        }
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "TCP connect failed");
            table.remove(id);
        }
        Err(_) => {
            tracing::debug!(%remote, "TCP connect timed out");
            table.remove(id);
        }
    }
}

async fn run_connection(
    stream: TcpStream,
    id: u64,
    rx: mpsc::Receiver<Bytes>,
    table: Arc<ConnTable>,
    inbound: Arc<dyn Inbound>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (Ok(local), Ok(remote)) = (stream.local_addr(), stream.peer_addr()) else {
        table.remove(id);
        return;
    };
    let flow = Flow {
        protocol: Protocol::Tcp,
        remote,
        local,
        connection: id,
    };
    let (read, write) = stream.into_split();
    let last_activity = Arc::new(std::sync::Mutex::new(Instant::now()));
    let mut writer = tokio::spawn(write_loop(write, rx, last_activity.clone()));
    let ended = tokio::select! {
        why = read_loop(read, flow, &table, table.limits, inbound, last_activity) => Some(why),
        _ = &mut writer => None,
        _ = shutdown.changed() => None,
    };
    if matches!(ended, Some(ReadEnd::Closed | ReadEnd::Unframeable)) {
        // The peer closed its side or sent what cannot be framed: answers
        // to what it did send may still be on their way (a half-closed
        // peer can read them), so the writer lingers briefly.
        let _ = tokio::time::timeout(LINGER, &mut writer).await;
    }
    writer.abort();
    table.remove(id);
    tracing::trace!(%flow, "TCP connection closed");
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    last_activity: Arc<std::sync::Mutex<Instant>>,
) {
    while let Some(bytes) = rx.recv().await {
        if write.write_all(&bytes).await.is_err() {
            return;
        }
        touch(&last_activity);
    }
}

fn touch(last_activity: &std::sync::Mutex<Instant>) {
    if let Ok(mut t) = last_activity.lock() {
        *t = Instant::now();
    }
}

/// Why reading stopped.
enum ReadEnd {
    /// The peer closed its sending side (or the socket failed).
    Closed,
    /// The stream cannot be framed any more.
    Unframeable,
    /// Idle, or a message did not complete in time.
    TimedOut,
}

/// Reads and frames messages until the peer closes, misbehaves or idles.
async fn read_loop(
    mut read: OwnedReadHalf,
    flow: Flow,
    table: &ConnTable,
    limits: Limits,
    inbound: Arc<dyn Inbound>,
    last_activity: Arc<std::sync::Mutex<Instant>>,
) -> ReadEnd {
    let mut buf = BytesMut::with_capacity(4096);
    // When the first byte of a still incomplete message arrived.
    let mut partial_since: Option<Instant> = None;
    loop {
        // Frame everything already buffered.
        loop {
            match frame_stream(&buf, &limits) {
                Ok(Some(Frame::KeepAlive { len, ping })) => {
                    buf.advance(len);
                    if ping {
                        // RFC 5626 §4.4.1: a double CRLF ping gets a CRLF pong.
                        let _ = table.send_on(flow.connection, Bytes::from_static(b"\r\n"));
                    }
                }
                Ok(Some(Frame::Message(len))) => {
                    let frame = buf.split_to(len).freeze();
                    inbound.on_frame(frame, flow, Framing::Stream);
                    partial_since = None;
                }
                Ok(None) => break,
                Err(e) => {
                    inbound.on_stream_error(buf.split().freeze(), flow, e);
                    return ReadEnd::Unframeable;
                }
            }
        }
        if buf.is_empty() {
            partial_since = None;
        } else if partial_since.is_none() {
            partial_since = Some(Instant::now());
        }
        let deadline = match partial_since {
            Some(t) => t + table.config.message_timeout,
            None => {
                let last = last_activity
                    .lock()
                    .map(|t| *t)
                    .unwrap_or_else(|_| Instant::now());
                last + table.config.idle_timeout
            }
        };
        if buf.capacity() - buf.len() < 2048 {
            buf.reserve(8192);
        }
        match tokio::time::timeout_at(deadline, read.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return ReadEnd::Closed,
            Ok(Ok(_)) => touch(&last_activity),
            Err(_) => {
                // Idle, or a message that never completes (RFC 4475 clerr
                // over TCP): nothing can be answered, close.
                tracing::debug!(%flow, partial = !buf.is_empty(), "TCP connection timed out");
                return ReadEnd::TimedOut;
            }
        }
    }
}
