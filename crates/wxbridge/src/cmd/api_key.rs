//! `wxbridge api-key`: make a per-tenant API key for `api_key_hashes`, or hash an existing one. Keys carry
//! the `wxb_` prefix; the configuration holds only their SHA-256 hashes.

use super::{CmdError, CmdResult};

#[derive(Debug, clap::Subcommand)]
pub enum ApiKeyCmd {
    /// Generate a new key. Prints the key (give it to the business backend; it is not shown again) on the
    /// first line and the `sha256:` hash to put in `tenants.<key>.api_key_hashes` on the second.
    New,
    /// Print the `sha256:` hash of an existing key.
    Hash {
        /// The key, starting with `wxb_`.
        key: String,
    },
}

pub fn run(cmd: ApiKeyCmd) -> CmdResult {
    match cmd {
        ApiKeyCmd::New => {
            let (key, hash) = server::auth::generate_api_key();
            println!("{key}\n{}", hash.to_file_string());
        }
        ApiKeyCmd::Hash { key } => {
            if !key.starts_with(server::auth::API_KEY_PREFIX) {
                return Err(CmdError::new(format!(
                    "an API key starts with `{}`; use `wxbridge api-key new` to make one",
                    server::auth::API_KEY_PREFIX
                )));
            }
            println!("{}", server::auth::hash_api_key(&key).to_file_string());
        }
    }
    Ok(())
}
