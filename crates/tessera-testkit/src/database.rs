//! A database of its own for one test or benchmark run: a temp SQLite file, or a fresh
//! PostgreSQL database created through an admin URL and dropped afterwards.
use anyhow::Context;
use sea_orm::{ConnectionTrait, Database};
use tessera::store::with_database_name;

/// The environment variable that points the tests at PostgreSQL (an admin URL).
const TEST_DATABASE_URL: &str = "TESSERA_TEST_DATABASE_URL";

/// A database of its own; dropped (PostgreSQL) or deleted with its directory (SQLite) when
/// this value is dropped.
pub struct TestDb {
    pub url: String,
    /// A directory of the test's own: the SQLite file lives here, and so can logs and keys.
    pub dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// The test suite's database: PostgreSQL when `TESSERA_TEST_DATABASE_URL` is set, else a
    /// temp SQLite file. Panics when PostgreSQL is asked for and cannot be had.
    pub async fn new() -> Self {
        let admin_url = std::env::var(TEST_DATABASE_URL)
            .ok()
            .filter(|url| !url.is_empty());
        Self::create(admin_url.as_deref())
            .await
            .expect("a fresh test database")
    }

    /// A fresh PostgreSQL database made through `postgres_admin_url`, or a temp SQLite file
    /// when it is `None`.
    pub async fn create(postgres_admin_url: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("tessera-")
            .tempdir()
            .context("cannot create a temp directory")?;
        let Some(admin_url) = postgres_admin_url else {
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("tessera.db").display()
            );
            return Ok(Self {
                url,
                dir,
                postgres: None,
            });
        };
        let name = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(admin_url)
            .await
            .context("cannot connect to PostgreSQL")?;
        let created = admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("cannot create the database {name}"));
        admin.close().await.ok();
        created?;
        Ok(Self {
            url: with_database_name(admin_url, &name),
            dir,
            postgres: Some((admin_url.to_owned(), name)),
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The name of the PostgreSQL database, if this is one.
    pub fn postgres_name(&self) -> Option<&str> {
        self.postgres.as_ref().map(|(_, name)| name.as_str())
    }

    /// Drops the PostgreSQL database now, with any server still connected to it.
    pub async fn drop_now(&self) {
        if let Some((admin_url, name)) = &self.postgres {
            drop_database(admin_url, name).await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            // Drop cannot await: a short-lived runtime on its own thread does the work.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(drop_database(&admin_url, &name));
            })
            .join();
        }
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(admin) = Database::connect(admin_url).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        admin.close().await.ok();
    }
}
