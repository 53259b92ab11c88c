//! Decimal text of the numbers and addresses written into nearly every
//! message the relay sends or stamps: ports, IPv4 hosts, counters. Through
//! `Display` each number costs the formatting machinery (padding, width
//! flags), about a hundred instructions an octet; an address written a dozen
//! times per call made that a visible part of the SIP thread's profile.

use std::net::{IpAddr, SocketAddr};

/// Text output the writers below append to. Only ASCII is ever pushed.
pub trait AsciiOut {
    fn push_ascii(&mut self, ascii: &[u8]);
}

impl AsciiOut for String {
    fn push_ascii(&mut self, ascii: &[u8]) {
        self.extend(ascii.iter().map(|&b| char::from(b)));
    }
}

impl AsciiOut for Vec<u8> {
    fn push_ascii(&mut self, ascii: &[u8]) {
        self.extend_from_slice(ascii);
    }
}

/// `n` in decimal, as `Display` writes it.
pub fn push_decimal(out: &mut impl AsciiOut, n: u64) {
    out.push_ascii(itoa::Buffer::new().format(n).as_bytes());
}

/// An address as `Display` writes it: `a.b.c.d`, or the RFC 5952 text of an
/// IPv6 address (unbracketed).
pub fn push_ip(out: &mut impl AsciiOut, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push_ascii(b".");
                }
                out.push_ascii(digits.format(octet).as_bytes());
            }
        }
        // Rare on the relay path; `Display` has the RFC 5952 rules.
        IpAddr::V6(v6) => out.push_ascii(v6.to_string().as_bytes()),
    }
}

/// `host:port`, an IPv6 host bracketed (RFC 3261 §25.1, RFC 5118).
pub fn push_host_port(out: &mut impl AsciiOut, addr: SocketAddr) {
    if addr.is_ipv6() {
        out.push_ascii(b"[");
        push_ip(out, addr.ip());
        out.push_ascii(b"]");
    } else {
        push_ip(out, addr.ip());
    }
    out.push_ascii(b":");
    push_decimal(out, u64::from(addr.port()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_numbers_read_as_display_writes_them() {
        for addr in [
            "0.0.0.0:0",
            "127.0.0.1:5060",
            "255.255.255.255:65535",
            "10.20.3.100:5",
            "[::1]:5060",
            "[2001:db8::8:800:200c:417a]:65535",
            "[::ffff:192.0.2.1]:1",
        ] {
            let addr: SocketAddr = addr.parse().expect("test address");
            let mut text = String::new();
            push_host_port(&mut text, addr);
            assert_eq!(text, addr.to_string());
            let mut bytes = Vec::new();
            push_ip(&mut bytes, addr.ip());
            assert_eq!(bytes, addr.ip().to_string().into_bytes());
        }
        for n in [0, 7, 10, 65535, 4_294_967_295, u64::MAX] {
            let mut text = String::new();
            push_decimal(&mut text, n);
            assert_eq!(text, n.to_string());
        }
    }
}
