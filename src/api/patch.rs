//! PATCH bodies (RFC 7396 merge-patch semantics): an absent field is left
//! alone, `null` clears a nullable field, a value replaces it.

use serde::{Deserialize, Deserializer};

/// For `Option<Option<T>>` fields: absent → `None`, `null` → `Some(None)`,
/// value → `Some(Some(v))`. Use with `#[serde(default)]`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// For non-nullable fields: `null` is refused with a clear message instead
/// of being read as "absent".
pub fn required<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(d)? {
        Some(v) => Ok(Some(v)),
        None => Err(serde::de::Error::custom("may not be null")),
    }
}

/// Applies a nullable patch field.
pub fn apply_nullable<T>(target: &mut Option<T>, patch: Option<Option<T>>) {
    if let Some(v) = patch {
        *target = v;
    }
}

/// Applies a non-nullable patch field.
pub fn apply<T>(target: &mut T, patch: Option<T>) {
    if let Some(v) = patch {
        *target = v;
    }
}
