//! The project's own SIP test UA: UDP or TCP towards one server, request
//! building with correct transaction/dialog identifiers, response matching
//! with a timeout (a test never hangs), a UAS side (`accept_request`,
//! `respond`) and digest authentication (see `sip_digest`).
//!
//! ```ignore
//! let mut ua = SipUa::udp(sip_addr).await.with_user("alice", DOMAIN);
//! let ok = ua.register_with_auth("alice", "secret", 3600).await;
//! assert_eq!(ok.status(), Some(200));
//! ```

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use switchboard::config::DigestAlgorithm;
use switchboard::sip::message::{
    frame_stream, is_keepalive, parse_datagram, parse_stream_frame, Contact, Frame, Limits, Message,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::Instant;

use super::sip_digest::{self, Answer, Challenge};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream, BytesMut),
}

/// A message received by the UA and where it came from.
#[derive(Clone, Debug)]
pub struct Incoming {
    pub msg: Message,
    pub source: SocketAddr,
}

impl std::ops::Deref for Incoming {
    type Target = Message;
    fn deref(&self) -> &Message {
        &self.msg
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    Timeout,
    Closed,
}

/// A request to send. Fields are public so tests can bend any of them.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub uri: String,
    /// `SIP/2.0/UDP 127.0.0.1:port` (the Via without parameters).
    pub via: String,
    pub rport: bool,
    pub branch: String,
    /// name-addr without tag, e.g. `<sip:alice@test.example>`.
    pub from: String,
    pub from_tag: String,
    pub to: String,
    pub to_tag: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    pub max_forwards: u32,
    pub contact: Option<String>,
    pub routes: Vec<String>,
    /// Extra headers, rendered after the standard ones.
    pub headers: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces every header called `name` (case-insensitive) by one line.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
    }

    pub fn with_body(mut self, content_type: &str, body: &[u8]) -> Self {
        self.content_type = Some(content_type.into());
        self.body = body.to_vec();
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{} {} SIP/2.0\r\nVia: {}", self.method, self.uri, self.via);
        if self.rport {
            s.push_str(";rport");
        }
        s.push_str(&format!(
            ";branch={}\r\nMax-Forwards: {}\r\nFrom: {};tag={}\r\nTo: {}",
            self.branch, self.max_forwards, self.from, self.from_tag, self.to
        ));
        if let Some(t) = &self.to_tag {
            s.push_str(&format!(";tag={t}"));
        }
        s.push_str(&format!(
            "\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
            self.call_id, self.cseq, self.method
        ));
        for r in &self.routes {
            s.push_str(&format!("Route: {r}\r\n"));
        }
        if let Some(c) = &self.contact {
            s.push_str(&format!("Contact: {c}\r\n"));
        }
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(ct) = &self.content_type {
            s.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// Dialog state (RFC 3261 §12) seen from this UA.
#[derive(Clone, Debug, Default)]
pub struct Dialog {
    pub call_id: String,
    pub local_uri: String,
    pub local_tag: String,
    pub remote_uri: String,
    pub remote_tag: String,
    /// Remote Contact URI (Request-URI of in-dialog requests).
    pub remote_target: String,
    /// Route set, in the order to put in Route headers.
    pub route_set: Vec<String>,
}

/// Knobs for answering a challenge.
#[derive(Clone, Debug, Default)]
pub struct AuthOptions {
    /// Answer the challenge with this algorithm (default: first answerable).
    pub algorithm: Option<DigestAlgorithm>,
    /// Force this nonce-count (default: per-nonce counter + 1).
    pub nc: Option<u32>,
    pub cnonce: Option<String>,
    /// digest-uri (default: the Request-URI).
    pub uri: Option<String>,
}

pub fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The URI inside a name-addr / addr-spec value (`<...>` stripped).
fn uri_of(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].to_string(),
        _ => value.split(';').next().unwrap_or(value).trim().to_string(),
    }
}

