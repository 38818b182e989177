//! The store crate's one integration-test binary: the token-store behaviour suite, migrations,
//! replicas and the directory repository on SQLite and PostgreSQL.

// clippy.toml allows these inside #[test] fns only; the helpers here are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod directory;
mod identity;
mod inbox;
mod manager;
mod migrations;
mod replicas;
mod sim;
mod support;
mod tags;
mod webhooks;
