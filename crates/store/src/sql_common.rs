// Shared by every SQL module that is written once and compiled twice (`directory/ops.rs`,
// `directory/tags_ops.rs`, `identity/ops.rs`): each includes this file first, inside a module that
// defines `DB` (the sqlx database type) and `BACKEND`.

type Pool = sqlx::Pool<DB>;
type Tx = sqlx::Transaction<'static, DB>;

/// A unique-constraint violation becomes [`Error::Conflict`]; everything else [`Error::Query`].
fn query_error(source: sqlx::Error) -> Error {
    let unique = source
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation());
    if unique {
        Error::Conflict {
            backend: BACKEND,
            source,
        }
    } else {
        Error::Query {
            backend: BACKEND,
            source,
        }
    }
}

/// A transaction that reads, then writes. SQLite would start it as a reader and fail at once with
/// "database is locked" when another writer got in between (a lock upgrade does not wait); IMMEDIATE
/// takes the write lock up front, waiting under the busy timeout. PostgreSQL needs nothing special.
#[allow(dead_code)] // not every including module opens write transactions
async fn begin_write(pool: &Pool) -> Result<Tx, Error> {
    match BACKEND {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
    .map_err(query_error)
}
