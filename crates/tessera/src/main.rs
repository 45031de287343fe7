//! `tessera`: parse the command line, set up logging, hand off.
use std::process::ExitCode;

use clap::Parser;

/// mimalloc returns the large blocks argon2 allocates (19 MiB a hash) to the system; glibc's
/// allocator kept them, growing the process by hundreds of MiB under a login load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tessera::{cli, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let format = match telemetry::LogFormat::parse(&args.log_format) {
        Ok(format) => format,
        Err(err) => {
            eprintln!("tessera: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Administrative commands keep stderr for what matters; the server logs every call.
    // Only the server exports spans (OTEL_EXPORTER_OTLP_ENDPOINT).
    let serving = matches!(args.command, cli::Command::Serve(_));
    let level = if serving { "info" } else { "warn" };
    let telemetry = match telemetry::init(format, level, serving) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("tessera: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = cli::run(args).await;
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tessera: {err:#}");
            ExitCode::FAILURE
        }
    }
}
