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
}
