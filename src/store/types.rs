//! Column types that mean the same on both engines.
//!
//! PostgreSQL has exact `NUMERIC` and `TIMESTAMPTZ`; SQLite has neither. The
//! two newtypes below map to the natural type of each engine so that one
//! query text and one row struct serve both: money is `NUMERIC` or canonical
//! decimal `TEXT`, instants are `TIMESTAMPTZ` or integer milliseconds since
//! the Unix epoch (sortable and exact, unlike SQLite's text dates).

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};

/// An exact amount of money (or price). Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Money(pub Decimal);

/// An instant, stored with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// Now, truncated to the millisecond so that what is stored is what is
    /// returned on both engines.
    pub fn now() -> Self {
        Self::from_millis(Utc::now().timestamp_millis())
    }

    pub fn from_millis(ms: i64) -> Self {
        Self(
            Utc.timestamp_millis_opt(ms)
                .single()
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        )
    }

    pub fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// RFC 3339 in UTC with milliseconds, as in JSON.
    pub fn rfc3339(&self) -> String {
        self.0.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

impl Type<Sqlite> for Money {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Money {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(self.0.normalize().to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Money {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Ok(Money(text.parse::<Decimal>()?))
    }
}

impl Type<Postgres> for Money {
    fn type_info() -> PgTypeInfo {
        <Decimal as Type<Postgres>>::type_info()
    }
}

impl<'q> Encode<'q, Postgres> for Money {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Decimal as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Money {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Money(
            <Decimal as Decode<'r, Postgres>>::decode(value)?.normalize(),
        ))
    }
}

impl Type<Sqlite> for Timestamp {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Timestamp {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'q, Sqlite>>::encode(self.millis(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Timestamp {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Timestamp::from_millis(<i64 as Decode<'r, Sqlite>>::decode(
            value,
        )?))
    }
}

impl Type<Postgres> for Timestamp {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl<'q> Encode<'q, Postgres> for Timestamp {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Timestamp {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let t = <DateTime<Utc> as Decode<'r, Postgres>>::decode(value)?;
        Ok(Timestamp::from_millis(t.timestamp_millis()))
    }
}

/// A new resource id: a UUIDv7, so ids sort in creation order and serve as
/// stable pagination cursors.
///
/// Its random part comes from the thread's seeded generator (uuid's
/// `fast-rng`), not a `getrandom` system call per id: the relay core makes
/// five ids per call (session, legs, CDR), and at 2,000 calls/s those calls
/// were a sixth of its system calls.
pub fn new_id() -> String {
    let mut text = uuid::Uuid::encode_buffer();
    uuid::Uuid::now_v7()
        .hyphenated()
        .encode_lower(&mut text)
        .to_owned()
}

/// Money travels in JSON as a decimal string (`"0.0125"`), never as a JSON
/// number, which clients would parse as a float.
impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.normalize().to_string())
    }
}

/// The largest number of decimal places stored (rounding is half-up to this).
pub const MONEY_SCALE: u32 = 6;

impl Money {
    /// Parses a decimal string as an operator writes it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid_shape = !text.is_empty()
            && text.trim_start_matches('-').split_once('.').map_or(
                text.trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit()),
                |(i, f)| {
                    !i.is_empty()
                        && !f.is_empty()
                        && i.bytes().chain(f.bytes()).all(|b| b.is_ascii_digit())
                },
            );
        if !valid_shape {
            return Err(format!(
                "'{text}' is not a decimal number such as \"0.0125\""
            ));
        }
        let d = Decimal::from_str_exact(text).map_err(|_| format!("'{text}' is out of range"))?;
        if d.scale() > MONEY_SCALE && d.normalize().scale() > MONEY_SCALE {
            return Err(format!(
                "'{text}' has more than {MONEY_SCALE} decimal places"
            ));
        }
        Ok(Money(d.normalize()))
    }
}

impl<'de> serde::Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Money;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a decimal string such as \"0.0125\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Money, E> {
                Money::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^-?[0-9]+(\.[0-9]{1,6})?$"))
            .description(Some(
                "Exact decimal amount as a string, at most 6 decimal places. Computed amounts are rounded half-up to 6 places.",
            ))
            .examples(["0.0125"])
            .into()
    }
}
impl utoipa::ToSchema for Money {}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| Timestamp::from_millis(t.timestamp_millis()))
            .map_err(|_| serde::de::Error::custom(format!("'{text}' is not an RFC 3339 date-time")))
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .description(Some("RFC 3339 instant in UTC, millisecond precision."))
            .examples(["2026-11-26T15:40:00.123Z"])
            .into()
    }
}
impl utoipa::ToSchema for Timestamp {}
