//! `tessera keys list|rotate`.
use std::time::Duration;

use clap::Subcommand;
use secrecy::SecretString;

use super::{output, serve::open_store};
use crate::config::{ConfigError, DatabaseArgs, duration};
use crate::domain::policy::TokenPolicy;
use crate::domain::{clock::now_ms, keyring};
use crate::server::resolve_master_key;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List the public keys that verify tokens, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make a new signing key. Older keys keep verifying until every token they signed has
    /// expired (the longest token lifetime plus the clock leeway), then retire.
    Rotate {
        /// The master key that seals signing keys (the dev key file on SQLite when unset).
        #[arg(long, env = "TESSERA_MASTER_KEY", hide_env_values = true)]
        master_key: Option<String>,
        #[arg(long, env = "TESSERA_ACCESS_TOKEN_TTL", default_value = "10m")]
        access_token_ttl: String,
        #[arg(long, env = "TESSERA_TRUSTED_TOKEN_TTL", default_value = "5m")]
        trusted_token_ttl: String,
        #[arg(long, env = "TESSERA_CLOCK_LEEWAY", default_value = "5s")]
        clock_leeway: String,
        #[arg(long)]
        json: bool,
    },
}

/// How long keys that stop signing must keep verifying: until the last token they signed has
/// expired, as seen by any instance (which follows a rotation within a second).
/// Running servers extend it to their own window when theirs is longer.
fn verification_window(access: &str, trusted: &str, leeway: &str) -> Result<Duration, ConfigError> {
    let policy = TokenPolicy {
        access_token_ttl: duration("TESSERA_ACCESS_TOKEN_TTL", access)?,
        trusted_token_ttl: duration("TESSERA_TRUSTED_TOKEN_TTL", trusted)?,
        clock_leeway: duration("TESSERA_CLOCK_LEEWAY", leeway)?,
        ..TokenPolicy::default()
    };
    Ok(policy.key_verification_window())
}

pub async fn run(db: &DatabaseArgs, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List { json } => {
            let store = open_store(db).await?;
            let keys = keyring::published(&store, now_ms()).await?;
            if json {
                output::json(&keys)?;
            } else {
                println!(
                    "{:<51}  {:<7}  {:<29}  {:<29}",
                    "KID", "SIGNING", "CREATED", "RETIRES"
                );
                for k in keys {
                    println!(
                        "{:<51}  {:<7}  {:<29}  {:<29}",
                        k.kid,
                        if k.signing { "yes" } else { "no" },
                        output::time(k.created_at),
                        k.retire_at.map(output::time).unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
        KeysCommand::Rotate {
            master_key,
            access_token_ttl,
            trusted_token_ttl,
            clock_leeway,
            json,
        } => {
            let window = verification_window(&access_token_ttl, &trusted_token_ttl, &clock_leeway)?;
            let master_key = master_key
                .filter(|k| !k.trim().is_empty())
                .map(SecretString::from);
            let master = resolve_master_key(master_key.as_ref(), &db.database_url)?;
            let store = open_store(db).await?;
            let key = keyring::rotate(&store, &master, window, now_ms()).await?;
            if json {
                output::json(&key)?;
            } else {
                println!("new signing key: {}", key.kid);
                println!(
                    "older keys keep verifying for {} and then retire",
                    humantime::format_duration(window)
                );
            }
        }
    }
    Ok(())
}
