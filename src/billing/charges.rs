//! Application charges (SPEC §4, §5): checking what an app server asks to
//! charge, and turning it into the charge to record.
//!
//! Two doors lead here: `POST /v1/charges` and a SIP INFO the app server
//! sends within the session (RFC 6086 lets INFO carry an application
//! body). Both send the same JSON object
//! `{"amount": "0.50", "currency": "EUR", "description": "…",
//! "idempotency_key": "…"}` (over REST with `session_id` too, which in SIP
//! the dialog gives), and both get the same verdict from the pure functions
//! below: no I/O, so the SIP path can call them without waiting on the
//! database. The reasons are written for the sender: a REST problem
//! `detail`, or the reason phrase of a SIP 400/415.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::store::charges::NewCharge;
use crate::store::{new_id, Money, Timestamp};

/// Longest description kept, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 256;
/// Longest idempotency key, in bytes (visible ASCII only).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;
/// Amounts must stay below this: NUMERIC(24, 6) holds 18 integer digits.
const AMOUNT_LIMIT: i64 = 1_000_000_000_000_000_000;
/// Longest session id accepted in a REST body.
const MAX_SESSION_ID_BYTES: usize = 128;

const FIELDS: &str = "amount, currency, description, idempotency_key";
const REST_FIELDS: &str = "session_id, amount, currency, description, idempotency_key";

/// A charge request that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// Greater than 0, at most 6 decimal places.
    pub amount: Money,
    /// ISO 4217 code, three capital letters.
    pub currency: String,
    pub description: Option<String>,
    pub idempotency_key: String,
}

/// Why a charge request was refused; `reason()` says exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChargeRejection {
    /// The body is not declared as JSON (SIP 415, REST 415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is not JSON at all (SIP 400, REST 400).
    #[error("{0}")]
    Malformed(String),
    /// Valid JSON, but a field is missing, unknown, mistyped or out of
    /// range (SIP 400, REST 422).
    #[error("{0}")]
    Invalid(String),
}

impl ChargeRejection {
    pub fn reason(&self) -> &str {
        match self {
            Self::UnsupportedMediaType(r) | Self::Malformed(r) | Self::Invalid(r) => r,
        }
    }

    /// The SIP status to answer the INFO with: 415 for a body type we do
    /// not take (RFC 3261 §21.4.13, with an Accept header listing
    /// `application/json`), else 400.
    pub fn sip_status(&self) -> u16 {
        match self {
            Self::UnsupportedMediaType(_) => 415,
            Self::Malformed(_) | Self::Invalid(_) => 400,
        }
    }
}

/// The source of a charge, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeSource {
    Rest,
    Sip,
}

impl ChargeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rest => "rest",
            Self::Sip => "sip",
        }
    }
}

/// The session a charge is for, as the caller knows it (the sessions table
/// over REST, the relay's own session in SIP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeSession {
    pub session_id: String,
    pub app_server_id: Option<String>,
    pub client_id: Option<String>,
    pub service_id: Option<String>,
}

impl From<&crate::store::sessions::SessionRecord> for ChargeSession {
    fn from(s: &crate::store::sessions::SessionRecord) -> Self {
        Self {
            session_id: s.id.clone(),
            app_server_id: s.app_server_id.clone(),
            client_id: s.client_id.clone(),
            service_id: s.service_id.clone(),
        }
    }
}

