//! Multi-row statements for the write-behind paths.
//!
//! Writing a batch as one `INSERT … VALUES (…), (…)` per table instead of
//! one statement per record is what makes batching pay: on SQLite every
//! statement is a round trip to sqlx's worker thread (two context
//! switches), on PostgreSQL a network round trip.

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

/// Whether a statement of `rows` rows is worth keeping prepared: the
/// single-row and full-chunk shapes recur; every other size would only
/// push useful statements out of sqlx's per-connection cache.
pub(super) fn cacheable(rows: usize) -> bool {
    rows == 1 || rows == ROWS
}

/// Writes `rows` (a slice) into `table` inside the transaction `tx` of
/// `store`, one
/// multi-row statement per [`ROWS`] rows; `|q, row| binds` adds one row's
/// parameters, in `columns` order, to the query `q`. A macro, not a
/// function, so that it instantiates for whichever engine [`super::on_pool`]
/// picked.
macro_rules! insert_rows {
    ($store:expr, $tx:ident, $rows:expr, $table:expr, $columns:expr, $tail:expr, |$q:ident, $row:ident| $bind:expr) => {
        for chunk in $rows.chunks($crate::store::bulk::ROWS) {
            let sql = $crate::store::bulk::insert_sql(
                $store.engine(),
                $table,
                $columns,
                chunk.len(),
                $tail,
            );
            let mut $q = sqlx::query(&sql).persistent($crate::store::bulk::cacheable(chunk.len()));
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
}
