//! wxbridge persistence on SQLite (the default, one file) and PostgreSQL (many replicas): the database
//! handle, embedded migrations, and the repositories built on them, starting with the token cache.
//!
//! Each repository writes its SQL once where the two dialects agree (`$n` placeholders,
//! `INSERT ... ON CONFLICT`) and dispatches on the pool; the schema lives in one migrations folder per
//! database (`migrations/sqlite`, `migrations/postgres`).

mod db;
mod error;
mod token_store;

pub use db::{AppliedMigration, Backend, Db, MigrationReport};
pub use error::Error;
pub use token_store::SqlTokenStore;
