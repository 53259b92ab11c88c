//! Keyset pagination shared by every list: rows are ordered by id (UUIDv7,
//! so creation order) and a cursor is the last id of the previous page, made
//! opaque so clients do not build their own.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// Which page to read: at most `limit` rows after `after`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<String>,
}

impl PageRequest {
    /// Rows to ask the database for: one more than the page, to learn
    /// whether another page follows without a COUNT.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, MAX_LIMIT)) + 1
    }

    /// Decodes a cursor given by a client; `None` when it is not one of ours.
    pub fn decode_cursor(cursor: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let id = String::from_utf8(bytes).ok()?;
        (!id.is_empty() && id.len() <= 64).then_some(id)
    }
}

pub fn encode_cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `fetch_limit()` rows; `id` gives each row's id.
    pub fn from_rows(mut rows: Vec<T>, req: &PageRequest, id: impl Fn(&T) -> &str) -> Self {
        let limit = req.limit.clamp(1, MAX_LIMIT) as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| encode_cursor(id(r)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}
