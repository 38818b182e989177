//! Access tokens and JSSDK tickets: the cache key, the store trait and its implementations, and the
//! manager that refreshes each token once for many callers and many replicas.

pub mod store;

pub use store::{CachedToken, StoreError, TokenKey, TokenKind, TokenStore};
