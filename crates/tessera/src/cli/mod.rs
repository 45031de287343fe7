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
    Health(health::HealthArgs),
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
        Command::Client(cmd) => client::run(&cli.database, cmd).await,
        Command::User(cmd) => user::run(&cli.database, &cli.hashing, cmd).await,
        Command::Keys(cmd) => keys::run(&cli.database, cmd).await,
        Command::Health(args) => health::check(&args).await,
    }
}

/// The token lifetimes a command needs to know how long what it does must last: keys that
/// stop signing keep verifying, and revocations stay in the log, until the last token they
/// concern has expired (the same settings as `serve`'s).
#[derive(clap::Args, Debug)]
pub struct TokenLifetimeArgs {
    #[arg(long, env = "TESSERA_ACCESS_TOKEN_TTL", default_value = "10m")]
    access_token_ttl: String,
    #[arg(long, env = "TESSERA_TRUSTED_TOKEN_TTL", default_value = "5m")]
    trusted_token_ttl: String,
    #[arg(long, env = "TESSERA_CLOCK_LEEWAY", default_value = "5s")]
    clock_leeway: String,
}

impl TokenLifetimeArgs {
    /// The longest a token lives, plus the leeway (and the time instances take to follow).
    pub fn verification_window(&self) -> Result<std::time::Duration, crate::config::ConfigError> {
        use crate::config::duration;
        let policy = crate::domain::policy::TokenPolicy {
            access_token_ttl: duration("TESSERA_ACCESS_TOKEN_TTL", &self.access_token_ttl)?,
            trusted_token_ttl: duration("TESSERA_TRUSTED_TOKEN_TTL", &self.trusted_token_ttl)?,
            clock_leeway: duration("TESSERA_CLOCK_LEEWAY", &self.clock_leeway)?,
            ..crate::domain::policy::TokenPolicy::default()
        };
        Ok(policy.key_verification_window())
    }
}
