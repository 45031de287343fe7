//! grpc.health.v1: SERVING while the database answers, NOT_SERVING while it does not.
use std::time::Duration;

use tokio::sync::watch;
use tonic_health::{ServingStatus, server::HealthReporter};

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

/// Probes the database until `stop` turns true, reporting each change.
pub async fn watch_database(
    store: Store,
    reporter: HealthReporter,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = None;
    loop {
        let healthy = matches!(
            tokio::time::timeout(Duration::from_secs(2), store.ping()).await,
            Ok(Ok(()))
        );
        let status = if healthy {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            if healthy {
                tracing::info!("database answers: serving");
            } else {
                tracing::warn!("database does not answer: not serving");
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
