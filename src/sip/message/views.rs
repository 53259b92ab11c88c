//! The typed views [`Message::validate`] parsed, kept with the message so
//! that what reads it afterwards (the engine, the transaction layer, the
//! relay) does not parse the same top Via, From, To, Request-URI and first
//! Contact again.
//! Each was parsed three to five times per message before; a proxy keeps its
//! parsed headers on the message for the same reason.
//!
//! A kept view is byte ranges, not references (the message owns the buffer
//! they point into): the value's range in the buffer, and every part of the
//! view relative to the value's start.

use super::msg::{Message, Span};
use super::name_addr::{NameAddr, NameAddrAt};
use super::uri::{Uri, UriAt};
use super::via::{Via, ViaAt};

/// Where a part of a view lies, relative to the start of the view's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rel {
    start: u32,
    end: u32,
}

impl Rel {
    /// An empty part that pointed outside the value (a default, such as
    /// the empty parameter list of a URI without parameters).
    const NOWHERE: Rel = Rel {
        start: u32::MAX,
        end: u32::MAX,
    };

    /// Where `part` lies in `base`; `None` if it lies elsewhere. An empty
    /// part keeps its position when it has one, as code that finds where
    /// to insert text (a tag after the parameters) relies on it.
    pub(crate) fn of(base: &[u8], part: &[u8]) -> Option<Rel> {
        // Offsets fit u32 as long as the base does, and a message is far
        // smaller.
        match super::scan::offset_in(base, part) {
            Some(start) if base.len() <= u32::MAX as usize => Some(Rel {
                start: start as u32,
                end: (start + part.len()) as u32,
            }),
            _ if part.is_empty() => Some(Rel::NOWHERE),
            _ => None,
        }
    }

    /// [`Rel::of`] for a part that may be absent: `None` if it is present
    /// and lies elsewhere.
    pub(crate) fn of_opt(base: &[u8], part: Option<&[u8]>) -> Option<Option<Rel>> {
        match part {
            None => Some(None),
            Some(p) => Rel::of(base, p).map(Some),
        }
    }

    /// The part inside `base`.
    pub(crate) fn get(self, base: &[u8]) -> Option<&[u8]> {
        if self == Rel::NOWHERE {
            return Some(&[]);
        }
        base.get(self.start as usize..self.end as usize)
    }

    /// [`Rel::get`] for a part that may be absent.
    pub(crate) fn get_opt(rel: Option<Rel>, base: &[u8]) -> Option<Option<&[u8]>> {
        match rel {
            None => Some(None),
            Some(r) => r.get(base).map(Some),
        }
    }
}

/// One kept view: the range of its value in the buffer, and the view's
/// parts relative to that value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kept<T> {
    at: Span,
    view: T,
}

impl<T: Copy> Kept<T> {
    fn new(buf: &[u8], raw: &[u8], view: Option<T>) -> Option<Kept<T>> {
        let at = Rel::of(buf, raw).filter(|r| *r != Rel::NOWHERE)?;
        Some(Kept {
            at: Span {
                start: at.start,
                end: at.end,
            },
            view: view?,
        })
    }

    fn value<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        buf.get(self.at.range())
    }
}

/// What [`Message::validate`] keeps. Each view is absent when it was not
/// parsed (a response has no Request-URI).
#[derive(Clone, Debug, Default)]
pub(crate) struct Views {
    top_via: Option<Kept<ViaAt>>,
    from: Option<Kept<NameAddrAt>>,
    to: Option<Kept<NameAddrAt>>,
    request_uri: Option<Kept<UriAt>>,
    /// The first Contact value, when it is an address (not `*`).
    contact: Option<Kept<NameAddrAt>>,
}

impl Views {
    /// Keeps the given views of the message in `buf`; a view that does not
    /// lie in `buf` is not kept (and is parsed again when asked for).
    pub(crate) fn keep(
        buf: &[u8],
        top_via: &Via<'_>,
        from: &NameAddr<'_>,
        to: &NameAddr<'_>,
        request_uri: Option<&Uri<'_>>,
        contact: Option<&NameAddr<'_>>,
    ) -> Views {
        let via = |v: &Via<'_>| Kept::new(buf, v.raw(), v.keep());
        let name_addr = |n: &NameAddr<'_>| Kept::new(buf, n.raw(), n.keep());
        Views {
            top_via: via(top_via),
            from: name_addr(from),
            to: name_addr(to),
            request_uri: request_uri.and_then(|u| Kept::new(buf, u.raw(), u.keep())),
            contact: contact.and_then(name_addr),
        }
    }
}

impl Message {
    fn views(&self) -> Option<&Views> {
        self.views.as_deref()
    }