pub struct SipUa {
    conn: Conn,
    pub transport: Transport,
    local: SocketAddr,
    server: SocketAddr,
    pub user: String,
    pub domain: String,
    pub timeout: Duration,
    /// ACK non-2xx final responses to INVITE in `recv_final` (§17.1.1.3).
    pub auto_ack: bool,
    /// Received but not yet consumed (requests while awaiting a response...).
    inbox: VecDeque<Incoming>,
    cseqs: HashMap<String, u32>,
    nonce_counts: HashMap<String, u32>,
    registration: Option<(String, String)>,
    uas_tags: HashMap<String, String>,
    /// The dialog of the last call established by `call`.
    pub dialog: Option<Dialog>,
}

impl SipUa {
    pub async fn udp(server: SocketAddr) -> SipUa {
        Self::connect(Transport::Udp, server).await
    }

    pub async fn tcp(server: SocketAddr) -> SipUa {
        Self::connect(Transport::Tcp, server).await
    }

    pub async fn connect(transport: Transport, server: SocketAddr) -> SipUa {
        let (conn, local) = match transport {
            Transport::Udp => {
                let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind UA UDP");
                let local = s.local_addr().expect("UA UDP address");
                (Conn::Udp(s), local)
            }
            Transport::Tcp => {
                let s = tokio::time::timeout(DEFAULT_TIMEOUT, TcpStream::connect(server))
                    .await
                    .unwrap_or_else(|_| panic!("TCP connect to {server} timed out"))
                    .unwrap_or_else(|e| panic!("TCP connect to {server}: {e}"));
                let local = s.local_addr().expect("UA TCP address");
                (Conn::Tcp(s, BytesMut::with_capacity(8192)), local)
            }
        };
        let mut ua = Self::connect_with(conn, local, server);
        ua.transport = transport;
        ua
    }

    fn connect_with(conn: Conn, local: SocketAddr, server: SocketAddr) -> SipUa {
        SipUa {
            conn,
            transport: Transport::Udp,
            local,
            server,
            user: "alice".into(),
            domain: super::DOMAIN.into(),
            timeout: DEFAULT_TIMEOUT,
            auto_ack: true,
            inbox: VecDeque::new(),
            cseqs: HashMap::new(),
            nonce_counts: HashMap::new(),
            registration: None,
            uas_tags: HashMap::new(),
            dialog: None,
        }
    }

    /// A UA on a TCP connection accepted from `listener` (the server, or
    /// another UA, connected to us).
    pub async fn accept_tcp(listener: &TcpListener) -> SipUa {
        let (s, peer) = tokio::time::timeout(DEFAULT_TIMEOUT, listener.accept())
            .await
            .expect("no TCP connection to accept")
            .expect("TCP accept");
        let local = s.local_addr().expect("UA TCP address");
        let mut ua = Self::connect_with(Conn::Tcp(s, BytesMut::with_capacity(8192)), local, peer);
        ua.transport = Transport::Tcp;
        ua
    }

    pub fn with_user(mut self, user: &str, domain: &str) -> Self {
        self.user = user.into();
        self.domain = domain.into();
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// Where UDP requests go (the TCP peer cannot change).
    pub fn set_server(&mut self, server: SocketAddr) {
        assert_eq!(self.transport, Transport::Udp, "set_server is UDP only");
        self.server = server;
    }

    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }

    pub fn contact_uri(&self) -> String {
        match self.transport {
            Transport::Udp => format!("sip:{}@{}", self.user, self.local),
            Transport::Tcp => format!("sip:{}@{};transport=tcp", self.user, self.local),
        }
    }

    fn next_cseq(&mut self, call_id: &str) -> u32 {
        let n = self.cseqs.entry(call_id.into()).or_insert(0);
        *n += 1;
        *n
    }

    fn base(&mut self, method: &str, uri: &str, call_id: String, from_tag: String) -> Request {
        let cseq = self.next_cseq(&call_id);
        Request {
            method: method.into(),
            uri: uri.into(),
            via: format!("SIP/2.0/{} {}", self.transport.as_str(), self.local),
            rport: true,
            branch: format!("z9hG4bK{}", random_hex(8)),
            from: format!("<{}>", self.aor()),
            from_tag,
            to: format!("<{uri}>"),
            to_tag: None,
            call_id,
            cseq,
            max_forwards: 70,
            contact: matches!(method, "INVITE" | "REGISTER" | "SUBSCRIBE" | "REFER")
                .then(|| format!("<{}>", self.contact_uri())),
            routes: Vec::new(),
            headers: Vec::new(),
            content_type: None,
            body: Vec::new(),
        }
    }

