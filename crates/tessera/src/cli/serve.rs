//! `tessera serve` and `tessera migrate`, and the database opening other commands share.
use anyhow::Context;

use crate::config::{Config, DatabaseArgs, HashArgs, ServeArgs, redact_url, validate_database_url};
use crate::server::Application;
use crate::store::{self, Store};

/// Serves until SIGTERM or Ctrl-C.
pub async fn serve(db: &DatabaseArgs, hashing: &HashArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let config = Config::from_args(db, hashing, args)?;
    Application::build(config).await?.run_until_stopped().await
}

/// Applies pending migrations and exits.
pub async fn migrate(db: &DatabaseArgs) -> anyhow::Result<()> {
    open_store(db).await?;
    eprintln!("migrations applied");
    Ok(())
}

/// Opens the database and brings its schema up to date.
pub async fn open_store(db: &DatabaseArgs) -> anyhow::Result<Store> {
    let url = validate_database_url(&db.database_url)?;
    let conn = store::connect(&url)
        .await
        .with_context(|| format!("cannot open the database at {}", redact_url(&url)))?;
    store::migrate(&conn)
        .await
        .context("cannot apply migrations")?;
    Ok(Store::new(conn))
}
