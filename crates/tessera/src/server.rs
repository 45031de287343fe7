//! Builds the application: database, migrations, master key, key ring, and the tonic router
//! with AuthService, health and reflection. Binds first, then serves (tests bind port 0).
use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::{net::TcpListener, sync::watch};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::ServingStatus;

use crate::config::{Config, redact_url};
use crate::domain::{
    TokenService, cleanup,
    clock::now_ms,
    hashing::HashingPool,
    keyring::KeyRing,
    master_key::MasterKey,
    revocation_view::{self, RevocationView},
};
use crate::grpc::{
    auth_service::AuthServiceImpl,
    health::{AUTH_SERVICE_NAME, report, watch_database},
    pb::{self, auth_service_server::AuthServiceServer},
};
use crate::store::{self, Backend, Store};

/// How long a stopping server waits for open calls (streams included) before it closes them.
/// Unary calls end within their deadline, well before this.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests larger than this are refused before they are decoded.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A built, bound, not yet serving Tessera.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    store: Store,
    tokens: Arc<TokenService>,
    config: Config,
}

impl Application {
    /// Connects, migrates, opens the key ring and binds the listen address.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let (store, tokens) = build_token_service(&config).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            store,
            tokens,
            config,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The token service, for tests that need to reach behind the API.
    pub fn tokens(&self) -> Arc<TokenService> {
        self.tokens.clone()
    }

    /// The store, for tests and tools.
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Serves until SIGINT or SIGTERM, then drains in-flight calls.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then reports NOT_SERVING and drains in-flight calls.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (reporter, health_service) = tonic_health::server::health_reporter();
        report(&reporter, ServingStatus::Serving).await;
        let (stop_tx, stop_rx) = watch::channel(false);
        let watcher = tokio::spawn(watch_database(
            self.store.clone(),
            self.tokens.clone(),
            reporter.clone(),
            stop_rx.clone(),
        ));
        let key_follower = tokio::spawn(follow_key_rotation(self.tokens.clone(), stop_rx.clone()));
        let revocation_follower =
            tokio::spawn(follow_revocations(self.tokens.clone(), stop_rx.clone()));
        let cleaner = tokio::spawn(clean_up(
            self.store.clone(),
            self.tokens.clone(),
            self.config.cleanup_interval,
            stop_rx,
        ));

        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let auth = AuthServiceServer::new(AuthServiceImpl::new(
            self.tokens.clone(),
            self.config.introspection_auth,
        ))
        .max_decoding_message_size(MAX_REQUEST_BYTES);

        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        tracing::info!(addr = %self.local_addr, "serving tessera.auth.v1.AuthService");
        let mut shutdown_reporter = reporter.clone();
        let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
        let serve = Server::builder()
            .timeout(Duration::from_secs(30))
            .add_service(auth)
            .add_service(health_service.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(reflection_v1.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(reflection_v1alpha.max_decoding_message_size(MAX_REQUEST_BYTES))
            .serve_with_incoming_shutdown(incoming, async move {
                stop.await;
                let _ = stop_tx.send(true);
                report(&shutdown_reporter, ServingStatus::NotServing).await;
                // Health watchers get NOT_SERVING, then the end of their stream: an open
                // Watch must not hold the drain up.
                for name in ["", AUTH_SERVICE_NAME] {
                    shutdown_reporter.clear_service_status(name).await;
                }
                let _ = draining_tx.send(());
                tracing::info!("shutting down: draining in-flight calls");
            });
        let drain_deadline = async {
            if draining_rx.await.is_ok() {
                tokio::time::sleep(DRAIN_TIMEOUT).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            result = serve => result,
            () = drain_deadline => {
                tracing::warn!(timeout = ?DRAIN_TIMEOUT, "calls still open after the drain timeout: closing them");
                Ok(())
            }
        };
        watcher.abort();
        key_follower.abort();
        revocation_follower.abort();
        cleaner.abort();
        result.context("server failed")
    }
}

/// Everything an instance serves with, short of a listener: connects, migrates, opens the
/// key ring and the revocation view, and returns the store with the token service over it.
/// [`Application::build`] binds on top of this; in-process callers (the fuzz targets) wrap
/// the service in [`AuthServiceImpl`] and call the handlers directly. Nothing follows key
/// rotations or revocations made elsewhere unless the caller refreshes them.
pub async fn build_token_service(config: &Config) -> anyhow::Result<(Store, Arc<TokenService>)> {
    let master = resolve_master_key(config.master_key.as_ref(), &config.database_url)?;
    let db = store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the database at {}",
                redact_url(&config.database_url)
            )
        })?;
    store::migrate(&db)
        .await
        .context("cannot apply migrations")?;
    let store = Store::new(db);
    let keys = KeyRing::open(
        store.clone(),
        master,
        config.policy.key_verification_window(),
    )
    .await
    .context("cannot open the signing keys")?;
    let hasher =
        HashingPool::for_this_machine(config.hash_cost).context("invalid argon2 parameters")?;
    let revoked = RevocationView::load(store.clone(), config.policy.key_verification_window())
        .await
        .map_err(|e| anyhow::anyhow!("cannot load revocations: {e}"))?;
    // Made now, so that the first unknown username does not pay for it (or need a second
    // place in the hashing pool while holding one).
    hasher
        .dummy_hash()
        .await
        .map_err(|e| anyhow::anyhow!("cannot make the dummy hash: {e}"))?;
    let tokens = Arc::new(TokenService::new(
        store.clone(),
        keys,
        hasher,
        config.policy.clone(),
        revoked,
    ));
    Ok((store, tokens))
}