    /// A request outside any dialog: fresh Call-ID and From tag, CSeq 1.
    pub fn request(&mut self, method: &str, uri: &str) -> Request {
        let call_id = format!("{}@{}", random_hex(10), self.local.ip());
        self.base(method, uri, call_id, random_hex(6))
    }

    pub fn options(&mut self, uri: &str) -> Request {
        self.request("OPTIONS", uri)
            .header("Accept", "application/sdp")
    }

    /// REGISTER for the UA's AOR; refreshes keep Call-ID and From tag and
    /// increment CSeq (RFC 3261 §10.2.4).
    pub fn register(&mut self, expires: u32) -> Request {
        let (call_id, tag) = self
            .registration
            .get_or_insert_with(|| {
                (
                    format!("reg-{}@{}", random_hex(10), self.local.ip()),
                    random_hex(6),
                )
            })
            .clone();
        let mut r = self.base("REGISTER", &format!("sip:{}", self.domain), call_id, tag);
        r.to = format!("<{}>", self.aor());
        r.header("Expires", &expires.to_string())
    }

    pub fn invite(&mut self, uri: &str, sdp: &str) -> Request {
        self.request("INVITE", uri)
            .with_body("application/sdp", sdp.as_bytes())
    }

    /// The same request as a new transaction: new branch, next CSeq.
    pub fn renew(&mut self, req: &Request) -> Request {
        let mut r = req.clone();
        r.branch = format!("z9hG4bK{}", random_hex(8));
        r.cseq = self.next_cseq(&r.call_id);
        r
    }

    /// ACK for `resp` to `invite`: hop-by-hop in the INVITE transaction for
    /// non-2xx (§17.1.1.3), a new in-dialog transaction for 2xx (§13.2.2.4).
    pub fn ack(&mut self, invite: &Request, resp: &Message) -> Request {
        let mut ack = invite.clone();
        ack.method = "ACK".into();
        ack.to_tag = resp
            .to_header()
            .expect("response with a valid To")
            .tag()
            .map(text);
        // Credentials stay (§13.2.2.4, §17.1.1.3); other extras do not.
        ack.headers.retain(|(n, _)| n.ends_with("uthorization"));
        ack.content_type = None;
        ack.body.clear();
        ack.contact = None;
        if resp.status().is_some_and(|s| (200..300).contains(&s)) {
            let d = self.uac_dialog(invite, resp);
            ack.uri = d.remote_target;
            ack.routes = d.route_set;
            ack.branch = format!("z9hG4bK{}", random_hex(8));
        }
        ack
    }

    /// CANCEL for a pending INVITE (§9.1: same branch, same CSeq number).
    pub fn cancel(&self, invite: &Request) -> Request {
        let mut c = invite.clone();
        c.method = "CANCEL".into();
        c.headers.clear();
        c.content_type = None;
        c.body.clear();
        c.contact = None;
        c
    }

    /// Dialog created by a 2xx (or tagged 1xx) to our INVITE (§12.1.2).
    pub fn uac_dialog(&self, invite: &Request, resp: &Message) -> Dialog {
        let to = resp.to_header().expect("response with a valid To");
        let mut route_set: Vec<String> = resp
            .record_routes()
            .map(|r| text(r.expect("valid Record-Route").raw()))
            .collect();
        route_set.reverse();
        Dialog {
            call_id: invite.call_id.clone(),
            local_uri: uri_of(&invite.from),
            local_tag: invite.from_tag.clone(),
            remote_uri: text(to.uri().raw()),
            remote_tag: to.tag().map(text).unwrap_or_default(),
            remote_target: contact_uri_of(resp).unwrap_or_else(|| invite.uri.clone()),
            route_set,
        }
    }

