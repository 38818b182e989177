//! `wxbridge migrate` (being written; this placeholder keeps the binary building meanwhile).

use super::{CmdError, CmdResult};

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {}

pub fn run(_args: MigrateArgs) -> CmdResult {
    Err(CmdError::new("`wxbridge migrate` is not built yet"))
}
