//! grpc.health.v1: SERVING while the database answers reads and takes writes, NOT_SERVING
//! while it does not (the database probe, in `server::jobs`, decides which), and NOT_SERVING
//! once the server stops.
use tonic_health::{ServingStatus, server::HealthReporter};

/// The service names health is reported for.
pub const AUTH_SERVICE_NAME: &str = "tessera.auth.v1.AuthService";

/// Sets both service names ("" and the AuthService) to `status`.
pub async fn report(reporter: &HealthReporter, status: ServingStatus) {
    for name in ["", AUTH_SERVICE_NAME] {
        reporter.set_service_status(name, status).await;
    }
}
