//! `wxbridge crypto|jssdk|miniprogram` (being written; this placeholder keeps the binary building meanwhile).

use super::{CmdError, CmdResult};

#[derive(Debug, clap::Subcommand)]
pub enum CryptoCmd {
    Signature,
}
#[derive(Debug, clap::Subcommand)]
pub enum JssdkCmd {
    Sign,
}
#[derive(Debug, clap::Subcommand)]
pub enum MiniprogramCmd {
    Decrypt,
}

pub fn run_crypto(_c: CryptoCmd) -> CmdResult {
    Err(CmdError::new("not built yet"))
}
pub fn run_jssdk(_c: JssdkCmd) -> CmdResult {
    Err(CmdError::new("not built yet"))
}
pub fn run_miniprogram(_c: MiniprogramCmd) -> CmdResult {
    Err(CmdError::new("not built yet"))
}