    /// Dialog created by our response (with `local_tag`) to a request (§12.1.1).
    pub fn uas_dialog(&self, req: &Message, local_tag: &str) -> Dialog {
        let from = req.from_header().expect("request with a valid From");
        let to = req.to_header().expect("request with a valid To");
        Dialog {
            call_id: text(req.call_id().expect("request with a Call-ID")),
            local_uri: text(to.uri().raw()),
            local_tag: local_tag.into(),
            remote_uri: text(from.uri().raw()),
            remote_tag: from.tag().map(text).unwrap_or_default(),
            remote_target: contact_uri_of(req).expect("request with a Contact"),
            route_set: req
                .record_routes()
                .map(|r| text(r.expect("valid Record-Route").raw()))
                .collect(),
        }
    }

    /// A new request inside `dialog` (BYE, re-INVITE, INFO, ...).
    pub fn in_dialog(&mut self, dialog: &Dialog, method: &str) -> Request {
        let mut r = self.base(
            method,
            &dialog.remote_target,
            dialog.call_id.clone(),
            dialog.local_tag.clone(),
        );
        r.from = format!("<{}>", dialog.local_uri);
        r.to = format!("<{}>", dialog.remote_uri);
        r.to_tag = Some(dialog.remote_tag.clone());
        r.routes = dialog.route_set.clone();
        r
    }

    /// BYE in the dialog of the last `call`.
    pub fn bye(&mut self) -> Request {
        let d = self
            .dialog
            .clone()
            .expect("bye() needs an established call");
        self.in_dialog(&d, "BYE")
    }

    // ---- sending and receiving ----

    pub async fn send(&mut self, req: &Request) {
        self.send_raw(&req.to_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let to = self.server;
        self.send_raw_to(to, bytes).await;
    }

    /// Sends bytes to `to` (UDP) or down the connection (TCP).
    pub async fn send_raw_to(&mut self, to: SocketAddr, bytes: &[u8]) {
        let r = match &mut self.conn {
            Conn::Udp(s) => s.send_to(bytes, to).await.map(|_| ()),
            Conn::Tcp(s, _) => s.write_all(bytes).await,
        };
        r.unwrap_or_else(|e| panic!("UA send to {to}: {e}"));
    }

    async fn read_one(&mut self) -> Result<Incoming, RecvError> {
        let limits = Limits::default();
        match &mut self.conn {
            Conn::Udp(s) => loop {
                let mut buf = vec![0u8; 65_536];
                let (n, source) = s.recv_from(&mut buf).await.map_err(|_| RecvError::Closed)?;
                buf.truncate(n);
                if is_keepalive(&buf) {
                    continue;
                }
                let msg = parse_datagram(Bytes::from(buf.clone()), &limits).unwrap_or_else(|e| {
                    panic!(
                        "UA got an unparseable datagram from {source} ({e}):\n{}",
                        text(&buf)
                    )
                });
                return Ok(Incoming { msg, source });
            },
            Conn::Tcp(s, buf) => loop {
                match frame_stream(buf, &limits) {
                    Ok(Some(Frame::KeepAlive { len, ping })) => {
                        buf.advance(len);
                        if ping {
                            s.write_all(b"\r\n").await.map_err(|_| RecvError::Closed)?;
                        }
                    }
                    Ok(Some(Frame::Message(n))) => {
                        let frame = buf.split_to(n).freeze();
                        let msg = parse_stream_frame(frame.clone(), &limits).unwrap_or_else(|e| {
                            panic!("UA got an unparseable TCP message ({e}):\n{}", text(&frame))
                        });
                        return Ok(Incoming {
                            msg,
                            source: self.server,
                        });
                    }
                    Ok(None) => {
                        if s.read_buf(buf).await.map_err(|_| RecvError::Closed)? == 0 {
                            return Err(RecvError::Closed);
                        }
                    }
                    Err(e) => panic!("UA cannot frame the TCP stream ({e}):\n{}", text(buf)),
                }
            },
        }
    }

    /// The next message (queued first), or why none came within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Result<Incoming, RecvError> {
        if let Some(m) = self.inbox.pop_front() {
            return Ok(m);
        }
        tokio::time::timeout(wait, self.read_one())
            .await
            .unwrap_or(Err(RecvError::Timeout))
    }

    /// The next message; panics after `self.timeout`.
    pub async fn recv(&mut self) -> Incoming {
        let wait = self.timeout;
        match self.recv_within(wait).await {
            Ok(m) => m,
            Err(e) => panic!("no SIP message from {} within {wait:?}: {e:?}", self.server),
        }
    }