    /// Drops the kept views, for a message held long after it was handled
    /// (a session's INVITE): they are several hundred bytes, and what still
    /// reads the message does so rarely and parses instead.
    pub(crate) fn forget_views(&mut self) {
        self.views = None;
    }

    /// The top Via `validate` kept.
    pub(crate) fn kept_top_via(&self) -> Option<Via<'_>> {
        let k = self.views()?.top_via.as_ref()?;
        Via::load(&k.view, k.value(&self.buf)?)
    }

    /// The From `validate` kept.
    pub(crate) fn kept_from(&self) -> Option<NameAddr<'_>> {
        let k = self.views()?.from.as_ref()?;
        NameAddr::load(&k.view, k.value(&self.buf)?)
    }

    /// The To `validate` kept.
    pub(crate) fn kept_to(&self) -> Option<NameAddr<'_>> {
        let k = self.views()?.to.as_ref()?;
        NameAddr::load(&k.view, k.value(&self.buf)?)
    }

    /// The first Contact address `validate` kept.
    pub(crate) fn kept_contact(&self) -> Option<NameAddr<'_>> {
        let k = self.views()?.contact.as_ref()?;
        NameAddr::load(&k.view, k.value(&self.buf)?)
    }

    /// The Request-URI `validate` kept.
    pub(crate) fn kept_request_uri(&self) -> Option<Uri<'_>> {
        let k = self.views()?.request_uri.as_ref()?;
        Uri::load(&k.view, k.value(&self.buf)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_found_relative_to_its_base() {
        let buf = b"Via: SIP/2.0/UDP h;branch=z9hG4bKx";
        let base = &buf[5..];
        let part = &base[12..13];
        let rel = Rel::of(base, part).expect("inside");
        assert_eq!(rel.get(base), Some(&b"h"[..]));
        assert_eq!(Rel::of(base, &buf[..3]), None, "before the base");
        let empty = Rel::of(base, &base[base.len()..]).expect("at the end");
        assert_eq!(
            empty.get(base).map(|s| s.as_ptr()),
            Some(base[base.len()..].as_ptr())
        );
        assert_eq!(Rel::of(base, &[]), Some(Rel::NOWHERE));
        assert_eq!(Rel::NOWHERE.get(base), Some(&[][..]));
    }

    #[test]
    fn validate_keeps_five_views_of_a_valid_request_until_they_are_forgotten() {
        let mut m = Message::parse(
            b"INVITE sip:bob@example.com;transport=udp SIP/2.0\r\n\
              Via: SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKa\r\n\
              From: \"Al\" <sip:al@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n\
              Call-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
              Contact: <sip:al@192.0.2.1:5060;transport=udp>;expires=60\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("parses");
        assert!(m.kept_top_via().is_none(), "nothing kept before validate");
        m.validate().expect("valid");
        let fresh = Message::parse(m.as_bytes()).expect("parses");
        assert_eq!(m.kept_top_via(), fresh.top_via().ok());
        assert_eq!(m.kept_from(), fresh.from_header().ok());
        assert_eq!(m.kept_to(), fresh.to_header().ok());
        assert_eq!(m.kept_request_uri(), fresh.request_uri().ok());
        assert_eq!(m.kept_contact(), fresh.first_contact());
        assert!(m.kept_top_via().is_some() && m.kept_request_uri().is_some());
        assert!(m.kept_from().is_some() && m.kept_to().is_some());
        assert!(m.kept_contact().is_some());
        m.forget_views();
        assert!(m.kept_from().is_none(), "forgotten");
        assert_eq!(
            m.from_header().ok(),
            fresh.from_header().ok(),
            "parsed instead"
        );
    }

    #[test]
    fn the_kept_contact_is_the_first_address_and_none_for_a_star() {
        let head =
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr\r\n\
                    From: <sip:al@example.com>;tag=1\r\nTo: <sip:al@example.com>\r\n\
                    Call-ID: r\r\nCSeq: 2 REGISTER\r\nMax-Forwards: 70\r\n";
        let with = |contacts: &str| {
            let text = format!("{head}{contacts}Content-Length: 0\r\n\r\n");
            let mut m = Message::parse(text.as_bytes()).expect("parses");
            m.validate().expect("valid");
            m
        };
        let two = with("Contact: <sip:a@192.0.2.1>, <sip:b@192.0.2.2>\r\nContact: <sip:c@h>\r\n");
        let first = two.kept_contact().expect("kept");
        assert_eq!(first.uri().raw(), b"sip:a@192.0.2.1");
        assert_eq!(two.first_contact(), Some(first));
        let star = with("Contact: *\r\nExpires: 0\r\n");
        assert!(star.kept_contact().is_none());
        assert!(star.first_contact().is_none(), "`*` is no address");
        assert!(with("").first_contact().is_none());
    }
}
