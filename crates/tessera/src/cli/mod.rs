//! The `tessera` command line (SPEC §5): one file per command group.
mod client;
mod health;
mod keys;
mod output;
mod serve;
mod user;

use clap::{Parser, Subcommand};

use crate::config::{DatabaseArgs, HashArgs, ServeArgs};

/// Tessera: short-lived access tokens, introspection and revocation over gRPC.
#[derive(Parser, Debug)]
#[command(name = "tessera", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub hashing: HashArgs,
    /// Log line format: pretty or json.
    #[arg(
        long,
        env = "TESSERA_LOG_FORMAT",
        default_value = "pretty",
        global = true
    )]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply pending migrations, then serve gRPC.
    Serve(Box<ServeArgs>),
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage clients (applications).
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Check a running server's health (exit 0 only when it is SERVING).
    Health {
        /// Address of the server.
        #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:50051")]
        addr: String,
        /// Service name to ask about ("" is the whole server).
        #[arg(long, default_value = "")]
        service: String,
    },
    /// Manage end users (passwords are read from stdin, never from arguments).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Inspect signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

/// Runs a parsed command line. Errors are printed by the caller as one line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(&cli.database, &cli.hashing, &args).await,
        Command::Migrate => serve::migrate(&cli.database).await,
        Command::Client(cmd) => client::run(&cli.database, &cli.hashing, cmd).await,
        Command::User(cmd) => user::run(&cli.database, &cli.hashing, cmd).await,
        Command::Keys(cmd) => keys::run(&cli.database, cmd).await,
        Command::Health { addr, service } => health::check(&addr, &service).await,
    }
}
