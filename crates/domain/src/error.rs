//! The domain layer's error. Never carries a secret: API errors from wx-api are already scrubbed, store
//! errors name the backend and the failure, not the URL.

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The token store (memory, SQL, Redis) could not be opened.
    #[error("DM001 cannot open the {backend} token store: {message}")]
    TokenStore {
        backend: &'static str,
        message: String,
    },
    /// The database could not be reached or migrated.
    #[error("DM002 database: {0}")]
    Database(String),
    /// A WeCom/WeChat client could not be built (a bad base URL).
    #[error("DM003 cannot build the {what} client: {source}")]
    Client {
        what: &'static str,
        #[source]
        source: wx_api::ApiError,
    },
    /// Another run holds the corp's sync lease.
    #[error("DM004 a sync of corp {corpid} is already running{}", run.map(|r| format!(" (run {r})")).unwrap_or_default())]
    SyncRunning {
        corpid: String,
        run: Option<store::SyncRunId>,
    },
    /// The sync lease was taken over (it expired while this run was stalled); the run stopped writing.
    #[error("DM005 the sync lease of corp {corpid} was lost; run {run} stopped")]
    SyncLeaseLost {
        corpid: String,
        run: store::SyncRunId,
    },
    /// A sync step failed in the store or the progress log.
    #[error("DM006 sync run {run}: {what} failed: {message}")]
    Sync {
        run: store::SyncRunId,
        what: &'static str,
        message: String,
    },
    /// A `change_contact` event lacks what its ChangeType needs (or a field does not parse).
    #[error("DM007 change_contact {change_type}: {message}")]
    ContactChange {
        change_type: String,
        message: String,
    },
    /// The authoritative re-read of a `change_contact` event's member or department failed; nothing was
    /// written, so the event can be applied again later.
    #[error("DM008 change_contact {change_type}: {api} for {item} failed{}: {message}", errcode.map(|c| format!(" (errcode {c})")).unwrap_or_default())]
    ContactRead {
        change_type: String,
        api: &'static str,
        item: String,
        errcode: Option<i64>,
        message: String,
    },
}
