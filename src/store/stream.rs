//! Positions in the append-only streams that billing systems pull (CDRs and
//! charges), and the SQL that reads them in an order no later commit can
//! insert into.
//!
//! SQLite has one writer at a time: a row's `seq` (AUTOINCREMENT, never
//! reused) is taken inside the only write transaction there is, so seq
//! order is commit order and "after seq N" never skips a row.
//!
//! PostgreSQL takes `seq` from a sequence at insert, but transactions commit
//! in any order, so a reader may see seq 11 while seq 10 is still in flight.
//! Each row therefore records the id of the transaction that wrote it
//! (`txid`, migration 0002), lists return only rows whose transaction is
//! older than every transaction still running (`txid` below the xmin of the
//! reader's snapshot: those rows are final), and they are ordered and paged
//! by `(txid, seq)`. Any row committed later has a txid at or above that
//! xmin, so it sorts after every position already handed out. (Ordering by
//! seq alone under the same filter is not enough: a transaction may take its
//! txid before another's yet its seq after, e.g. when it writes several
//! rows.) A long-running transaction anywhere in the cluster holds the
//! stream back until it ends; it never makes it skip.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sqlx::{ColumnIndex, Decode, FromRow, Row, Type};

use super::Engine;

/// Where a reader stands in a stream: after the row at this position.
/// `txid` is always 0 on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamPosition {
    pub txid: i64,
    pub seq: i64,
}

impl StreamPosition {
    /// The opaque cursor handed to clients: `seq`, or `txid.seq` when there
    /// is a transaction id, in unpadded URL-safe base64.
    pub fn encode(&self) -> String {
        let text = if self.txid == 0 {
            self.seq.to_string()
        } else {
            format!("{}.{}", self.txid, self.seq)
        };
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Reads a cursor made by [`encode`](Self::encode); `None` when it is
    /// not one.
    pub fn decode(cursor: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let (txid, seq) = match text.split_once('.') {
            Some((t, s)) => (t.parse().ok()?, s.parse().ok()?),
            None => (0, text.parse().ok()?),
        };
        (txid >= 0 && seq >= 0).then_some(Self { txid, seq })
    }
}

/// The engine-specific pieces of a stream query over a table with `seq`
/// (and, on PostgreSQL, `txid`). The position binds as `$1` (txid) and `$2`
/// (seq); SQLite leaves `$1` unused, which its driver allows.
pub struct StreamSql {
    /// Selects the row's position as `stream_txid` and `seq`.
    pub position_columns: &'static str,
    /// Rows after the position, and (PostgreSQL) only final ones.
    pub after: &'static str,
    pub order_by: &'static str,
}

impl StreamSql {
    pub fn for_engine(engine: Engine) -> Self {
        match engine {
            Engine::Sqlite => Self {
                position_columns: "0 AS stream_txid, seq",
                after: "seq > $2",
                order_by: "seq",
            },
            Engine::Postgres => Self {
                // xid8 has no cast to bigint; text is its exact rendering.
                position_columns: "CAST(CAST(txid AS TEXT) AS BIGINT) AS stream_txid, seq",
                after: "(txid, seq) > (CAST(CAST($1 AS TEXT) AS xid8), $2) \
                        AND txid < pg_snapshot_xmin(pg_current_snapshot())",
                order_by: "txid, seq",
            },
        }
    }
}

/// A row with its position in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Positioned<T> {
    pub position: StreamPosition,
    pub record: T,
}

impl<'r, R, T> FromRow<'r, R> for Positioned<T>
where
    R: Row,
    T: FromRow<'r, R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            position: StreamPosition {
                txid: row.try_get("stream_txid")?,
                seq: row.try_get("seq")?,
            },
            record: T::from_row(row)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::StreamPosition;

    #[test]
    fn cursor_round_trip() {
        for p in [
            StreamPosition { txid: 0, seq: 0 },
            StreamPosition { txid: 0, seq: 42 },
            StreamPosition {
                txid: 7_000_123,
                seq: 9,
            },
        ] {
            assert_eq!(StreamPosition::decode(&p.encode()), Some(p));
        }
        // A SQLite cursor is the seq alone, as before migration 0002.
        assert_eq!(
            StreamPosition { txid: 0, seq: 42 }.encode(),
            crate::store::page::encode_cursor("42")
        );
        for bad in ["", "!!", "LTE", "YS5i", "MS4", "LTEuMg"] {
            assert_eq!(StreamPosition::decode(bad), None, "{bad}");
        }
    }
}
