//! Integration tests of wx-sim, driving the simulator over real HTTP on port 0.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod callbacks;
mod common;
mod contacts;
mod fixture;
mod limits;
mod login;
mod messages;
mod miniprogram;
mod org;
mod tokens;
