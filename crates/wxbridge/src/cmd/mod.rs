//! One module per subcommand. Each exposes its clap `Args` (or subcommand enum) and a `run` function
//! returning `Result<(), CmdError>`; `main` turns an error into exit code 1 and one line on stderr.

pub mod admin;
pub mod api_key;
pub mod bench;
pub mod bench_callbacks;
pub mod check;
pub mod crypto;
pub mod demo;
pub mod migrate;
pub mod openapi;
pub mod serve;
pub mod sim;
pub mod sync;

/// A failed command: the message is printed as one line on stderr and the process exits with 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CmdError(pub String);

impl CmdError {
    pub fn new(msg: impl std::fmt::Display) -> Self {
        CmdError(msg.to_string())
    }
}

pub type CmdResult = Result<(), CmdError>;
