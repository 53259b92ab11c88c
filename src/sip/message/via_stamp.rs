//! `received` and `rport` on the top Via of a request (RFC 3261 §18.2.1,
//! RFC 3581 §4), written where they matter: in the responses.
//!
//! The parameters only tell the client, through the Via its responses
//! carry back, where its request came from. Nothing on this side reads them
//! from the request (the transport keeps the reply flow), and a B2BUA never
//! forwards a client's Via. So the request is not rewritten: it carries the
//! stamp beside its bytes, and [`super::ResponseBuilder`] writes the stamped
//! top via-parm into each response. Rewriting the request cost a copy of the
//! whole message, a shifted header index and a second parse of the Via for
//! every request, ACKs included, which are never answered.

use std::net::IpAddr;

use super::digits::{push_decimal, push_ip};
use super::msg::{unfold, Message};
use super::scan::{eq_ic, offset_in};

/// What the server transport learned of a request's source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViaStamp {
    /// The source address (`received`).
    pub received: IpAddr,
    /// The source port, when the client asked for it (`rport`, RFC 3581 §4).
    pub rport: Option<u16>,
}

/// Bytes a stamp adds at most: `;received=` with an IPv6 address and
/// `;rport=` with a port.
pub(crate) const STAMP_ROOM: usize = ";received=".len() + 39 + ";rport=".len() + 5;

impl ViaStamp {
    /// Writes the via-parm `raw` (the request's top Via value) with this
    /// stamp: any `received` or `rport` the client wrote is dropped (§18.2.1
    /// asks for ours; a client has no business setting rport's value,
    /// RFC 3581 §3) and ours are appended. A folded via-parm is written
    /// unfolded: a fold is one SP (RFC 3261 §7.3.1), and the response line
    /// must not break.
    pub(crate) fn write_via(&self, out: &mut Vec<u8>, raw: &[u8]) {
        let raw = unfold(raw);
        // Copies the runs between the parameters it drops: one or two
        // copies for the usual `...;rport;branch=...`. The first segment
        // (sent-protocol and sent-by) is never a parameter.
        let mut copied = 0;
        let mut at = memchr::memchr(b';', &raw);
        while let Some(semi) = at {
            let next = memchr::memchr(b';', &raw[semi + 1..]).map(|i| semi + 1 + i);
            let end = next.unwrap_or(raw.len());
            if is_stamp_param(&raw[semi + 1..end]) {
                out.extend_from_slice(&raw[copied..semi]);
                copied = end;
            }
            at = next;
        }
        out.extend_from_slice(&raw[copied..]);
        out.extend_from_slice(b";received=");
        push_ip(out, self.received);
        if let Some(port) = self.rport {
            out.extend_from_slice(b";rport=");
            push_decimal(out, u64::from(port));
        }
    }
}

/// True for a `received` or `rport` via-param (any value, any case).
fn is_stamp_param(param: &[u8]) -> bool {
    let param = param.trim_ascii_start();
    let name = match memchr::memchr(b'=', param) {
        Some(i) => &param[..i],
        None => param,
    }
    .trim_ascii_end();
    eq_ic(name, b"rport") || eq_ic(name, b"received")
}

impl Message {
    /// Marks the request so that its responses carry `stamp` on the top Via.
    pub fn stamp_top_via(&mut self, stamp: ViaStamp) {
        self.via_stamp = Some(stamp);
    }

    /// The stamp the responses to this request carry, if any.
    pub fn via_stamp(&self) -> Option<ViaStamp> {
        self.via_stamp
    }

    /// Writes header line `line` (the first Via line of this message) with
    /// its first via-parm stamped; `false` when there is no stamp or the
    /// line does not hold the top Via (the caller copies it unchanged).
    pub(crate) fn write_stamped_via_line(&self, out: &mut Vec<u8>, line: &[u8]) -> bool {
        let Some(stamp) = self.via_stamp else {
            return false;
        };
        let Ok(via) = self.top_via() else {
            return false;
        };
        let raw = via.raw();
        let Some(start) = offset_in(line, raw) else {
            return false;
        };
        out.extend_from_slice(&line[..start]);
        stamp.write_via(out, raw);
        out.extend_from_slice(&line[start + raw.len()..]);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(received: &str, rport: Option<u16>) -> ViaStamp {
        ViaStamp {
            received: received.parse().expect("an address"),
            rport,
        }
    }

    fn stamped(via: &str, stamp: ViaStamp) -> String {
        let mut out = Vec::new();
        stamp.write_via(&mut out, via.as_bytes());
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn received_and_rport_replace_what_the_client_wrote() {
        let both = at("203.0.113.7", Some(40000));
        assert_eq!(
            stamped("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKx", both),
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;received=203.0.113.7;rport=40000"
        );
        let only_received = at("203.0.113.7", None);
        assert_eq!(
            stamped(
                "SIP/2.0/UDP h:5070;RECEIVED=1.2.3.4;rport=1234;branch=z9hG4bKx",
                only_received
            ),
            "SIP/2.0/UDP h:5070;branch=z9hG4bKx;received=203.0.113.7"
        );
    }

    #[test]
    fn dropped_parameters_may_stand_anywhere() {
        let stamp = at("192.0.2.9", Some(5));
        for (via, want) in [
            (
                "SIP/2.0/UDP h;branch=z9hG4bKx;rport",
                "SIP/2.0/UDP h;branch=z9hG4bKx",
            ),
            (
                "SIP/2.0/UDP h;rport;branch=z9hG4bKx",
                "SIP/2.0/UDP h;branch=z9hG4bKx",
            ),
            (
                "SIP/2.0/UDP h ; Rport = 7 ;ttl=1; received=1.1.1.1;branch=z9hG4bKx",
                "SIP/2.0/UDP h ;ttl=1;branch=z9hG4bKx",
            ),
            (
                "SIP/2.0/UDP h;rportx=1;xreceived",
                "SIP/2.0/UDP h;rportx=1;xreceived",
            ),
            ("SIP/2.0/UDP h", "SIP/2.0/UDP h"),
            ("SIP/2.0/UDP h;rport;received", "SIP/2.0/UDP h"),
        ] {
            assert_eq!(
                stamped(via, stamp),
                format!("{want};received=192.0.2.9;rport=5"),
                "{via}"
            );
        }
    }

    #[test]
    fn ipv6_sources_are_written_bare_and_folds_unfolded() {
        let v6 = at("2001:db8::2", Some(5062));
        assert_eq!(
            stamped("SIP/2.0/UDP [2001:db8::9]\r\n ;rport;branch=z9hG4bKx", v6),
            "SIP/2.0/UDP [2001:db8::9] ;branch=z9hG4bKx;received=2001:db8::2;rport=5062"
        );
        let longest = at("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(65535));
        let added = stamped("x", longest).len() - 1;
        assert_eq!(
            added, STAMP_ROOM,
            "the room reserved is the most a stamp adds"
        );
    }
}
