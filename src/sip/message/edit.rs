//! Editing a received message (proxy/B2BUA forwarding): prepend/remove Via,
//! replace/remove/add headers, replace the Request-URI or the body. Only the
//! edited lines are rebuilt; every other line is copied verbatim.

use super::error::BuildError;
use super::header::HeaderName;
use super::msg::{name_matches, Message, StartLine};
use super::render::{check_name, check_uri, check_value, push_content_length, push_header};
use super::scan::CommaSplit;
use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Keep,
    Remove,
    /// Replacement line (name + value, without CRLF) in `scratch`.
    Replace(Range<usize>),
}

/// Edits a received message and renders the result; untouched lines are
/// copied verbatim. Content-Length is always rewritten to match the body
/// (kept in place, keeping its compact/long spelling), and added if the
/// datagram had none, so the output is valid on any transport.
#[derive(Debug, Clone)]
pub struct Editor<'m> {
    msg: &'m Message,
    request_uri: Option<Range<usize>>,
    ops: Vec<Op>,
    prepended: Vec<Range<usize>>,
    appended: Vec<Range<usize>>,
    scratch: Vec<u8>,
    remove_top_via: bool,
    body: Option<(Option<Range<usize>>, Range<usize>)>,
}

impl<'m> Editor<'m> {
    pub fn new(msg: &'m Message) -> Self {
        Editor {
            msg,
            request_uri: None,
            ops: Vec::new(),
            prepended: Vec::new(),
            appended: Vec::new(),
            scratch: Vec::new(),
            remove_top_via: false,
            body: None,
        }
    }

    fn stash(&mut self, parts: &[&[u8]]) -> Range<usize> {
        let s = self.scratch.len();
        for p in parts {
            self.scratch.extend_from_slice(p);
        }
        s..self.scratch.len()
    }

    fn set_op(&mut self, i: usize, op: Op) {
        if self.ops.len() < self.msg.header_count() {
            self.ops.resize(self.msg.header_count(), Op::Keep);
        }
        self.ops[i] = op;
    }

    /// Replaces the Request-URI (requests only).
    pub fn set_request_uri(&mut self, uri: impl AsRef<[u8]>) -> Result<&mut Self, BuildError> {
        let uri = uri.as_ref();
        if !self.msg.is_request() {
            return Err(BuildError::NotARequest);
        }
        check_uri(uri)?;
        self.request_uri = Some(self.stash(&[uri]));
        Ok(self)
    }

    /// Inserts a header above all original headers; a later call lands
    /// above an earlier one (so the last prepended Via is the top Via).
    pub fn prepend_header(
        &mut self,
        name: &str,
        value: impl AsRef<[u8]>,
    ) -> Result<&mut Self, BuildError> {
        let v = value.as_ref();
        check_name(name.as_bytes())?;
        check_value(v)?;
        let r = self.stash(&[name.as_bytes(), b": ", v]);
        self.prepended.push(r);
        Ok(self)
    }

    /// Prepends a Via (RFC 3261 §16.6 step 8).
    pub fn prepend_via(&mut self, value: impl AsRef<[u8]>) -> Result<&mut Self, BuildError> {
        self.prepend_header("Via", value)
    }

    /// Removes the topmost Via value of the original message (first element
    /// of the first Via line; the rest of that line is kept), as a proxy
    /// does when forwarding a response (§16.7 step 3).
    pub fn remove_top_via(&mut self) -> &mut Self {
        self.remove_top_via = true;
        self
    }

    /// Appends a header after the original headers.
    pub fn append_header(
        &mut self,
        name: &str,
        value: impl AsRef<[u8]>,
    ) -> Result<&mut Self, BuildError> {
        let v = value.as_ref();
        check_name(name.as_bytes())?;
        check_value(v)?;
        let r = self.stash(&[name.as_bytes(), b": ", v]);
        self.appended.push(r);
        Ok(self)
    }

    /// Removes every header with this name; returns how many.
    pub fn remove(&mut self, name: &str) -> usize {
        let idx: Vec<usize> = self.msg.headers_named(name).map(|h| h.index).collect();
        for &i in &idx {
            self.set_op(i, Op::Remove);
        }
        idx.len()
    }

    /// Removes the header at `index` (see [`super::HeaderField::index`]).
    pub fn remove_at(&mut self, index: usize) -> &mut Self {
        if index < self.msg.header_count() {
            self.set_op(index, Op::Remove);
        }
        self
    }

    /// Replaces the value of the header at `index`, keeping its raw name.
    pub fn replace_at(
        &mut self,
        index: usize,
        value: impl AsRef<[u8]>,
    ) -> Result<&mut Self, BuildError> {
        let v = value.as_ref();
        check_value(v)?;
        if index < self.msg.header_count() {
            let name = self.msg.field(index).raw_name;
            let r = self.stash(&[name, b": ", v]);
            self.set_op(index, Op::Replace(r));
        }
        Ok(self)
    }

    /// Sets a header: the first line with this name gets the new value (in
    /// place), the others are removed; appended if there was none.
    pub fn replace(
        &mut self,
        name: &str,
        value: impl AsRef<[u8]>,
    ) -> Result<&mut Self, BuildError> {
        let v = value.as_ref();
        check_name(name.as_bytes())?;
        check_value(v)?;
        let q = HeaderName::parse(name);
        let mut first = true;
        for i in 0..self.msg.header_count() {
            let h = self.msg.field(i);
            if name_matches(h.name, h.raw_name, q, name.as_bytes()) {
                if first {
                    let r = self.stash(&[name.as_bytes(), b": ", v]);
                    self.set_op(i, Op::Replace(r));
                    first = false;
                } else {
                    self.set_op(i, Op::Remove);
                }
            }
        }
        if first {
            self.append_header(name, v)?;
        }
        Ok(self)
    }

