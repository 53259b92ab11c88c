//! `;name[=value]` parameter lists.
//!
//! Two grammars share this code:
//! * header parameters (`generic-param`, RFC 3261 §25.1): `SEMI token
//!   [EQUAL gen-value]` where SEMI/EQUAL allow surrounding LWS and gen-value is
//!   a token, a host (IPv6 `received=` values contain ':', RFC 5118 §4.5) or a
//!   quoted-string;
//! * URI parameters (RFC 3261 §19.1.1): no white space, `paramchar` bytes with
//!   %-escapes, escapes left encoded (decode on demand with
//!   [`super::uri::unescape`]).
//!
//! A list is validated once when the owning header is parsed; iteration after
//! that is infallible.

use super::scan::{self, is, is_ws, quoted_end, skip_ws, take_while, PARAM_UNRES, UNRESERVED};
use super::views::Rel;
use std::borrow::Cow;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Mode {
    #[default]
    Header,
    Uri,
}

/// One parameter. `value` is raw: quotes kept for quoted-strings, escapes
/// kept for URI parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a [u8],
    pub value: Option<&'a [u8]>,
}

impl<'a> Param<'a> {
    /// Value without surrounding quotes / quoted-pair escapes.
    pub fn value_unquoted(&self) -> Option<Cow<'a, [u8]>> {
        self.value.map(scan::unquote)
    }
}

/// A validated parameter list (raw bytes start at the first `;`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a [u8],
    mode: Mode,
}

impl<'a> Params<'a> {
    /// Validates `raw` as a complete list of the given grammar.
    pub(crate) fn parse(raw: &'a [u8], mode: Mode) -> Result<Params<'a>, ()> {
        Self::parse_checked(raw, mode, |_| Ok(()))
    }

    /// [`Params::parse`] that also hands each parameter to `check` as it
    /// is found, so a header with typed parameters is walked once.
    pub(crate) fn parse_checked(
        raw: &'a [u8],
        mode: Mode,
        mut check: impl FnMut(Param<'a>) -> Result<(), ()>,
    ) -> Result<Params<'a>, ()> {
        let mut i = 0;
        while let Some((p, next)) = next_param(raw, i, mode)? {
            check(p)?;
            i = next;
        }
        Ok(Params { raw, mode })
    }

    /// The raw text, starting with `;` (or empty).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            s: self.raw,
            i: 0,
            mode: self.mode,
        }
    }

    /// Looks a parameter up by name (case-insensitive, RFC 3261 §19.1.4 /
    /// §7.3.1). `Some(None)` for a parameter present without a value.
    pub fn get(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.iter()
            .find(|p| scan::eq_ic(p.name, name.as_bytes()))
            .map(|p| p.value)
    }

    /// The parameter's value with quotes removed; `None` if absent or
    /// valueless.
    pub fn get_value(&self, name: &str) -> Option<Cow<'a, [u8]>> {
        self.get(name).flatten().map(scan::unquote)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// [`Params`] kept by offsets (see `views`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ParamsAt {
    raw: Rel,
    mode: Mode,
}

impl<'a> Params<'a> {
    pub(crate) fn keep_in(&self, base: &[u8]) -> Option<ParamsAt> {
        Some(ParamsAt {
            raw: Rel::of(base, self.raw)?,
            mode: self.mode,
        })
    }

    pub(crate) fn load_in(at: &ParamsAt, base: &'a [u8]) -> Option<Params<'a>> {
        Some(Params {
            raw: at.raw.get(base)?,
            mode: at.mode,
        })
    }
}

impl<'a> IntoIterator for Params<'a> {
    type Item = Param<'a>;
    type IntoIter = ParamIter<'a>;
    fn into_iter(self) -> ParamIter<'a> {
        self.iter()
    }
}

#[derive(Clone, Debug)]
pub struct ParamIter<'a> {
    s: &'a [u8],
    i: usize,
    mode: Mode,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Param<'a>;
    fn next(&mut self) -> Option<Param<'a>> {
        // The list was validated by `Params::parse`, so errors cannot occur.
        match next_param(self.s, self.i, self.mode) {
            Ok(Some((p, next))) => {
                self.i = next;
                Some(p)
            }
            _ => None,
        }
    }
}

#[inline]
fn is_paramchar(b: u8) -> bool {
    is(b, UNRESERVED | PARAM_UNRES)
}

