//! `wxbridge serve` (being written; this placeholder keeps the binary building meanwhile).

use super::{CmdError, CmdResult};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

pub fn run(_args: ServeArgs) -> CmdResult {
    Err(CmdError::new("`wxbridge serve` is not built yet"))
}
