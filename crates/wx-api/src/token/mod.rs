//! Access tokens and JSSDK tickets: the cache key, the store trait and its implementations, and the
//! manager that refreshes each token once for many callers and many replicas.

pub mod conformance;
pub mod manager;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
pub mod store;

#[cfg(feature = "redis")]
pub use self::redis::RedisTokenStore;
pub use manager::{FetchedToken, TokenManager, TokenManagerConfig};
pub use memory::MemoryTokenStore;
pub use store::{CachedToken, StoreError, TokenKey, TokenKind, TokenStore};
