//! `wxbridge demo` (being written; this placeholder keeps the binary building meanwhile).

use super::{CmdError, CmdResult};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

pub fn run(_args: DemoArgs) -> CmdResult {
    Err(CmdError::new("`wxbridge demo` is not built yet"))
}
