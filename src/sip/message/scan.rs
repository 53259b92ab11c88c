//! Byte-level lexical helpers shared by every header parser.
//!
//! Character classes follow the ABNF of RFC 3261 §25.1. They are kept in one
//! 256-entry table so that a class test is a single load + mask, which matters
//! because the relay scans every byte of every message it receives.

/// `token` (RFC 3261 §25.1): alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"
pub(crate) const TOKEN: u16 = 1;
/// `unreserved` = alphanum / mark (mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")")
pub(crate) const UNRESERVED: u16 = 1 << 1;
/// `user-unreserved` = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
pub(crate) const USER_UNRES: u16 = 1 << 2;
/// password extra chars: "&" / "=" / "+" / "$" / ","
pub(crate) const PASS_UNRES: u16 = 1 << 3;
/// `param-unreserved` = "[" / "]" / "/" / ":" / "&" / "+" / "$"
pub(crate) const PARAM_UNRES: u16 = 1 << 4;
/// `hnv-unreserved` = "[" / "]" / "/" / "?" / ":" / "+" / "$"
pub(crate) const HNV_UNRES: u16 = 1 << 5;
/// `word` (Call-ID): token chars plus "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}"
pub(crate) const WORD: u16 = 1 << 6;
/// hostname chars: alphanum / "-" / "." (plus "_", tolerated because real
/// deployments use it in SRV-style names)
pub(crate) const HOSTNAME: u16 = 1 << 7;
/// scheme chars after the first ALPHA: ALPHA / DIGIT / "+" / "-" / "."
pub(crate) const SCHEME: u16 = 1 << 8;

const fn build_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mut c = 0u16;
        if alnum
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            c |= TOKEN | WORD;
        }
        if alnum
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            )
        {
            c |= UNRESERVED;
        }
        if matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
            c |= USER_UNRES;
        }
        if matches!(b, b'&' | b'=' | b'+' | b'$' | b',') {
            c |= PASS_UNRES;
        }
        if matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            c |= PARAM_UNRES;
        }
        if matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$') {
            c |= HNV_UNRES;
        }
        if matches!(
            b,
            b'(' | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        ) {
            c |= WORD;
        }
        if alnum || matches!(b, b'-' | b'.' | b'_') {
            c |= HOSTNAME;
        }
        if alnum || matches!(b, b'+' | b'-' | b'.') {
            c |= SCHEME;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CLASS: [u16; 256] = build_table();

#[inline(always)]
pub(crate) fn is(b: u8, class: u16) -> bool {
    CLASS[b as usize] & class != 0
}

#[inline(always)]
pub(crate) fn is_token(b: u8) -> bool {
    is(b, TOKEN)
}

/// True if `s` is a non-empty `token`.
#[inline]
pub(crate) fn is_token_str(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

/// Linear white space inside a header value. CR and LF only ever occur in a
/// value as part of a fold (the line splitter guarantees it), and a fold is
/// equivalent to SP (RFC 3261 §7.3.1), so they count as white space here.
#[inline(always)]
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

#[inline]
pub(crate) fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_ws(s[i]) {
        i += 1;
    }
    i
}

#[inline]
pub(crate) fn trim_ws(s: &[u8]) -> &[u8] {
    let mut a = 0;
    let mut b = s.len();
    while a < b && is_ws(s[a]) {
        a += 1;
    }
    while b > a && is_ws(s[b - 1]) {
        b -= 1;
    }
    &s[a..b]
}

/// Index just past the run of `class` bytes starting at `i`.
#[inline]
pub(crate) fn take_while(s: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while i < s.len() && f(s[i]) {
        i += 1;
    }
    i
}

/// `s[i]` must be `"`. Returns the index just past the closing quote, honouring
/// quoted-pair escapes (RFC 3261 §25.1: `"\" (%x00-09 / %x0B-0C / %x0E-7F)`),
/// so `\"` does not close the string and any byte, NUL included, may follow a
/// backslash. `None` means the string is unterminated (RFC 4475 quotbal).
pub(crate) fn quoted_end(s: &[u8], i: usize) -> Option<usize> {
    debug_assert_eq!(s.get(i), Some(&b'"'));
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    None
}

/// Removes the surrounding quotes and quoted-pair backslashes of a
/// quoted-string. Input without quotes is returned unchanged (borrowed).
pub fn unquote(s: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    if s.len() < 2 || s[0] != b'"' || s[s.len() - 1] != b'"' {
        return Cow::Borrowed(s);
    }
    let inner = &s[1..s.len() - 1];
    if !inner.contains(&b'\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == b'\\' && i + 1 < inner.len() {
            i += 1;
        }
        out.push(inner[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// Splits a comma-list header value (RFC 3261 §7.3.1: a header field with
/// comma-separated values is equivalent to several header lines) at the
/// top-level commas only: commas inside a quoted-string (`"Bell, Alexander"`)
/// or inside `<...>` (a URI may carry commas in its user part or headers) do
/// not split. Elements are trimmed; empty elements are yielded so that
/// strict parsers (Via, RFC 4475 badinv01) can reject them.
#[derive(Clone, Debug)]
pub struct CommaSplit<'a> {
    s: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> CommaSplit<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        CommaSplit {
            s,
            pos: 0,
            done: false,
        }
    }

    /// The unsplit remainder after the elements yielded so far (trimmed;
    /// empty once exhausted).
    pub fn remainder(&self) -> &'a [u8] {
        if self.done {
            &[]
        } else {
            trim_ws(&self.s[self.pos..])
        }
    }
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.done {
            return None;
        }
        let s = self.s;
        let mut j = self.pos;
        // Jump from one byte that matters to the next: values are scanned
        // on every look at a header, and a byte loop cost ~500
        // instructions per Via.
        while let Some(k) = memchr::memchr3(b',', b'"', b'<', &s[j..]) {
            j += k;
            match s[j] {
                b'"' => match quoted_end(s, j) {
                    Some(e) => j = e,
                    // Unterminated quote: the rest is one (broken) element,
                    // the element parser reports it.
                    None => j = s.len(),
                },
                b'<' => match memchr::memchr(b'>', &s[j..]) {
                    Some(k) => j += k + 1,
                    None => j = s.len(),
                },
                _ => {
                    let item = trim_ws(&s[self.pos..j]);
                    self.pos = j + 1;
                    return Some(item);
                }
            }
        }
        self.done = true;
        Some(trim_ws(&s[self.pos..]))
    }
}

