//! Builds the application: database, migrations, master key, key ring, the tonic router with
//! AuthService, health and reflection (gRPC and gRPC-Web), and the HTTP router (SPEC §8).
//! Binds first, then serves (tests bind port 0).
mod jobs;
pub mod limits;
mod master_key_file;
pub mod metrics;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::ServingStatus;

use crate::config::{Config, check_mtls_introspection, redact_url};
use crate::edge::tls::{self, Listener, Tls};
pub use master_key_file::{dev_master_key_path, resolve_master_key};

use crate::domain::{
    TokenService,
    clock::{SharedClock, SystemClock},
    hashing::HashingPool,
    keyring::KeyRing,
    repository::SharedRepository,
    revocation_view::RevocationView,
};
use crate::grpc::{
    auth_service::AuthServiceImpl,
    health::{AUTH_SERVICE_NAME, report},
    pb::{self, auth_service_server::AuthServiceServer},
};
use crate::http::{self, HttpState};
use crate::store::{self, Store};
use jobs::Jobs;

/// How long a stopping server waits for open calls (streams included) before it closes them.
/// Unary calls end within their deadline, well before this.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests larger than this are refused before they are decoded.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A built, bound, not yet serving Tessera.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    /// The HTTP listener, unless `TESSERA_HTTP_LISTEN=off`.
    http_listener: Option<(TcpListener, SocketAddr)>,
    /// The metrics listener, unless `TESSERA_METRICS_LISTEN=off`.
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    store: Store,
    tokens: Arc<TokenService>,
    config: Config,
    /// TLS on every listener, unless plaintext.
    tls: Option<Arc<Tls>>,
}

