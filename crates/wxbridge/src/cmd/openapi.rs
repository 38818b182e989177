//! `wxbridge openapi`: print the REST API's OpenAPI document (the same one served at `/api/v1/openapi.json`
//! and committed as `docs/openapi.json`; regenerate that file with `wxbridge openapi > docs/openapi.json`).

use super::CmdResult;

#[derive(Debug, clap::Args)]
pub struct OpenapiArgs {}

pub fn run(_args: OpenapiArgs) -> CmdResult {
    print!("{}", server::openapi::document_json());
    Ok(())
}