    /// The first message satisfying `pred`; others are queued.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Message) -> bool) -> Incoming {
        if let Some(i) = self.inbox.iter().position(|m| pred(&m.msg)) {
            return self.inbox.remove(i).expect("queued message");
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let r = tokio::time::timeout_at(deadline, self.read_one()).await;
            match r.unwrap_or(Err(RecvError::Timeout)) {
                Ok(m) if pred(&m.msg) => return m,
                Ok(m) => self.inbox.push_back(m),
                Err(e) => panic!(
                    "{what}: {e:?} after {:?} ({} via {}); other messages received: {:?}",
                    self.timeout,
                    self.server,
                    self.transport.as_str(),
                    self.inbox
                        .iter()
                        .map(|m| text(m.start_line()))
                        .collect::<Vec<_>>()
                ),
            }
        }
    }

    /// The next response to `req` (provisional ones included).
    pub async fn recv_response(&mut self, req: &Request) -> Message {
        let what = format!(
            "waiting for a response to {} (CSeq {})",
            req.method, req.cseq
        );
        let matches = |m: &Message| {
            m.is_response()
                && m.top_via().ok().and_then(|v| v.branch()) == Some(req.branch.as_bytes())
                && m.cseq()
                    .is_ok_and(|c| c.method.as_bytes() == req.method.as_bytes())
        };
        self.wait_for(&what, matches).await.msg
    }

    /// The final response to `req`; a non-2xx final to an INVITE is ACKed
    /// when `auto_ack` is set.
    pub async fn recv_final(&mut self, req: &Request) -> Message {
        loop {
            let m = self.recv_response(req).await;
            let code = m.status().expect("a response");
            if code >= 200 {
                if req.method == "INVITE" && code >= 300 && self.auto_ack {
                    let ack = self.ack(req, &m);
                    self.send(&ack).await;
                }
                return m;
            }
        }
    }

    /// Sends `req` and returns its final response.
    pub async fn transact(&mut self, req: &Request) -> Message {
        self.send(req).await;
        self.recv_final(req).await
    }

    /// The next request sent to this UA (responses stay queued).
    pub async fn accept_request(&mut self) -> Incoming {
        self.wait_for("waiting for a request", |m| m.is_request())
            .await
    }

    /// Answers a received request at its source (TCP: on the connection).
    /// Adds a To tag (stable per Call-ID) and, for 2xx/1xx to INVITE, our
    /// Contact and the Record-Route. Returns the To tag used.
    pub async fn respond(
        &mut self,
        req: &Incoming,
        code: u16,
        reason: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> String {
        let call_id = text(req.call_id().expect("request with a Call-ID"));
        let tag = self
            .uas_tags
            .entry(call_id)
            .or_insert_with(|| random_hex(6))
            .clone();
        let invite = req.method().is_some_and(|m| m.as_bytes() == b"INVITE");
        let contact = format!("<{}>", self.contact_uri());
        let mut b = req
            .reply(code, reason)
            .expect("valid status")
            .to_tag(&tag)
            .copy_record_route(invite && code < 300);
        if invite && code < 300 && code > 100 {
            b = b.header("Contact", &contact).expect("Contact");
        }
        for (n, v) in headers {
            b = b.header(n, v).expect("valid extra header");
        }
        if let Some((ct, body)) = body {
            b = b.body(ct, body).expect("valid Content-Type");
        }
        let bytes = b.build();
        self.send_raw_to(req.source, &bytes).await;
        tag
    }

    /// Answers an INVITE 200 OK with an SDP answer on media `port`;
    /// returns the To tag.
    pub async fn answer_with_sdp(&mut self, invite: &Incoming, port: u16) -> String {
        let sdp = sdp_offer(self.local_addr(), port);
        self.respond(
            invite,
            200,
            "OK",
            &[],
            Some(("application/sdp", sdp.as_bytes())),
        )
        .await
    }

    // ---- digest authentication ----

    /// Adds the answer to `ch` to `req` (replacing an earlier one).
    pub fn sign(
        &mut self,
        req: &mut Request,
        ch: &Challenge,
        user: &str,
        password: &str,
        opts: &AuthOptions,
    ) {
        let nc = match opts.nc {
            Some(nc) => nc,
            None => {
                let n = self.nonce_counts.entry(ch.nonce.clone()).or_insert(0);
                *n += 1;
                *n
            }
        };
        let cnonce = opts.cnonce.clone().unwrap_or_else(|| random_hex(8));
        let answer = Answer {
            username: user,
            password,
            method: &req.method,
            uri: opts.uri.as_deref().unwrap_or(&req.uri),
            nc,
            cnonce: &cnonce,
        };
        let value = sip_digest::authorization(ch, &answer);
        req.set_header(ch.answer_header(), &value);
    }

    /// Re-issues `req` (new branch, next CSeq) answering the 401/407 `resp`.
    pub fn authorize(
        &mut self,
        req: &Request,
        resp: &Message,
        user: &str,
        password: &str,
        opts: &AuthOptions,
    ) -> Request {
        let all = Challenge::all_from(resp);
        let ch = sip_digest::choose(&all, opts.algorithm)
            .unwrap_or_else(|| {
                panic!(
                    "no usable digest challenge ({:?}) in:\n{}",
                    opts.algorithm,
                    text(resp.as_bytes())
                )
            })
            .clone();
        let mut next = self.renew(req);
        self.sign(&mut next, &ch, user, password, opts);
        next
    }

    /// Sends `req`; on 401/407 answers the challenge (again if the nonce
    /// was stale) and returns the final response.
    pub async fn transact_with_auth(
        &mut self,
        req: &Request,
        user: &str,
        password: &str,
        opts: &AuthOptions,
    ) -> (Request, Message) {
        let mut req = req.clone();
        let mut resp = self.transact(&req).await;
        for _ in 0..2 {
            let code = resp.status();
            if code != Some(401) && code != Some(407) {
                break;
            }
            let stale = Challenge::all_from(&resp).iter().any(|c| c.stale);
            if req.headers.iter().any(|(n, _)| n.ends_with("uthorization")) && !stale {
                break;
            }
            req = self.authorize(&req, &resp, user, password, opts);
            resp = self.transact(&req).await;
        }
        (req, resp)
    }

    /// REGISTER `user` at `self.domain`, answering the challenge.
    pub async fn register_with_auth(
        &mut self,
        user: &str,
        password: &str,
        expires: u32,
    ) -> Message {
        self.register_with_opts(user, password, expires, &AuthOptions::default())
            .await
    }

    pub async fn register_with_opts(
        &mut self,
        user: &str,
        password: &str,
        expires: u32,
        opts: &AuthOptions,
    ) -> Message {
        self.user = user.into();
        let req = self.register(expires);
        self.transact_with_auth(&req, user, password, opts).await.1
    }

    /// INVITE `uri` (answering a 407 when `creds` are given); a 2xx is ACKed
    /// and its dialog kept in `self.dialog`. Returns the INVITE sent last
    /// and its final response.
    pub async fn call(
        &mut self,
        uri: &str,
        sdp: &str,
        creds: Option<(&str, &str)>,
    ) -> (Request, Message) {
        let invite = self.invite(uri, sdp);
        let (invite, resp) = match creds {
            Some((u, p)) => {
                self.transact_with_auth(&invite, u, p, &AuthOptions::default())
                    .await
            }
            None => {
                let r = self.transact(&invite).await;
                (invite, r)
            }
        };
        if resp.status().is_some_and(|s| (200..300).contains(&s)) {
            let ack = self.ack(&invite, &resp);
            self.send(&ack).await;
            self.dialog = Some(self.uac_dialog(&invite, &resp));
        }
        (invite, resp)
    }
}

/// The URI of the first Contact of a message, if any.
fn contact_uri_of(m: &Message) -> Option<String> {
    m.contacts().find_map(|c| match c {
        Ok(Contact::Addr(na)) => Some(text(na.uri().raw())),
        _ => None,
    })
}

/// A minimal SDP offer from `addr` (audio PCMU on `port`).
pub fn sdp_offer(addr: SocketAddr, port: u16) -> String {
    let ip = addr.ip();
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}