impl Application {
    /// Connects, migrates, opens the key ring and binds the listen address.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, SystemClock::shared()).await
    }

    /// [`Application::build`] on a clock of the caller's (a test's manual clock).
    pub async fn build_with_clock(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        // The files are checked first: a bad one is named before anything else happens.
        check_mtls_introspection(config.introspection_auth, config.tls.as_ref())?;
        let tls = config.tls.clone().map(Tls::load).transpose()?.map(Arc::new);
        let (store, tokens) = build_token_service(&config, clock).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let http_listener = match config.http_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for HTTP on {addr}"))?;
                let bound = listener.local_addr()?;
                Some((listener, bound))
            }
            None => None,
        };
        let metrics_listener = match config.metrics_listen {
            Some(addr) => {
                // Installed before anything is counted.
                metrics::recorder();
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for metrics on {addr}"))?;
                let bound = listener.local_addr()?;
                Some((listener, bound))
            }
            None => None,
        };
        Ok(Self {
            listener,
            local_addr,
            http_listener,
            metrics_listener,
            store,
            tokens,
            config,
            tls,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The HTTP listener's bound address, if there is one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_listener.as_ref().map(|(_, addr)| *addr)
    }

    /// The metrics listener's bound address, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, addr)| *addr)
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
        let jobs = Arc::new(Jobs::start(
            self.store.clone(),
            self.tokens.clone(),
            reporter.clone(),
            self.config.cleanup_interval,
        ));
        let jobs_to_stop = jobs.clone();
        let tokens_to_stop = self.tokens.clone();
        // Ends with this function (the guard aborts it).
        let _tls_follower = self
            .tls
            .clone()
            .map(|tls| AbortOnDrop(tokio::spawn(tls.follow())));

        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let auth = AuthServiceServer::new(
            AuthServiceImpl::new(self.tokens.clone(), self.config.introspection_auth)
                .with_max_watch_streams(self.config.max_watch_streams)
                .with_trusted_proxies(&self.config.trusted_proxies),
        )
        .max_decoding_message_size(MAX_REQUEST_BYTES);

        // The HTTP listener faces browsers and the Internet: its introspection always wants an
        // `integ` bearer, whatever TESSERA_INTROSPECTION_AUTH lets the gRPC port do.
        let http_state = HttpState::new(
            self.tokens.clone(),
            crate::config::IntrospectionAuth::Bearer,
            &self.config.trusted_proxies,
        );
        let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let http = self.http_listener.map(|(listener, addr)| {
            let router = http::router(http_state.clone(), &self.config.cors_origins);
            tracing::info!(addr = %addr, "serving HTTP (/v1/auth/token, /v1/auth/revoke, /v1/auth/introspect, /v1/auth/keys)");
            let tls = self.tls.clone().map(|tls| (tls, Listener::Http));
            http::serve(listener, router, &self.config.limits, tls, async move {
                let _ = http_stop_rx.await;
            })
        });

        let (metrics_stop_tx, metrics_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let metrics_serving = self.metrics_listener.map(|(listener, addr)| {
            tracing::info!(addr = %addr, "serving metrics (/metrics)");
            metrics::serve(
                listener,
                self.tokens.clone(),
                &self.config.limits,
                self.tls.clone(),
                async move {
                    let _ = metrics_stop_rx.await;
                },
            )
        });

        let limits = &self.config.limits;
        // TCP keepalive finds peers that vanished.
        let incoming = TcpIncoming::from(self.listener)
            .with_nodelay(Some(true))
            .with_keepalive(limits.tcp_keepalive);
        tracing::info!(addr = %self.local_addr, tls = self.tls.is_some(), "serving tessera.auth.v1.AuthService");
        let mut shutdown_reporter = reporter.clone();
        let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
        // gRPC-Web (for browsers) beside gRPC on the same port, under the CORS rule both
        // listeners share; gRPC-Web over HTTP/1.1 needs HTTP/1 accepted.
        let serve = Server::builder()
            .timeout(Duration::from_secs(30))
            // Limits on each connection: streams (so calls) in flight on it (HTTP/1.1, for
            // gRPC-Web, carries one at a time), pings that find dead peers, and an age after
            // which it finishes its calls and closes (WatchRevocations readers reconnect and
            // resume). Not yet: a cap on connections, a timeout for a new one's first bytes.
            .max_concurrent_streams(limits.grpc_max_streams_per_connection)
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout))
            .max_connection_age(limits.grpc_max_connection_age)
            .max_connection_age_grace(limits.grpc_max_connection_age_grace)
            .accept_http1(true)
            .layer(http::cors_layer(&self.config.cors_origins))
            .layer(tonic_web::GrpcWebLayer::new())
            // Every call's series and span, health and reflection included.
            .layer(crate::grpc::observe::ObserveLayer::new(
                &self.config.trusted_proxies,
            ))
            .add_service(auth)
            .add_service(health_service.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(reflection_v1.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(reflection_v1alpha.max_decoding_message_size(MAX_REQUEST_BYTES));
        let shutdown = async move {
            stop.await;
            http_state.stop();
            let _ = http_stop_tx.send(());
            let _ = metrics_stop_tx.send(());
            jobs_to_stop.signal_stop();
            // WatchRevocations streams end at once: their callers reconnect elsewhere.
            tokens_to_stop.revocations().close_streams();
            report(&shutdown_reporter, ServingStatus::NotServing).await;
            // Health watchers get NOT_SERVING, then the end of their stream: an open
            // Watch must not hold the drain up.
            for name in ["", AUTH_SERVICE_NAME] {
                shutdown_reporter.clear_service_status(name).await;
            }
            let _ = draining_tx.send(());
            tracing::info!("shutting down: draining in-flight calls");
        };
        let serve: std::pin::Pin<
            Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>,
        > = match &self.tls {
            Some(tls) => Box::pin(
                serve.serve_with_incoming_shutdown(tls::incoming(incoming, tls.clone()), shutdown),
            ),
            None => Box::pin(serve.serve_with_incoming_shutdown(incoming, shutdown)),
        };
        let drain_deadline = async {
            if draining_rx.await.is_ok() {
                tokio::time::sleep(DRAIN_TIMEOUT).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let grpc = async { serve.await.context("gRPC server failed") };
        let http = async {
            match http {
                Some(http) => http.await.context("HTTP server failed"),
                None => Ok(()),
            }
        };
        let metrics_serving = async {
            match metrics_serving {
                Some(serving) => serving.await.context("metrics server failed"),
                None => Ok(()),
            }
        };
        let result = tokio::select! {
            result = async { tokio::try_join!(grpc, http, metrics_serving).map(|_| ()) } => result,
            () = drain_deadline => {
                tracing::warn!(timeout = ?DRAIN_TIMEOUT, "calls still open after the drain timeout: closing them");
                Ok(())
            }
        };
        if let Ok(jobs) = Arc::try_unwrap(jobs) {
            jobs.stop();
        }
        result
    }
}

/// Everything an instance serves with, short of a listener: connects, migrates, opens the
/// key ring and the revocation view, and returns the store with the token service over it.
/// [`Application::build`] binds on top of this; in-process callers (the fuzz targets) wrap
/// the service in [`AuthServiceImpl`] and call the handlers directly. Nothing follows key
/// rotations or revocations made elsewhere unless the caller refreshes them.
pub async fn build_token_service(
    config: &Config,
    clock: SharedClock,
) -> anyhow::Result<(Store, Arc<TokenService>)> {
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
    let repo: SharedRepository = Arc::new(store.clone());
    let keys = KeyRing::open(
        repo.clone(),
        master,
        config.policy.key_verification_window(),
        clock.clone(),
    )
    .await
    .context("cannot open the signing keys")?;
    let hasher =
        HashingPool::for_this_machine(config.hash_cost).context("invalid argon2 parameters")?;
    let revoked = RevocationView::load(
        repo.clone(),
        config.policy.key_verification_window(),
        clock.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot load revocations: {e}"))?;
    // Made now, so that the first unknown username does not pay for it (or need a second
    // place in the hashing pool while holding one).
    hasher
        .dummy_hash()
        .await
        .map_err(|e| anyhow::anyhow!("cannot make the dummy hash: {e}"))?;
    let tokens = Arc::new(TokenService::new(
        repo,
        keys,
        hasher,
        config.policy.clone(),
        revoked,
        clock,
    ));
    Ok((store, tokens))
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

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
