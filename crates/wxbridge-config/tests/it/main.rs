//! Integration tests of wxbridge-config: layering, validation problems, the example file, redaction.

// Helpers outside #[test] functions are test code too; clippy.toml only exempts the test functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod directory;
mod example;
mod integrations;
mod layers;
mod redaction;
mod support;
mod validation;
