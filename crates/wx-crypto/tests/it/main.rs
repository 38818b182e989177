//! wx-crypto integration tests: one binary, one module per concern.

// Helpers outside #[test] functions are test code too; clippy.toml's test allowances do not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod errors;
mod message;
mod props;
mod vectors;
