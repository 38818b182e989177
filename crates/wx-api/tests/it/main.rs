//! wx-api integration tests: one binary, one module per concern.

// clippy.toml allows these inside #[test] functions only; test helpers (fake servers, fixtures) are test
// code too, and a failed unwrap there is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod errors;
mod fake;
mod manager;
mod parsing;
mod sim;
// The Redis store is behind the default feature "redis".
#[cfg(feature = "redis")]
mod stores;
