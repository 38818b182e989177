//! `wxbridge sim` (being written; this placeholder keeps the binary building meanwhile).

use super::{CmdError, CmdResult};

#[derive(Debug, clap::Args)]
pub struct SimArgs {}

pub fn run(_args: SimArgs) -> CmdResult {
    Err(CmdError::new("`wxbridge sim` is not built yet"))
}