    /// Replaces the body; with `Some(content_type)` the Content-Type is set,
    /// with `None` and an empty body Content-Type is removed.
    pub fn set_body(
        &mut self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<&mut Self, BuildError> {
        match content_type {
            Some(ct) => {
                self.replace("Content-Type", ct)?;
            }
            None if body.is_empty() => {
                self.remove("Content-Type");
            }
            None => {}
        }
        let b = self.stash(&[body]);
        self.body = Some((None, b));
        Ok(self)
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.render_into(&mut out);
        out
    }

    pub fn render_into(&self, out: &mut Vec<u8>) {
        let msg = self.msg;
        let body: &[u8] = match &self.body {
            Some((_, r)) => &self.scratch[r.clone()],
            None => msg.body(),
        };
        out.reserve(msg.as_bytes().len() + self.scratch.len() + 32);
        match (&self.request_uri, msg.start) {
            (
                Some(r),
                StartLine::Request {
                    method, version, ..
                },
            ) => {
                out.extend_from_slice(msg.slice(method));
                out.push(b' ');
                out.extend_from_slice(&self.scratch[r.clone()]);
                out.push(b' ');
                out.extend_from_slice(msg.slice(version));
            }
            _ => out.extend_from_slice(msg.start_line()),
        }
        out.extend_from_slice(b"\r\n");
        for r in self.prepended.iter().rev() {
            out.extend_from_slice(&self.scratch[r.clone()]);
            out.extend_from_slice(b"\r\n");
        }
        let mut via_pending = self.remove_top_via;
        let mut cl_done = false;
        let unchanged_body = self.body.is_none();
        for i in 0..msg.header_count() {
            let h = msg.field(i);
            let op = self.ops.get(i).unwrap_or(&Op::Keep);
            if h.name == HeaderName::ContentLength {
                if !cl_done {
                    cl_done = true;
                    if unchanged_body && msg.content_length() == Some(body.len() as u32) {
                        out.extend_from_slice(h.line);
                        out.extend_from_slice(b"\r\n");
                    } else {
                        push_content_length(out, h.raw_name, body.len());
                    }
                }
                continue;
            }
            match op {
                Op::Remove => continue,
                Op::Replace(r) => {
                    out.extend_from_slice(&self.scratch[r.clone()]);
                    out.extend_from_slice(b"\r\n");
                    continue;
                }
                Op::Keep => {}
            }
            if via_pending && h.name == HeaderName::Via {
                via_pending = false;
                let mut split = CommaSplit::new(h.value);
                split.next();
                let rest = split.remainder();
                if !rest.is_empty() {
                    push_header(out, h.raw_name, rest);
                }
                continue;
            }
            out.extend_from_slice(h.line);
            out.extend_from_slice(b"\r\n");
        }
        for r in &self.appended {
            out.extend_from_slice(&self.scratch[r.clone()]);
            out.extend_from_slice(b"\r\n");
        }
        if !cl_done {
            push_content_length(out, b"Content-Length", body.len());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::super::render::tests::{req, REQ};
    use super::super::{parse_datagram, Limits};
    use super::*;
    use bytes::Bytes;

    #[test]
    fn editing() {
        let r = req();
        let mut e = Editor::new(&r);
        e.prepend_via("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp")
            .unwrap();
        e.replace("Max-Forwards", "69").unwrap();
        e.set_request_uri("sip:bob@192.0.2.4:5080").unwrap();
        e.append_header("X-Added", "yes").unwrap();
        e.remove("record-route");
        e.set_body(Some("text/plain"), b"hello world").unwrap();
        let mut m = parse_datagram(Bytes::from(e.render()), &Limits::default()).unwrap();
        m.validate().unwrap();
        assert_eq!(m.request_uri_raw(), Some(&b"sip:bob@192.0.2.4:5080"[..]));
        let hosts: Vec<Vec<u8>> = m.vias().map(|v| v.unwrap().host().raw().to_vec()).collect();
        assert_eq!(hosts[0], b"proxy.example.com");
        assert_eq!(hosts.len(), 4);
        assert_eq!(m.max_forwards(), Ok(Some(69)));
        assert_eq!(m.count(HeaderName::RecordRoute), 0);
        assert_eq!(m.body(), b"hello world");
        assert_eq!(m.header("l").unwrap().raw_name, b"l");
        assert!(m.content_type().unwrap().unwrap().is("text/plain"));
        assert_eq!(m.header_value("X-Unknown"), Some(&b"\x01\xff bytes"[..]));
        assert_eq!(m.header_value("X-Added"), Some(&b"yes"[..]));

        // Response forwarding: drop the top Via value only.
        let mut e = Editor::new(&r);
        e.remove_top_via();
        let m = parse_datagram(Bytes::from(e.render()), &Limits::default()).unwrap();
        let hosts: Vec<Vec<u8>> = m.vias().map(|v| v.unwrap().host().raw().to_vec()).collect();
        assert_eq!(
            hosts,
            vec![b"b.example.com".to_vec(), b"c.example.com".to_vec()]
        );

        // No edits: byte-identical.
        assert_eq!(Editor::new(&r).render(), REQ);
    }
}
