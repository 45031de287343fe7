//! `tessera user create|disable|set-password`. Passwords come from stdin (a prompt without
//! echo on a terminal), never from the command line, where `ps` and shell history see them.
use std::io::{IsTerminal, Read};

use clap::Subcommand;
use secrecy::SecretString;
use serde_json::json;

use super::{TokenLifetimeArgs, output, serve::open_store};
use crate::config::{DatabaseArgs, HashArgs};
use crate::domain::{hashing::HashingPool, users};

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Register an end user; the password is read from stdin.
    Create {
        /// The user's e-mail address (matched case-insensitively).
        #[arg(long)]
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: their sessions end and their tokens become inactive.
    Disable {
        username: String,
        #[command(flatten)]
        lifetimes: TokenLifetimeArgs,
    },
    /// Set a user's password (read from stdin); their sessions end.
    SetPassword {
        username: String,
        #[command(flatten)]
        lifetimes: TokenLifetimeArgs,
    },
}

/// The password: prompted for without echo on a terminal, else the first line of stdin.
fn read_password() -> anyhow::Result<SecretString> {
    if std::io::stdin().is_terminal() {
        return Ok(SecretString::from(rpassword::prompt_password(
            "Password: ",
        )?));
    }
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)?;
    let line = input.lines().next().unwrap_or_default();
    Ok(SecretString::from(line.to_owned()))
}

pub async fn run(db: &DatabaseArgs, hashing: &HashArgs, cmd: UserCommand) -> anyhow::Result<()> {
    let hasher = HashingPool::new(hashing.cost()?, 1, std::time::Duration::from_secs(60))?;
    let store = open_store(db).await?;
    match cmd {
        UserCommand::Create { username, json } => {
            let password = read_password()?;
            let user_id = users::create_user(&store, &hasher, &username, password).await?;
            if json {
                output::json(&json!({ "user_id": user_id }))?;
            } else {
                println!("user_id: {user_id}");
            }
        }
        UserCommand::Disable {
            username,
            lifetimes,
        } => {
            let kept_for = lifetimes.verification_window()?;
            if !users::disable_user(&store, &username, kept_for).await? {
                anyhow::bail!("no user named {}", users::normalize_username(&username));
            }
            eprintln!("user disabled; their sessions ended");
        }
        UserCommand::SetPassword {
            username,
            lifetimes,
        } => {
            let kept_for = lifetimes.verification_window()?;
            let password = read_password()?;
            if !users::set_password(&store, &hasher, &username, password, kept_for).await? {
                anyhow::bail!("no user named {}", users::normalize_username(&username));
            }
            eprintln!("password set; the user's sessions ended");
        }
    }
    Ok(())
}
