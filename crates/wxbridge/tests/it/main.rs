//! Integration tests of the `wxbridge` binary (one test binary; each area appends its module).

// Helpers outside #[test] functions are test code too; clippy.toml only exempts the test functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_admin;
mod cli_bench;
mod cli_callbacks_crash;
mod cli_config;
mod cli_crypto;
mod cli_messages_crash;
mod cli_serve;
mod cli_sync;
mod support;
