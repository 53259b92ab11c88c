//! Header names: case-insensitive matching and compact forms.
//!
//! RFC 3261 §7.3.1: field names are case-insensitive. §7.3.3 defines compact
//! forms, which must be accepted wherever the long name is; others come from
//! the IANA registry (RFC 3265 `o`/`u`, RFC 3515 `r`, RFC 3892 `b`,
//! RFC 3841 `a`/`j`/`d`, RFC 4028 `x`, RFC 4474 `y`/`n`). Classifying once at
//! split time lets every lookup by a known name compare one byte instead of
//! strings, and makes a lookup by "Call-ID" find an `i:` line.

use super::scan::eq_ic;

macro_rules! header_names {
    ($( $var:ident => $canon:literal $(, $compact:literal)? ;)*) => {
        /// A header name classified at parse time. `Other` is any header this
        /// layer does not know; its raw name stays available from the
        /// [`super::HeaderField`] and it is relayed byte-exact.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $var, )*
            Other,
        }

        impl HeaderName {
            /// Canonical spelling (as RFC 3261 §20 writes it).
            pub fn as_str(&self) -> &'static str {
                match self {
                    $( HeaderName::$var => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// The compact form, if the header has one.
            pub fn compact(&self) -> Option<u8> {
                match self {
                    $( $( HeaderName::$var => Some($compact), )? )*
                    _ => None,
                }
            }

            fn from_compact(c: u8) -> HeaderName {
                match c.to_ascii_lowercase() {
                    $( $( $compact => HeaderName::$var, )? )*
                    _ => HeaderName::Other,
                }
            }

            const ALL: &'static [(&'static [u8], HeaderName)] = &[
                $( ($canon.as_bytes(), HeaderName::$var), )*
            ];
        }
    };
}

header_names! {
    Accept => "Accept";
    AcceptContact => "Accept-Contact", b'a';
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    AlertInfo => "Alert-Info";
    Allow => "Allow";
    AllowEvents => "Allow-Events", b'u';
    AuthenticationInfo => "Authentication-Info";
    Authorization => "Authorization";
    CallId => "Call-ID", b'i';
    CallInfo => "Call-Info";
    Contact => "Contact", b'm';
    ContentDisposition => "Content-Disposition";
    ContentEncoding => "Content-Encoding", b'e';
    ContentLanguage => "Content-Language";
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    CSeq => "CSeq";
    Date => "Date";
    ErrorInfo => "Error-Info";
    Event => "Event", b'o';
    Expires => "Expires";
    From => "From", b'f';
    Identity => "Identity", b'y';
    IdentityInfo => "Identity-Info", b'n';
    InReplyTo => "In-Reply-To";
    MaxForwards => "Max-Forwards";
    MimeVersion => "MIME-Version";
    MinExpires => "Min-Expires";
    MinSe => "Min-SE";
    Organization => "Organization";
    PAssertedIdentity => "P-Asserted-Identity";
    PPreferredIdentity => "P-Preferred-Identity";
    Path => "Path";
    Priority => "Priority";
    Privacy => "Privacy";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyRequire => "Proxy-Require";
    RAck => "RAck";
    Reason => "Reason";
    RecordRoute => "Record-Route";
    ReferTo => "Refer-To", b'r';
    ReferredBy => "Referred-By", b'b';
    RejectContact => "Reject-Contact", b'j';
    Replaces => "Replaces";
    ReplyTo => "Reply-To";
    RequestDisposition => "Request-Disposition", b'd';
    Require => "Require";
    RetryAfter => "Retry-After";
    Route => "Route";
    RSeq => "RSeq";
    Server => "Server";
    SessionExpires => "Session-Expires", b'x';
    Subject => "Subject", b's';
    Supported => "Supported", b'k';
    Timestamp => "Timestamp";
    To => "To", b't';
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Via => "Via", b'v';
    Warning => "Warning";
    WwwAuthenticate => "WWW-Authenticate";
}

impl HeaderName {
    /// Classifies a raw header name: case-insensitive, compact forms mapped
    /// to their long form. Unknown names give [`HeaderName::Other`].
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        match name.len() {
            0 => HeaderName::Other,
            1 => HeaderName::from_compact(name[0]),
            _ => {
                // Bucket by first letter, then compare: the exact spelling
                // of RFC 3261 §20 first, as nearly every peer sends it (no
                // case folding, no UTF-8 check), then case-folded.
                let bucket = Self::bucket(name[0].to_ascii_lowercase());
                if let Some(&(_, h)) = bucket.iter().find(|(canon, _)| *canon == name) {
                    return h;
                }
                for &(canon, h) in bucket {
                    if canon.len() == name.len() && eq_ic(canon, name) {
                        return h;
                    }
                }
                HeaderName::Other
            }
        }
    }

    fn bucket(first: u8) -> &'static [(&'static [u8], HeaderName)] {
        // ALL is sorted alphabetically by the macro invocation above, so
        // each first letter is a contiguous run; a const index finds it.
        const fn build_index() -> [(u8, u8); 26] {
            let mut t = [(0u8, 0u8); 26];
            let mut i = 0;
            while i < HeaderName::ALL.len() {
                let c = (HeaderName::ALL[i].0[0].to_ascii_lowercase() - b'a') as usize;
                if t[c].1 == 0 {
                    t[c].0 = i as u8;
                }
                t[c].1 += 1;
                i += 1;
            }
            t
        }
        const INDEX: [(u8, u8); 26] = build_index();
        let idx = &INDEX;
        if !first.is_ascii_lowercase() {
            return &[];
        }
        let (start, n) = idx[(first - b'a') as usize];
        &Self::ALL[start as usize..start as usize + n as usize]
    }

    /// Resolves a name given as text by a caller ("call-id", "i", "Via").
    pub fn parse(name: &str) -> HeaderName {
        HeaderName::from_bytes(name.as_bytes())
    }

    /// Headers that must appear at most once in a request (RFC 3261 §7.3.1:
    /// not comma-list headers; RFC 4475 multi01).
    pub fn is_single(&self) -> bool {
        matches!(
            self,
            HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::From
                | HeaderName::To
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::Expires
        )
    }
}

impl std::fmt::Display for HeaderName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"V"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"cALL-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"I"), HeaderName::CallId);
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_bytes(b"C%6Fntact"), HeaderName::Other);
        assert_eq!(
            HeaderName::from_bytes(b"www-authenticate"),
            HeaderName::WwwAuthenticate
        );
        assert_eq!(HeaderName::from_bytes(b"Xyz"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"1"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"-x"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"Vi\xffa"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"Via "), HeaderName::Other);
        for &(n, h) in HeaderName::ALL {
            assert_eq!(HeaderName::from_bytes(n), h);
            assert_eq!(HeaderName::from_bytes(&n.to_ascii_lowercase()), h);
            assert_eq!(HeaderName::from_bytes(&n.to_ascii_uppercase()), h);
            if let Some(c) = h.compact() {
                assert_eq!(HeaderName::from_bytes(&[c]), h);
            }
        }
        // ALL must be sorted by first letter for the bucket index.
        let firsts: Vec<u8> = HeaderName::ALL
            .iter()
            .map(|(n, _)| n[0].to_ascii_lowercase())
            .collect();
        let mut sorted = firsts.clone();
        sorted.sort();
        assert_eq!(firsts, sorted);
    }
}
