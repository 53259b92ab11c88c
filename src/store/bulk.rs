//! Multi-row statements for the write-behind paths.
//!
//! Writing a batch as one `INSERT … VALUES (…), (…)` per table instead of
//! one statement per record is what makes batching pay: on SQLite every
//! statement is a round trip to sqlx's worker thread (two context
//! switches), on PostgreSQL a network round trip.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::Engine;

/// Rows per statement. At 22 columns (CDRs) this is 2,816 parameters, far
/// below SQLite's 32,766 and PostgreSQL's 65,535.
pub(super) const ROWS: usize = 128;

/// `INSERT INTO {table} ({columns}) VALUES (…), (…) {tail}` for `rows`
/// rows of one parameter per column, in row order: `$1, $2, …` on
/// PostgreSQL, anonymous `?` on SQLite. (SQLite takes `$1` for a *named*
/// parameter and keeps names in a list it scans linearly, both when parsing
/// and when sqlx asks each parameter's name to bind it: quadratic in the
/// parameter count, 10 % of Switchboard's CPU at 1000 calls/s.)
pub(super) fn insert_sql(
    engine: Engine,
    table: &str,
    columns: &str,
    rows: usize,
    tail: &str,
) -> String {
    let width = columns.split(',').count();
    let mut sql = String::with_capacity(64 + columns.len() + tail.len() + rows * width * 6);
    sql.push_str("INSERT INTO ");
    sql.push_str(table);
    sql.push_str(" (");
    sql.push_str(columns);
    sql.push_str(") VALUES ");
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..width {
            if col > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match engine {
                Engine::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
                Engine::Sqlite => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// Statement text by (engine, table, columns, tail, rows): the text of a
/// chunk shape is built once per process instead of once per chunk written.
type SqlKey = (Engine, &'static str, &'static str, &'static str, usize);

/// [`insert_sql`] for a chunk shape, built the first time and kept for
/// the life of the process. The set is bounded: eight shapes (see
/// [`chunks`]) per table and engine.
pub(super) fn chunk_sql(
    engine: Engine,
    table: &'static str,
    columns: &'static str,
    rows: usize,
    tail: &'static str,
) -> &'static str {
    static TEXTS: OnceLock<Mutex<HashMap<SqlKey, &'static str>>> = OnceLock::new();
    let texts = TEXTS.get_or_init(Default::default);
    // A poisoned lock only means another thread panicked while inserting;
    // the map itself is still whole.
    let mut texts = texts.lock().unwrap_or_else(|e| e.into_inner());
    texts
        .entry((engine, table, columns, tail, rows))
        .or_insert_with(|| {
            Box::leak(insert_sql(engine, table, columns, rows, tail).into_boxed_str())
        })
}

/// `rows` cut into chunks of [`ROWS`] rows, then of falling powers of two
/// (100 rows: 64, 32, 4). Every statement then has one of eight shapes per
/// table, so all of them stay prepared in sqlx's per-connection cache
/// (100 statements): preparing a statement of a hundred rows costs more
/// than running it, and an odd-sized remainder would be prepared anew for
/// nearly every batch.
pub(super) fn chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let n = if rows.len() >= ROWS {
            ROWS
        } else {
            1 << (usize::BITS - 1 - rows.len().leading_zeros())
        };
        let (chunk, rest) = rows.split_at(n);
        rows = rest;
        Some(chunk)
    })
}

/// Writes `rows` (a slice) into `table` inside the transaction `tx` of
/// `store`, one
/// multi-row statement per chunk of [`chunks`]; `|q, row| binds` adds one row's
/// parameters, in `columns` order, to the query `q`. A macro, not a
/// function, so that it instantiates for whichever engine [`super::on_pool`]
/// picked.
macro_rules! insert_rows {
    ($store:expr, $tx:ident, $rows:expr, $table:expr, $columns:expr, $tail:expr, |$q:ident, $row:ident| $bind:expr) => {
        for chunk in $crate::store::bulk::chunks(&$rows[..]) {
            let sql = $crate::store::bulk::chunk_sql(
                $store.engine(),
                $table,
                $columns,
                chunk.len(),
                $tail,
            );
            let mut $q = sqlx::query(sql);
            for $row in chunk {
                $q = $bind;
            }
            $q.execute(&mut *$tx).await?;
        }
    };
}
pub(super) use insert_rows;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parameters_row_by_row() {
        assert_eq!(
            insert_sql(Engine::Postgres, "t", "a, b", 2, "ON CONFLICT DO NOTHING"),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            insert_sql(Engine::Sqlite, "t", "a, b", 2, ""),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) "
        );
    }

    #[test]
    fn chunks_are_full_then_falling_powers_of_two() {
        let rows: Vec<u32> = (0..(2 * ROWS as u32 + 100)).collect();
        let sizes: Vec<usize> = chunks(&rows).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![ROWS, ROWS, 64, 32, 4]);
        let again: Vec<u32> = chunks(&rows).flatten().copied().collect();
        assert_eq!(again, rows, "every row once, in order");
        assert_eq!(chunks::<u32>(&[]).count(), 0);
        assert_eq!(chunks(&[7]).map(<[u32]>::len).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn a_chunk_shape_is_built_once() {
        let a = chunk_sql(Engine::Sqlite, "t_once", "a, b", 2, "");
        let b = chunk_sql(Engine::Sqlite, "t_once", "a, b", 2, "");
        assert!(std::ptr::eq(a, b), "the same text, not a second copy");
        assert_eq!(a, insert_sql(Engine::Sqlite, "t_once", "a, b", 2, ""));
        let pg = chunk_sql(Engine::Postgres, "t_once", "a, b", 2, "");
        assert_ne!(a, pg, "each engine its own placeholders");
    }
}
