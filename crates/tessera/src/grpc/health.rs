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

/// Probes that time out in a row before a database counts as unusable. One slow probe is what
/// a busy writer queue or a checkpoint looks like; a database that hangs fails every probe
/// (and the calls that need it meet their deadline in the meantime).
const TIMEOUTS_BEFORE_UNUSABLE: u32 = 2;

/// What one probe found.
enum Probe {
    Usable,
    /// The database answered with an error: it refuses connections, reads or writes.
    Failed,
    TimedOut,
}

/// One read and one write, within the probe timeout.
async fn probe(store: &Store) -> Probe {
    let probe = async {
        store.ping().await?;
        store.probe_write(now_ms()).await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => Probe::Usable,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, source = ?std::error::Error::source(&e), "database probe failed");
            Probe::Failed
        }
        Err(_) => {
            tracing::debug!("database probe timed out");
            Probe::TimedOut
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
    let mut timeouts_in_a_row = 0;
    loop {
        let found = probe(&store).await;
        if *stop.borrow() {
            // Stopping: the server reports NOT_SERVING itself; a late probe must not undo it.
            return;
        }
        let healthy = match found {
            Probe::Usable => true,
            Probe::Failed => false,
            Probe::TimedOut => {
                timeouts_in_a_row += 1;
                last == Some(ServingStatus::Serving) && timeouts_in_a_row < TIMEOUTS_BEFORE_UNUSABLE
            }
        };
        if !matches!(found, Probe::TimedOut) {
            timeouts_in_a_row = 0;
        }
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
