//! Metrics (SPEC §9): the process's Prometheus recorder and the `/metrics` listener. The
//! series are recorded where things happen (the edges, the token service, the stream feed);
//! the gauges of state (revocation lag, hashing places in use, database up, process) are read
//! when Prometheus scrapes. No label holds a secret, a token or a username: labels are method,
//! route, code, grant and outcome names only.
use std::{future::Future, sync::Arc, sync::OnceLock};

use axum::{Router, extract::State, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::domain::service::TokenService;
use crate::edge::tls::{Listener, Tls};

/// Latency buckets, in seconds, for the handling-time histograms.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0,
];

/// The process's recorder: the `metrics` facade has one, so every application in a process
/// (tests start many) records into it. `None` if another recorder was installed first.
pub fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!("grpc_server_started_total", "RPCs started on the server");
    metrics::describe_counter!(
        "grpc_server_handled_total",
        "RPCs completed on the server, by code"
    );
    metrics::describe_histogram!(
        "grpc_server_handling_seconds",
        metrics::Unit::Seconds,
        "time to answer an RPC (to open a stream, for WatchRevocations)"
    );
    metrics::describe_counter!(
        "http_server_requests_total",
        "HTTP requests answered, by route and status"
    );
    metrics::describe_histogram!(
        "http_server_request_duration_seconds",
        metrics::Unit::Seconds,
        "time to answer an HTTP request"
    );
    metrics::describe_counter!("tessera_tokens_issued_total", "tokens issued, by grant");
    metrics::describe_counter!("tessera_logins_total", "password logins, by outcome");
    metrics::describe_gauge!(
        "tessera_revocation_lag_seconds",
        metrics::Unit::Seconds,
        "time since this instance last read the revocation log"
    );
    metrics::describe_gauge!(
        "tessera_hashing_queue",
        "password hashing places in use (hashes running or about to)"
    );
    metrics::describe_gauge!("tessera_database_up", "1 when the database is usable");
    metrics::describe_gauge!("tessera_watch_streams", "WatchRevocations streams open");
}

/// What a scrape reads.
#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    tokens: Arc<TokenService>,
    process: Arc<metrics_process::Collector>,
}

/// Serves `GET /metrics` on `listener` until `stop`, over TLS with `tls` (a client certificate
/// required when there is a client CA), with the HTTP listener's connection `limits`.
pub async fn serve(
    listener: TcpListener,
    tokens: Arc<TokenService>,
    limits: &crate::server::limits::Limits,
    tls: Option<Arc<Tls>>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Some(handle) = recorder() else {
        anyhow::bail!("another metrics recorder was installed in this process");
    };
    let process = metrics_process::Collector::default();
    process.describe();
    let router = Router::new()
        .route("/metrics", get(render))
        .with_state(Scrape {
            handle,
            tokens,
            process: Arc::new(process),
        });
    let tls = tls.map(|tls| (tls, Listener::Metrics));
    crate::http::serve(listener, router, limits, tls, stop).await?;
    Ok(())
}

async fn render(State(scrape): State<Scrape>) -> String {
    let tokens = &scrape.tokens;
    let lag_ms = tokens.now_ms() - tokens.revocations().last_read_ms();
    metrics::gauge!("tessera_revocation_lag_seconds").set(lag_ms.max(0) as f64 / 1000.0);
    metrics::gauge!("tessera_hashing_queue").set(tokens.hasher().in_use() as f64);
    metrics::gauge!("tessera_database_up").set(if tokens.database_usable() { 1.0 } else { 0.0 });
    scrape.process.collect();
    scrape.handle.render()
}
