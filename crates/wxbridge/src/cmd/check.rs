//! `wxbridge check` (being written; this placeholder keeps the binary building meanwhile).

use super::{CmdError, CmdResult};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

pub fn run(_args: CheckArgs) -> CmdResult {
    Err(CmdError::new("`wxbridge check` is not built yet"))
}
