//! The database: a temp SQLite file, a fresh PostgreSQL database, or the target server's one.
use anyhow::{Context, bail};
use tessera::{config::redact_url, store::Backend};
use tessera_testkit::TestDb;

use crate::args::Args;

pub struct BenchDb {
    pub url: String,
    pub kind: String,
    /// The temp SQLite file or fresh PostgreSQL database made for this run, removed at the end.
    own: Option<TestDb>,
}

impl BenchDb {
    pub async fn prepare(args: &Args) -> anyhow::Result<Self> {
        if args.target.is_some() {
            let Some(url) = args.database_url.clone() else {
                bail!(
                    "--target needs --database-url of that server's database (the benchmark registers its clients and users there)"
                );
            };
            if Backend::of_url(&url).is_none() {
                bail!(
                    "unsupported --database-url {}: expected sqlite://... or postgres://...",
                    redact_url(&url)
                );
            }
            return Ok(Self {
                kind: format!("target's {}", backend_name(&url)),
                url,
                own: None,
            });
        }
        match args.database_url.as_deref() {
            None => {
                let db = TestDb::create(None).await?;
                Ok(Self {
                    url: db.url.clone(),
                    kind: "sqlite (temp file)".into(),
                    own: Some(db),
                })
            }
            Some(url) => match Backend::of_url(url) {
                Some(Backend::Sqlite) => Ok(Self {
                    url: url.to_owned(),
                    kind: "sqlite".into(),
                    own: None,
                }),
                Some(Backend::Postgres) => {
                    let db = TestDb::create(Some(url)).await.with_context(|| {
                        format!("cannot make a fresh database at {}", redact_url(url))
                    })?;
                    Ok(Self {
                        url: db.url.clone(),
                        kind: format!(
                            "postgres (fresh database {})",
                            db.postgres_name().unwrap_or_default()
                        ),
                        own: Some(db),
                    })
                }
                None => bail!(
                    "unsupported --database-url {}: expected sqlite://... or postgres://...",
                    redact_url(url)
                ),
            },
        }
    }

    /// Drops the database made for this run (PostgreSQL) or deletes its temp file (SQLite).
    pub async fn cleanup(&mut self) {
        if let Some(db) = self.own.take() {
            db.drop_now().await;
            if let Some(name) = db.postgres_name() {
                eprintln!("dropped the database {name}");
            }
        }
    }
}

fn backend_name(url: &str) -> &'static str {
    match Backend::of_url(url) {
        Some(Backend::Sqlite) => "sqlite",
        Some(Backend::Postgres) => "postgres",
        None => "unknown",
    }
}
