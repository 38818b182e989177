//! Integration tests of the HTTP surface: router tests in-process (`oneshot`) and one full test over TCP
//! against the simulator.

// Helpers outside #[test] functions are test code too; clippy.toml only exempts the test functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod api_env;
mod auth_login;
mod callbacks;
mod callbacks_replies;
mod directory_api;
mod full;
mod guard;
mod identities;
mod inbox_api;
mod jssdk;
mod messages_api;
mod miniprogram;
mod openapi;
mod router;
mod sessions;
mod support;
mod sync_api;
mod webhooks;
