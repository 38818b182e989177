//! wxbridge configuration: the file model (TOML + `WXBRIDGE_*` environment + `*_file` secrets), layered
//! loading with figment, and validation into a runtime [`Config`] that reports every problem with a hint.
//!
//! Layers, later wins: defaults, the TOML file, `WXBRIDGE_*` variables (`__` between levels, e.g.
//! `WXBRIDGE_TENANTS__DEMO__WECOM__APPS__MAIN__SECRET`), command-line overrides.

mod aes;
pub mod error;
pub mod file;
pub mod load;
pub mod model;
pub mod problem;
pub mod schema;
mod validate;

pub use error::ConfigError;
pub use file::{FileConfig, FileSecret};
pub use load::{Inspection, Loaded, Sources, inspect, load};
pub use model::*;
pub use problem::{Problem, Severity};
