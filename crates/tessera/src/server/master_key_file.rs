//! The master key a serving instance seals its signing keys with: `TESSERA_MASTER_KEY`, or on
//! SQLite without one a development key kept in a 0600 file beside the database.
use std::path::PathBuf;

use anyhow::Context;
use secrecy::ExposeSecret;

use crate::domain::master_key::MasterKey;
use crate::store::Backend;

/// The master key: the configured one; on SQLite without one, a dev key kept in a 0600 file
/// beside the database (with a warning); on PostgreSQL without one, an error.
pub fn resolve_master_key(
    master_key: Option<&secrecy::SecretString>,
    database_url: &str,
) -> anyhow::Result<MasterKey> {
    let backend = Backend::of_url(database_url).context("unsupported database URL")?;
    if let Some(text) = master_key {
        return MasterKey::from_base64(text.expose_secret())
            .map_err(|e| anyhow::anyhow!("invalid TESSERA_MASTER_KEY: {e}"));
    }
    if backend == Backend::Postgres {
        anyhow::bail!(
            "TESSERA_MASTER_KEY is required with PostgreSQL (make one with: openssl rand -base64 32)"
        );
    }
    let Some(path) = dev_master_key_path(database_url) else {
        tracing::warn!(
            "TESSERA_MASTER_KEY is not set: using a throw-away key for this in-memory database"
        );
        return Ok(MasterKey::generate().0);
    };
    load_or_create_dev_key(&path)
}

/// `<database file>.master-key` for a file-backed SQLite URL; `None` for in-memory ones.
pub fn dev_master_key_path(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") || database_url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(format!("{path}.master-key")))
}

fn load_or_create_dev_key(path: &std::path::Path) -> anyhow::Result<MasterKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            tracing::warn!(path = %path.display(), "TESSERA_MASTER_KEY is not set: using the development key file (set TESSERA_MASTER_KEY in production)");
            MasterKey::from_base64(&text)
                .map_err(|e| anyhow::anyhow!("invalid master key file {}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, text) = MasterKey::generate();
            write_private_file(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::warn!(path = %path.display(), "TESSERA_MASTER_KEY is not set: made a development key file (set TESSERA_MASTER_KEY in production)");
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

fn write_private_file(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_key_file_sits_beside_the_sqlite_file() {
        assert_eq!(
            dev_master_key_path("sqlite://tessera.db?mode=rwc"),
            Some(PathBuf::from("tessera.db.master-key"))
        );
        assert_eq!(
            dev_master_key_path("sqlite:///var/lib/t.db"),
            Some(PathBuf::from("/var/lib/t.db.master-key"))
        );
        assert_eq!(dev_master_key_path("sqlite::memory:"), None);
        assert_eq!(dev_master_key_path("postgres://h/db"), None);
    }
}
