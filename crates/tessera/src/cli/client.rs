//! `tessera client create|list|disable|rotate-secret`.
use clap::{Subcommand, ValueEnum};
use secrecy::ExposeSecret;
use serde_json::json;

use super::{TokenLifetimeArgs, output, serve::open_store};
use crate::config::DatabaseArgs;
use crate::domain::clients::{self, ClientKind};

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client; prints its id (and secret, the only time it is shown).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        kind: KindArg,
        /// Give a marketplace client a secret too (for token exchange).
        #[arg(long)]
        with_secret: bool,
        #[arg(long)]
        json: bool,
    },
    /// List clients (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable a client: its sessions end and its tokens become inactive.
    Disable {
        client_id: String,
        #[command(flatten)]
        lifetimes: TokenLifetimeArgs,
    },
    /// Replace a client's secret; the old one stops working at once.
    RotateSecret {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KindArg {
    Marketplace,
    Integration,
}

impl From<KindArg> for ClientKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Marketplace => ClientKind::Marketplace,
            KindArg::Integration => ClientKind::Integration,
        }
    }
}

pub async fn run(db: &DatabaseArgs, cmd: ClientCommand) -> anyhow::Result<()> {
    let store = open_store(db).await?;
    match cmd {
        ClientCommand::Create {
            name,
            kind,
            with_secret,
            json,
        } => {
            let created = clients::create_client(&store, &name, kind.into(), with_secret).await?;
            let secret = created
                .client_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned());
            if json {
                let mut value = json!({ "client_id": created.client_id });
                if let Some(secret) = secret {
                    value["client_secret"] = json!(secret);
                }
                output::json(&value)?;
            } else {
                println!("client_id:     {}", created.client_id);
                if let Some(secret) = secret {
                    println!("client_secret: {secret}");
                    println!("(the secret is shown only now; store it safely)");
                }
            }
        }
        ClientCommand::List { json } => {
            let list = clients::list_clients(&store).await?;
            if json {
                output::json(&list)?;
            } else {
                println!(
                    "{:<36}  {:<11}  {:<6}  {:<8}  {:<29}  NAME",
                    "CLIENT_ID", "KIND", "SECRET", "STATUS", "CREATED"
                );
                for c in list {
                    println!(
                        "{:<36}  {:<11}  {:<6}  {:<8}  {:<29}  {}",
                        c.client_id,
                        c.kind,
                        if c.has_secret { "yes" } else { "no" },
                        if c.disabled { "disabled" } else { "active" },
                        output::time(c.created_at),
                        c.name
                    );
                }
            }
        }
        ClientCommand::Disable {
            client_id,
            lifetimes,
        } => {
            let kept_for = lifetimes.verification_window()?;
            if !clients::disable_client(&store, &client_id, kept_for).await? {
                anyhow::bail!("no client with id {client_id}");
            }
            eprintln!("client {client_id} disabled; its sessions ended");
        }
        ClientCommand::RotateSecret { client_id, json } => {
            let Some(secret) = clients::rotate_secret(&store, &client_id).await? else {
                anyhow::bail!("no client with id {client_id}");
            };
            if json {
                output::json(
                    &json!({ "client_id": client_id, "client_secret": secret.expose_secret() }),
                )?;
            } else {
                println!("client_id:     {client_id}");
                println!("client_secret: {}", secret.expose_secret());
                println!("(the old secret no longer works)");
            }
        }
    }
    Ok(())
}
