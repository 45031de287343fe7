//! `tessera keys list`.
use clap::Subcommand;

use super::{output, serve::open_store};
use crate::config::DatabaseArgs;
use crate::domain::{clock::now_ms, keyring};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List the public keys that verify tokens, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(db: &DatabaseArgs, cmd: KeysCommand) -> anyhow::Result<()> {
    let store = open_store(db).await?;
    match cmd {
        KeysCommand::List { json } => {
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
    }
    Ok(())
}
