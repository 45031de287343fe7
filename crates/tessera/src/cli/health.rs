//! `tessera health`: asks a running server's grpc.health.v1 whether it serves. For container
//! health checks, which have no grpcurl.
use std::time::Duration;

use anyhow::Context;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Exits successfully only when the server at `addr` reports SERVING for `service`.
pub async fn check(addr: &str, service: &str) -> anyhow::Result<()> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .with_context(|| format!("invalid address {addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(3));
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach {addr}"))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .with_context(|| format!("health check of {addr} failed"))?
        .into_inner();
    let status = ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown);
    if status != ServingStatus::Serving {
        anyhow::bail!("{addr} is {}", status.as_str_name());
    }
    println!("SERVING");
    Ok(())
}
