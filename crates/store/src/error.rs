//! The store layer's error type: what went wrong talking to SQLite or PostgreSQL.
//!
//! Messages never carry a database URL (it may hold a password) or a stored token value.

use crate::db::Backend;

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database URL is not one we understand. `scheme` is only the part before `:` so a password in
    /// the URL never reaches a log.
    #[error(
        "unsupported database URL scheme `{scheme}`: use sqlite://PATH, sqlite::memory: or postgres://..."
    )]
    UnsupportedUrl { scheme: String },

    /// The URL has the right scheme but its options are invalid.
    #[error("invalid {backend} database URL: {reason}")]
    InvalidUrl { backend: Backend, reason: String },

    /// The SQLite file's directory could not be created.
    #[error("cannot create the directory for the SQLite database: {0}")]
    CreateDir(#[source] std::io::Error),

    /// Opening the connection pool failed (server down, wrong credentials, unreadable file).
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        backend: Backend,
        #[source]
        source: sqlx::Error,
    },

    /// Applying the embedded migrations failed.
    #[error("migrating the {backend} database failed: {source}")]
    Migrate {
        backend: Backend,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// A query failed.
    #[error("{backend} query failed: {source}")]
    Query {
        backend: Backend,
        #[source]
        source: sqlx::Error,
    },
}
