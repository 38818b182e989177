//! Integration tests of the domain services against the simulator.

// Helpers outside #[test] functions are test code too; clippy.toml only exempts the test functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod check;
mod directory;
mod directory_incremental;
mod directory_plan;
mod directory_sync;
mod directory_tags;
mod identity;
mod identity_backfill;
mod identity_miniprogram;
mod messages;
mod progress;
mod support;
mod webhooks;