/// Whether a `Content-Type` value names JSON (`application/json` or an
/// `application/…+json` type, parameters ignored).
pub fn is_json_media_type(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Checks the body of a SIP INFO charge. The session is the dialog's, so
/// the body names none.
pub fn parse_sip_charge(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<ChargeRequest, ChargeRejection> {
    if !content_type.is_some_and(is_json_media_type) {
        return Err(ChargeRejection::UnsupportedMediaType(
            "a charge must be sent as Content-Type: application/json".into(),
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ChargeRejection::Malformed(format!("the body is not valid JSON: {e}")))?;
    let object = as_object(&value)?;
    only_known_fields(
        object,
        &["amount", "currency", "description", "idempotency_key"],
        FIELDS,
    )?;
    charge_fields(object)
}

/// Checks a `POST /v1/charges` body (already parsed as JSON): the charge
/// and the id of the session it is for.
pub fn parse_rest_charge(value: &Value) -> Result<(String, ChargeRequest), ChargeRejection> {
    let object = as_object(value)?;
    only_known_fields(
        object,
        &[
            "session_id",
            "amount",
            "currency",
            "description",
            "idempotency_key",
        ],
        REST_FIELDS,
    )?;
    let session_id = match object.get("session_id") {
        None | Some(Value::Null) => return Err(invalid("session_id", "missing")),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(invalid("session_id", "must not be empty"))
        }
        Some(Value::String(s)) if s.len() > MAX_SESSION_ID_BYTES => {
            return Err(invalid("session_id", "is longer than any session id"))
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(invalid(
                "session_id",
                format!("must be a string, not {}", kind(other)),
            ))
        }
    };
    Ok((session_id, charge_fields(object)?))
}

impl ChargeRequest {
    /// The charge to record on `session`, made now by `source`.
    pub fn to_charge(
        &self,
        session: &ChargeSession,
        source: ChargeSource,
        created_at: Timestamp,
    ) -> NewCharge {
        NewCharge {
            id: new_id(),
            session_id: session.session_id.clone(),
            app_server_id: session.app_server_id.clone(),
            client_id: session.client_id.clone(),
            service_id: session.service_id.clone(),
            amount: self.amount,
            currency: self.currency.clone(),
            description: self.description.clone(),
            idempotency_key: self.idempotency_key.clone(),
            request_hash: self.request_hash(&session.session_id),
            source: source.as_str().into(),
            created_at,
        }
    }

    /// SHA-256 over what a replay must repeat: session, amount (canonical,
    /// so "0.50" and "0.5" are the same), currency and description. Each
    /// field is length-prefixed so no two requests share an encoding.
    pub fn request_hash(&self, session_id: &str) -> String {
        let mut h = Sha256::new();
        let amount = self.amount.0.normalize().to_string();
        let description = self.description.as_deref();
        for field in [
            Some(session_id),
            Some(amount.as_str()),
            Some(self.currency.as_str()),
            description,
        ] {
            match field {
                Some(f) => {
                    h.update([1u8]);
                    h.update((f.len() as u64).to_be_bytes());
                    h.update(f.as_bytes());
                }
                None => h.update([0u8]),
            }
        }
        hex::encode(h.finalize())
    }
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> ChargeRejection {
    ChargeRejection::Invalid(format!("{field}: {problem}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn as_object(value: &Value) -> Result<&Map<String, Value>, ChargeRejection> {
    value.as_object().ok_or_else(|| {
        ChargeRejection::Invalid(format!(
            "the body must be a JSON object, not {}",
            kind(value)
        ))
    })
}

fn only_known_fields(
    object: &Map<String, Value>,
    known: &[&str],
    listed: &str,
) -> Result<(), ChargeRejection> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(ChargeRejection::Invalid(format!(
            "unknown field `{unknown}`, expected one of {listed}"
        ))),
        None => Ok(()),
    }
}

fn charge_fields(object: &Map<String, Value>) -> Result<ChargeRequest, ChargeRejection> {
    Ok(ChargeRequest {
        amount: amount(object.get("amount"))?,
        currency: currency(object.get("currency"))?,
        description: description(object.get("description"))?,
        idempotency_key: idempotency_key(object.get("idempotency_key"))?,
    })
}

fn amount(v: Option<&Value>) -> Result<Money, ChargeRejection> {
    let text = match v {
        None | Some(Value::Null) => {
            return Err(invalid(
                "amount",
                "missing; give a decimal string such as \"0.50\"",
            ))
        }
        Some(Value::Number(n)) => {
            return Err(invalid(
                "amount",
                format!("must be a decimal string such as \"0.50\", not the JSON number {n}: JSON numbers are read as floating point, which cannot hold money exactly"),
            ))
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(invalid(
                "amount",
                format!(
                    "must be a decimal string such as \"0.50\", not {}",
                    kind(other)
                ),
            ))
        }
    };
    let money = Money::parse(text).map_err(|e| invalid("amount", e))?;
    if money.0.is_sign_negative() || money.0.is_zero() {
        return Err(invalid(
            "amount",
            format!("must be greater than 0 (got {text})"),
        ));
    }
    if money.0 >= rust_decimal::Decimal::from(AMOUNT_LIMIT) {
        return Err(invalid(
            "amount",
            format!("must be less than {AMOUNT_LIMIT}"),
        ));
    }
    Ok(money)
}

fn currency(v: Option<&Value>) -> Result<String, ChargeRejection> {
    match v {
        None | Some(Value::Null) => Err(invalid(
            "currency",
            "missing; give an ISO 4217 code such as EUR",
        )),
        Some(Value::String(c)) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => {
            Ok(c.clone())
        }
        Some(Value::String(c)) => Err(invalid(
            "currency",
            format!("'{c}' is not an ISO 4217 code such as EUR (three capital letters)"),
        )),
        Some(other) => Err(invalid(
            "currency",
            format!("must be a string such as \"EUR\", not {}", kind(other)),
        )),
    }
}

fn description(v: Option<&Value>) -> Result<Option<String>, ChargeRejection> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(d)) if d.trim().is_empty() => Err(invalid(
            "description",
            "must not be blank; leave it out instead",
        )),
        Some(Value::String(d)) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        )),
        Some(Value::String(d)) if d.chars().any(char::is_control) => Err(invalid(
            "description",
            "must not contain line breaks or control characters",
        )),
        Some(Value::String(d)) => Ok(Some(d.clone())),
        Some(other) => Err(invalid(
            "description",
            format!("must be a string, not {}", kind(other)),
        )),
    }
}

fn idempotency_key(v: Option<&Value>) -> Result<String, ChargeRejection> {
    match v {
        None | Some(Value::Null) => Err(invalid(
            "idempotency_key",
            "missing; give a key unique to this charge, so that sending it again cannot charge twice",
        )),
        Some(Value::String(k)) if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY_BYTES => Err(invalid(
            "idempotency_key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} characters"),
        )),
        Some(Value::String(k)) if !k.bytes().all(|b| b.is_ascii_graphic()) => Err(invalid(
            "idempotency_key",
            "must be visible ASCII characters only (no spaces)",
        )),
        Some(Value::String(k)) => Ok(k.clone()),
        Some(other) => Err(invalid(
            "idempotency_key",
            format!("must be a string, not {}", kind(other)),
        )),
    }
}

#[cfg(test)]
mod tests;
