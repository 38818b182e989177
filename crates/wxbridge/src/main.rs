//! The `wxbridge` binary: one command line for operators (serve, demo, sim, check, sync, migrate) and for
//! debugging callbacks and signatures by hand (crypto, jssdk, miniprogram).

mod cmd;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// wxbridge: an out-of-the-box bridge between a business system and WeCom / WeChat.
#[derive(Debug, Parser)]
#[command(name = "wxbridge", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bridge server with a configuration file.
    Serve(cmd::serve::ServeArgs),
    /// Start the simulator and the bridge together with no configuration (SQLite + simulated WeCom/WeChat).
    Demo(cmd::demo::DemoArgs),
    /// Run the WeCom/WeChat simulator at the real API paths.
    Sim(cmd::sim::SimArgs),
    /// Check a configuration: report every problem with a fix hint and print the callback URLs.
    Check(cmd::check::CheckArgs),
    /// Sync a tenant's WeCom departments and members into local roles and users, with live progress.
    Sync(cmd::sync::SyncArgs),
    /// Apply the database migrations for the configured store.
    Migrate(cmd::migrate::MigrateArgs),
    /// Print the REST API's OpenAPI document.
    Openapi(cmd::openapi::OpenapiArgs),
    /// Ways into the admin UI: `admin token` (bootstrap token + its hash), `admin link` (one-time link).
    #[command(subcommand)]
    Admin(cmd::admin::AdminCmd),
    /// Make or hash a per-tenant API key (the configuration stores only hashes).
    #[command(subcommand, name = "api-key")]
    ApiKey(cmd::api_key::ApiKeyCmd),
    /// Callback crypto by hand: verify a URL, decrypt, encrypt, sign.
    #[command(subcommand)]
    Crypto(cmd::crypto::CryptoCmd),
    /// JSSDK helpers.
    #[command(subcommand)]
    Jssdk(cmd::crypto::JssdkCmd),
    /// Mini-program helpers: decrypt encryptedData, check a rawData signature.
    #[command(subcommand)]
    Miniprogram(cmd::crypto::MiniprogramCmd),
    /// Benchmarks: `bench sync` (full sync and no-change re-sync against a simulator child process).
    #[command(subcommand)]
    Bench(cmd::bench::BenchCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Migrate(args) => cmd::migrate::run(args),
        // `sync` has its own exit codes (see `wxbridge sync --help`).
        Command::Sync(args) => return cmd::sync::main(args),
        Command::Admin(c) => cmd::admin::run(c),
        Command::ApiKey(c) => cmd::api_key::run(c),
        Command::Openapi(args) => cmd::openapi::run(args),
        Command::Crypto(c) => cmd::crypto::run_crypto(c),
        Command::Jssdk(c) => cmd::crypto::run_jssdk(c),
        Command::Miniprogram(c) => cmd::crypto::run_miniprogram(c),
        Command::Bench(c) => cmd::bench::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line on stderr naming the failure; the chain is flattened so scripts can grep it.
            eprintln!("error: {err}");
            ExitCode::from(1)
        }
    }
}
