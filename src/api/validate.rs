//! Field checks shared by the resource modules; each error names the field.

use super::problem::ApiError;

pub fn invalid(field: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable(format!("{field}: {problem}"))
}

/// A human-chosen name: 1 to 128 printable characters.
pub fn name(field: &str, v: &str) -> Result<(), ApiError> {
    if v.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if v.chars().count() > 128 {
        return Err(invalid(field, "must be at most 128 characters"));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// An ISO 4217 currency code: three capital letters.
pub fn currency(field: &str, v: &str) -> Result<(), ApiError> {
    if v.len() == 3 && v.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("'{v}' is not an ISO 4217 code such as EUR"),
        ))
    }
}

/// A SIP user name as it may appear unescaped in a SIP URI user part
/// (RFC 3261 §25.1 `unreserved` and `user-unreserved`).
pub fn sip_username(field: &str, v: &str) -> Result<(), ApiError> {
    if v.is_empty() || v.len() > 64 {
        return Err(invalid(field, "must be 1 to 64 characters"));
    }
    let ok = v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b));
    if !ok {
        return Err(invalid(
            field,
            format!("'{v}' has characters not allowed in a SIP user part (letters, digits and -_.!~*'()&=+$,;?/)"),
        ));
    }
    Ok(())
}

/// A SIP password for digest authentication.
pub fn sip_password(field: &str, v: &str) -> Result<(), ApiError> {
    if v.chars().count() < 8 {
        return Err(invalid(field, "must be at least 8 characters"));
    }
    if v.len() > 256 {
        return Err(invalid(field, "must be at most 256 bytes"));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A SIP header name (RFC 3261 §25.1 token).
pub fn header_name(field: &str, v: &str) -> Result<(), ApiError> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(field, format!("'{v}' is not a header name")))
    }
}

/// A header value we will put on the wire: printable, no line breaks.
pub fn header_value(field: &str, v: &str) -> Result<(), ApiError> {
    if v.chars().any(|c| c.is_control() && c != '\t') {
        Err(invalid(
            field,
            "must not contain line breaks or control characters",
        ))
    } else if v.len() > 1024 {
        Err(invalid(field, "must be at most 1024 bytes"))
    } else {
        Ok(())
    }
}

/// A SIP or SIPS URI naming a host, the target of inquiries:
/// `sip:host[:port][;params]` (RFC 3261 §19.1.1). Hosts are names, IPv4
/// addresses or bracketed IPv6 references.
pub fn sip_uri(field: &str, v: &str) -> Result<(), ApiError> {
    let bad = |why: &str| invalid(field, format!("'{v}' is not a usable SIP URI: {why}"));
    let rest = v
        .strip_prefix("sip:")
        .or_else(|| v.strip_prefix("sips:"))
        .ok_or_else(|| bad("it must start with sip: or sips:"))?;
    if rest
        .contains(|c: char| c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == '"')
    {
        return Err(bad("it contains spaces, quotes or angle brackets"));
    }
    let hostport = rest.split(';').next().unwrap_or_default();
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
        let (ip, tail) = after
            .split_once(']')
            .ok_or_else(|| bad("unclosed IPv6 reference"))?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad("bad IPv6 address"))?;
        (ip, tail.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
    {
        return Err(bad("missing or malformed host"));
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(bad("port must be 1 to 65535")),
        }
    }
    Ok(())
}
