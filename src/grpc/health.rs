//! grpc.health.v1: SERVING while the database answers reads and takes writes, NOT_SERVING
//! while it does not.
use std::{sync::Arc, time::Duration};

use tokio::sync::watch;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::domain::{TokenService, clock::now_ms};
use crate::store::Store;

/// The service names health is reported for.
pub const AUTH_SERVICE_NAME: &str = "tessera.auth.v1.AuthService";

/// How often the database is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Sets both service names ("" and the AuthService) to `status`.
pub async fn report(reporter: &HealthReporter, status: ServingStatus) {
    for name in ["", AUTH_SERVICE_NAME] {
        reporter.set_service_status(name, status).await;
    }
}

/// A probe that takes longer than this counts as failed: a database that hangs is as
/// unusable as one that refuses.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// One read and one write, within the probe timeout.
async fn database_is_usable(store: &Store) -> bool {
    let probe = async {
        store.ping().await?;
        store.probe_write(now_ms()).await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, source = ?std::error::Error::source(&e), "database probe failed");
            false
        }
        Err(_) => {
            tracing::debug!("database probe timed out");
            false
        }
    }
}

/// Probes the database until `stop` turns true, reporting each change to health and to the
/// token service (which answers UNAVAILABLE while the database is unusable).
pub async fn watch_database(
    store: Store,
    tokens: Arc<TokenService>,
    reporter: HealthReporter,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = None;
    loop {
        let healthy = database_is_usable(&store).await;
        tokens.set_database_usable(healthy);
        let status = if healthy {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            if healthy {
                tracing::info!("database answers: serving");
            } else {
                tracing::warn!("database does not answer or refuses writes: not serving");
            }
            report(&reporter, status).await;
            last = Some(status);
        }
        tokio::select! {
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}
