//! The server under load: started in-process, or the target's, reached through its database.
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tessera::{
    config::{Config, IntrospectionAuth, redact_url},
    domain::{hashing::HashCost, master_key::MasterKey, policy::TokenPolicy},
    server::Application,
    store::{self, Store},
};
use tokio::sync::oneshot;
use tonic::transport::Channel;

use crate::{
    args::Args,
    database::BenchDb,
    requests::{Caller, HealthError},
    soak,
};

/// The server under load: where it listens, its store, and, when in-process, how to stop it.
pub struct Server {
    pub addr: String,
    pub store: Store,
    in_process: Option<InProcess>,
}

/// A server started in-process, how to stop it, and its configuration (for a sibling).
struct InProcess {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    config: Config,
}

impl Server {
    /// The `--target` server, or one started in-process on `db` (with the soak's short
    /// lifetimes and clean-up interval under `--soak`).
    pub async fn start(args: &Args, db: &BenchDb) -> anyhow::Result<Self> {
        if let Some(target) = &args.target {
            let conn = store::connect(&db.url).await.with_context(|| {
                format!("cannot open the target's database {}", redact_url(&db.url))
            })?;
            return Ok(Self {
                addr: target.clone(),
                store: Store::new(conn),
                in_process: None,
            });
        }
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            http_listen: None,
            // Recorded only with --metrics (the recorder is per process: compare processes).
            metrics_listen: args.metrics.then(|| "127.0.0.1:0".parse()).transpose()?,
            cors_origins: Default::default(),
            database_url: db.url.clone(),
            master_key: Some(MasterKey::generate().1.into()),
            policy: if args.soak.is_some() {
                soak::policy()
            } else {
                TokenPolicy::default()
            },
            introspection_auth: IntrospectionAuth::Bearer,
            hash_cost: HashCost::OWASP,
            max_watch_streams: tessera::grpc::watch::DEFAULT_MAX_STREAMS,
            // The load comes from this machine: it may say whose attempt a request is (the
            // attack scenarios give the real users and the attacker addresses of their own).
            trusted_proxies: vec!["127.0.0.1/32".parse()?],
            limits: Default::default(),
            tls: None,
            cleanup_interval: if args.soak.is_some() {
                soak::CLEANUP_INTERVAL
            } else {
                tessera::domain::cleanup::DEFAULT_INTERVAL
            },
        };
        Self::spawn(config).await
    }

    async fn spawn(config: Config) -> anyhow::Result<Self> {
        let app = Application::build(config.clone())
            .await
            .context("cannot start the in-process server")?;
        let (addr, store) = (app.local_addr().to_string(), app.store());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            store,
            in_process: Some(InProcess { stop, task, config }),
        })
    }

    /// A second in-process instance on the same database and master key (another port);
    /// `None` for a `--target` server.
    pub async fn sibling(&self) -> Option<anyhow::Result<Self>> {
        let config = self.in_process.as_ref()?.config.clone();
        Some(Self::spawn(config).await)
    }

    pub fn in_process(&self) -> bool {
        self.in_process.is_some()
    }

    /// Fails unless the server answers a health check with SERVING.
    pub async fn check_serving(&self, channel: &Channel) -> anyhow::Result<()> {
        let addr = &self.addr;
        match Caller::new(channel.clone()).health().await {
            Ok(()) => Ok(()),
            Err(HealthError::Status(s)) => Err(anyhow!(
                "the server at {addr} does not answer health checks: {s}"
            )),
            Err(HealthError::NotServing(status)) => {
                bail!("the server at {addr} reports {status:?}, not SERVING")
            }
        }
    }

    /// Stops the in-process server, if any, and closes the store.
    pub async fn stop(self) {
        if let Some(server) = self.in_process {
            let _ = server.stop.send(());
            match tokio::time::timeout(Duration::from_secs(15), server.task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => eprintln!("tessera-bench: warning: the server failed: {e:#}"),
                Ok(Err(e)) => eprintln!("tessera-bench: warning: the server task failed: {e}"),
                Err(_) => eprintln!("tessera-bench: warning: the server did not stop within 15s"),
            }
        }
        self.store.connection().clone().close().await.ok();
    }
}
