//! When spans are exported (OTLP): one span per HTTP request, named `METHOD /route` as
//! OpenTelemetry's conventions say, with its status, a child of the caller's W3C
//! `traceparent`. The handler's own span (route, client id, outcome) opens inside it. Without
//! an exporter this layer is not installed.
use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use tracing::{Instrument as _, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::telemetry;

/// Adds the request span layer to `router` when spans are exported.
pub(super) fn layer(router: axum::Router) -> axum::Router {
    if telemetry::exporting() {
        router.layer(axum::middleware::from_fn(request_span))
    } else {
        router
    }
}

async fn request_span(request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    // The route is ours (a path template); an unknown path is not named (it is the caller's).
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.clone(),
    };
    let span = tracing::info_span!(
        target: telemetry::OTEL_TARGET,
        "http",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = Empty,
    );
    // Fails only when the span is not exported (it always is, here).
    let _ = span.set_parent(telemetry::remote_parent(request.headers()));
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response
}
