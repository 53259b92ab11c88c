//! Where an app server is reached: its URI turned into an address and a
//! transport once, when the configuration loads, never on the call path.

use std::net::{IpAddr, SocketAddr};

use crate::sip::message::Uri;
use crate::sip::transport::Protocol;

/// An app server's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub protocol: Protocol,
}

/// Host, port and transport of a SIP URI (port 5060 when absent; RFC 3263
/// SRV lookups are not done: give a port or use 5060).
pub fn parse(uri: &str) -> Option<(String, u16, Protocol)> {
    let parsed = Uri::parse(uri.as_bytes()).ok()?;
    let host = parsed.host()?;
    let protocol = match parsed.transport() {
        Some(t) if t.eq_ignore_ascii_case(b"tcp") => Protocol::Tcp,
        _ => Protocol::Udp,
    };
    Some((
        host.as_str().to_string(),
        parsed.port().unwrap_or(5060),
        protocol,
    ))
}

/// Resolves an app server URI (DNS for host names, at configuration load).
pub async fn resolve(uri: &str) -> Option<Target> {
    let (host, port, protocol) = parse(uri)?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addr = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()?
            .next()?,
    };
    Some(Target { addr, protocol })
}

/// The local address the kernel would use to reach `dest` (no packet is
/// sent), for Via and Contact when listening on a wildcard address.
pub fn local_ip_for(dest: IpAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if dest.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(bind).ok()?;
    socket.connect((dest, 9)).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}
