//! `tessera keys list|rotate`.

use clap::Subcommand;

use super::{TokenLifetimeArgs, output, serve::open_store};
use crate::config::{DatabaseArgs, MasterKeyArgs};
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
        #[command(flatten)]
        master_key: MasterKeyArgs,
        #[command(flatten)]
        lifetimes: TokenLifetimeArgs,
        #[arg(long)]
        json: bool,
    },
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
            lifetimes,
            json,
        } => {
            // Running servers extend it to their own window when theirs is longer.
            let window = lifetimes.verification_window()?;
            let master_key = master_key.resolve()?;
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
