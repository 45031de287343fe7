//! `tessera`: parse the command line, set up logging, hand off.
use std::process::ExitCode;

use clap::Parser;
use tessera::{cli, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Cli::parse();
    telemetry::init(args.log_format);
    match cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tessera: {err:#}");
            ExitCode::FAILURE
        }
    }
}