/// Parses a run of ASCII decimal digits as u64, `None` on empty input,
/// non-digits or overflow (RFC 4475 scalar02: never wrap around).
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Where `part` starts in `base`, when it lies wholly inside it (both
/// borrow one buffer). One subtraction and one comparison: a part before
/// the base wraps to an offset beyond it.
#[inline]
pub(crate) fn offset_in(base: &[u8], part: &[u8]) -> Option<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    (start <= base.len() && part.len() <= base.len() - start).then_some(start)
}

/// Case-insensitive ASCII comparison.
#[inline]
pub(crate) fn eq_ic(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_in_finds_only_parts_inside_the_base() {
        let buf = b"Via: SIP/2.0/UDP h";
        let base = &buf[5..];
        assert_eq!(offset_in(base, &base[8..11]), Some(8));
        assert_eq!(offset_in(base, &base[base.len()..]), Some(base.len()));
        assert_eq!(offset_in(base, &buf[..3]), None, "before the base");
        assert_eq!(offset_in(&base[..4], &base[2..6]), None, "past its end");
    }

    #[test]
    fn comma_split_respects_quotes_and_angles() {
        let v: Vec<&[u8]> =
            CommaSplit::new(b"\"a, b\" <sip:x,y@h>;p=1 , <sip:z> ,, last").collect();
        assert_eq!(
            v,
            vec![&b"\"a, b\" <sip:x,y@h>;p=1"[..], b"<sip:z>", b"", b"last"]
        );
    }

    #[test]
    fn comma_split_edge_cases() {
        let split = |s: &'static [u8]| CommaSplit::new(s).collect::<Vec<&[u8]>>();
        // A quoted comma, even after an escaped quote, does not split.
        assert_eq!(split(br#""a \", b", c"#), vec![&br#""a \", b""#[..], b"c"]);
        // Unterminated quote or angle: the rest is one element.
        assert_eq!(split(b"a, \"b, c"), vec![&b"a"[..], b"\"b, c"]);
        assert_eq!(split(b"<sip:a, b"), vec![&b"<sip:a, b"[..]]);
        // Leading, trailing and only commas give empty elements.
        assert_eq!(split(b",a,"), vec![&b""[..], b"a", b""]);
        assert_eq!(split(b""), vec![&b""[..]]);
        // Angles and quotes next to each other.
        assert_eq!(
            split(b"\"x>\" <sip:y,z>,<sip:w>"),
            vec![&b"\"x>\" <sip:y,z>"[..], b"<sip:w>"]
        );
    }

    #[test]
    fn quoted_pairs() {
        let s = br#""a \" b \\" x"#;
        assert_eq!(quoted_end(s, 0), Some(11));
        assert_eq!(quoted_end(b"\"abc", 0), None);
        assert_eq!(&*unquote(br#""a\"b""#), b"a\"b");
    }

    #[test]
    fn u64_overflow() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
    }
}