/// Consumes `class` bytes and %HH escapes from `i`; an invalid escape is an
/// error (RFC 3261 §25.1 `escaped = "%" HEXDIG HEXDIG`).
pub(crate) fn take_escaped(s: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> Result<usize, ()> {
    while i < s.len() {
        let b = s[i];
        if b == b'%' {
            if i + 2 < s.len() && s[i + 1].is_ascii_hexdigit() && s[i + 2].is_ascii_hexdigit() {
                i += 3;
                continue;
            }
            return Err(());
        }
        if !f(b) {
            break;
        }
        i += 1;
    }
    Ok(i)
}

/// Header-parameter value chars: token plus what a `host` may contain
/// (':' '[' ']' for IPv6).
#[inline]
fn is_gen_value(b: u8) -> bool {
    scan::is_token(b) || matches!(b, b':' | b'[' | b']')
}

type Step<'a> = Result<Option<(Param<'a>, usize)>, ()>;

fn next_param(s: &[u8], i: usize, mode: Mode) -> Step<'_> {
    match mode {
        Mode::Header => next_header_param(s, i),
        Mode::Uri => next_uri_param(s, i),
    }
}

fn next_header_param(s: &[u8], i: usize) -> Step<'_> {
    let mut i = skip_ws(s, i);
    if i == s.len() {
        return Ok(None);
    }
    if s[i] != b';' {
        return Err(());
    }
    i = skip_ws(s, i + 1);
    let name_end = take_while(s, i, scan::is_token);
    if name_end == i {
        return Err(()); // ";;" or ";=" (RFC 4475 badinv01)
    }
    let name = &s[i..name_end];
    let j = skip_ws(s, name_end);
    if j < s.len() && s[j] == b'=' {
        let v = skip_ws(s, j + 1);
        if v == s.len() {
            return Err(());
        }
        let end = if s[v] == b'"' {
            quoted_end(s, v).ok_or(())?
        } else {
            take_while(s, v, is_gen_value)
        };
        if end == v {
            return Err(());
        }
        Ok(Some((
            Param {
                name,
                value: Some(&s[v..end]),
            },
            end,
        )))
    } else {
        Ok(Some((Param { name, value: None }, name_end)))
    }
}

fn next_uri_param(s: &[u8], i: usize) -> Step<'_> {
    if i == s.len() {
        return Ok(None);
    }
    if s[i] != b';' || s.get(i + 1).is_some_and(|&b| is_ws(b)) {
        return Err(());
    }
    let start = i + 1;
    let name_end = take_escaped(s, start, is_paramchar)?;
    if name_end == start {
        return Err(());
    }
    let name = &s[start..name_end];
    if name_end < s.len() && s[name_end] == b'=' {
        let v = name_end + 1;
        let end = take_escaped(s, v, is_paramchar)?;
        if end == v {
            return Err(());
        }
        if end < s.len() && s[end] != b';' {
            return Err(());
        }
        Ok(Some((
            Param {
                name,
                value: Some(&s[v..end]),
            },
            end,
        )))
    } else if name_end < s.len() && s[name_end] != b';' {
        Err(())
    } else {
        Ok(Some((Param { name, value: None }, name_end)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_params() {
        let p = Params::parse(b" ;   tag    = 1918181833n", Mode::Header).unwrap();
        assert_eq!(p.get("TAG"), Some(Some(&b"1918181833n"[..])));
        let p = Params::parse(
            b";branch=\r\n z9hG4bK30239;rport;received=2001:db8::9",
            Mode::Header,
        )
        .unwrap();
        assert_eq!(p.get("branch"), Some(Some(&b"z9hG4bK30239"[..])));
        assert_eq!(p.get("rport"), Some(None));
        assert_eq!(p.get("received"), Some(Some(&b"2001:db8::9"[..])));
        let p = Params::parse(br#";x="a;b\"c";y"#, Mode::Header).unwrap();
        assert_eq!(&*p.get_value("x").unwrap(), b"a;b\"c");
        assert!(Params::parse(b";;", Mode::Header).is_err());
        assert!(Params::parse(b";a=", Mode::Header).is_err());
        assert!(Params::parse(b";a=\"x", Mode::Header).is_err());
        assert!(Params::parse(b"x", Mode::Header).is_err());
    }

    #[test]
    fn uri_params() {
        let p = Params::parse(b";%6C%72;n%61me=v%61lue%25%34%31;lr", Mode::Uri).unwrap();
        let v: Vec<_> = p.iter().map(|p| p.name).collect();
        assert_eq!(v, vec![&b"%6C%72"[..], b"n%61me", b"lr"]);
        assert!(Params::parse(b"; lr", Mode::Uri).is_err());
        assert!(Params::parse(b";a%zz", Mode::Uri).is_err());
        assert!(Params::parse(b";a=", Mode::Uri).is_err());
    }
}
