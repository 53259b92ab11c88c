//! The one storage layer, for both engines.
//!
//! Queries are written once, in SQL that SQLite and PostgreSQL both accept
//! (`$n` placeholders, `RETURNING`, `ON CONFLICT`), and run through
//! [`on_pool!`], which instantiates the same code for whichever engine the
//! `DATABASE_URL` chose. Row structs derive `FromRow` generically and use
//! [`types::Money`] and [`types::Timestamp`] where the engines differ.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub mod admins;
pub mod app_servers;
mod bulk;
pub mod cdrs;
pub mod charges;
pub mod clients;
pub mod nodes;
pub mod page;
pub mod registrations;
pub mod reports;
pub mod rules;
pub mod services;
pub mod sessions;
pub mod settings;
pub mod signals;
pub mod stream;
pub mod tariffs;
pub mod tokens;
pub mod types;

pub use page::{Page, PageRequest};
pub use types::{new_id, Money, Timestamp};

/// Runs `$body` with `$p` bound to the concrete pool of this store's engine.
/// The body is compiled once per engine, so it must type-check for both.
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Storage errors, classified so the API can answer 404 / 409 / 422 / 503
/// without looking at engine-specific codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; the string names the constraint
    /// or column as far as the engine told us.
    #[error("already exists: {0}")]
    Conflict(String),
    /// A row is still referenced by others (e.g. a tariff used by a client).
    #[error("still referenced: {0}")]
    InUse(String),
    /// A reference names a row that does not exist.
    #[error("unknown reference: {0}")]
    UnknownReference(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether retrying the same write can never succeed: a constraint or data
    /// error, as opposed to the database being unreachable, busy or closed.
    pub fn is_lasting(&self) -> bool {
        match self {
            StoreError::Conflict(_)
            | StoreError::InUse(_)
            | StoreError::UnknownReference(_)
            | StoreError::Corrupt(_) => true,
            StoreError::NotFound | StoreError::Migrate(_) => false,
            StoreError::Database(db) => match db {
                sqlx::Error::Database(d) => d.kind() != sqlx::error::ErrorKind::Other,
                sqlx::Error::Encode(_)
                | sqlx::Error::Decode(_)
                | sqlx::Error::ColumnDecode { .. }
                | sqlx::Error::TypeNotFound { .. } => true,
                _ => false,
            },
        }
    }

    /// Maps engine constraint violations to their meaning.
    pub fn classify(err: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = err {
            return Self::NotFound;
        }
        if let Some(db) = err.as_database_error() {
            let message = db.message().to_string();
            if db.is_unique_violation() {
                return Self::Conflict(message);
            }
            if db.is_foreign_key_violation() {
                return Self::UnknownReference(message);
            }
        }
        Self::Database(err)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: Pool,
}

impl Store {
    /// Opens the database named by `url` (`sqlite://path` or `postgres://…`).
    /// A SQLite file is created when missing.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                // A multi-row upsert keeps a statement journal (to undo
                // itself alone on a constraint failure); past 64 KiB SQLite
                // spills it to a temporary file, a write() per page. The
                // write-behind batches pass that size at load.
                .pragma("temp_store", "memory")
                .busy_timeout(Duration::from_secs(5));
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(8)
                    // A SQLite connection is a file handle: it cannot go
                    // stale like a socket, so the ping on every acquire
                    // (a round trip to sqlx's worker thread) buys nothing.
                    // PostgreSQL keeps it: a server restart leaves dead
                    // sockets in the pool, and after batching the write
                    // paths acquire once per batch, not per call.
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await?,
            )
        } else {
            let options = PgConnectOptions::from_str(url)?;
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await?,
            )
        };
        Ok(Self { pool })
    }

    pub fn engine(&self) -> Engine {
        match self.pool {
            Pool::Sqlite(_) => Engine::Sqlite,
            Pool::Postgres(_) => Engine::Postgres,
        }
    }

    /// Applies the engine's migrations (`migrations/sqlite` or
    /// `migrations/postgres`).
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(p).await?,
            Pool::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// Readiness probe: one round trip.
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, |p| {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }
}

/// The future that writes one batch of records (the write-behind paths).
pub type BatchWrite<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<()>> + Send + 'a>>;