/// Reads revocations made by other instances and the CLI into this instance's view.
async fn follow_revocations(tokens: Arc<TokenService>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(revocation_view::POLL_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = tokens.revocations().refresh().await {
            // Introspection answers UNAVAILABLE once the view is too old; keep trying.
            tracing::debug!(reason = e.reason(), "could not read revocations");
        }
    }
}

/// Deletes rows past their time every `interval` (plus up to a tenth more, so that instances
/// started together spread out). Deletes are idempotent: any number of instances may do this.
async fn clean_up(
    store: Store,
    tokens: Arc<TokenService>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if interval.is_zero() {
        return;
    }
    loop {
        let jitter = {
            use rand::Rng;
            let tenth = u64::try_from(interval.as_millis() / 10).unwrap_or(u64::MAX);
            Duration::from_millis(rand::thread_rng().gen_range(0..=tenth))
        };
        tokio::select! {
            _ = tokio::time::sleep(interval + jitter) => {}
            _ = stop.changed() => return,
        }
        let started = std::time::Instant::now();
        match cleanup::delete_expired(&store, tokens.policy(), now_ms()).await {
            Ok(deleted) => tracing::debug!(
                refresh_tokens = deleted.refresh_tokens,
                sessions = deleted.sessions,
                revocation_events = deleted.revocation_events,
                login_throttles = deleted.login_throttles,
                took_ms = started.elapsed().as_millis(),
                "deleted expired rows"
            ),
            // Whatever was not deleted now is deleted next time.
            Err(e) => tracing::warn!(
                reason = e.reason(),
                error = %error_chain(&e),
                "could not delete expired rows"
            ),
        }
    }
}

/// An error and its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Picks up keys rotated elsewhere (another instance or `tessera keys rotate`) within a second.
async fn follow_key_rotation(tokens: Arc<TokenService>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(crate::domain::policy::KEY_FOLLOW_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        match tokens.keys().follow_rotation().await {
            Ok(true) => tracing::info!(kid = %tokens.keys().signing_kid(), "signing key rotated"),
            Ok(false) => {}
            // The health watcher reports an unreachable database; try again next tick.
            Err(e) => tracing::debug!(error = %e, "could not check for a key rotation"),
        }
    }
}

/// Reflection knows our service, health, both reflection versions (so that either lists
/// both), and google.rpc's error details (so that grpcurl can show `ErrorInfo`).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .include_reflection_service(false)
}

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

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
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
