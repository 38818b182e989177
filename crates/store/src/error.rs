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

    /// A write would break a uniqueness rule (for example a second user with the same WeCom userid,
    /// compared case-insensitively, or a userid rename onto a taken userid). The batch was rolled back.
    #[error("{backend} rejected a duplicate: {source}")]
    Conflict {
        backend: Backend,
        #[source]
        source: sqlx::Error,
    },

    /// A change names a WeCom department that is neither linked nor in the same batch.
    #[error("department {department_id} of corp {corpid} is not linked to a role")]
    UnknownDepartment { corpid: String, department_id: i64 },

    /// A change names a WeCom userid that has no link in this tenant and corp.
    #[error("userid `{userid}` of corp {corpid} is not linked to a user")]
    UnknownUserid { corpid: String, userid: String },

    /// The row an update targets does not exist in this tenant.
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: i64 },

    /// A stored value is outside the set the schema allows (a newer wxbridge wrote it, or manual edits).
    #[error("unexpected value `{value}` in {column}")]
    InvalidStored { column: &'static str, value: String },

    /// A stored JSON document does not parse.
    #[error("stored JSON in {column} does not parse: {source}")]
    StoredJson {
        column: &'static str,
        #[source]
        source: serde_json::Error,
    },
}
