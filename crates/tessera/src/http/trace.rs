//! When spans are exported (OTLP): one span per HTTP request, named `METHOD /route` as
//! OpenTelemetry's conventions say, with its status; in the caller's trace (W3C `traceparent`)
//! when the caller is a trusted proxy, else a trace of its own linked to the caller's (see
//! [`telemetry::place_in_callers_trace`]). The handler's own span (route, client id, outcome)
//! opens inside it. Without an exporter this layer is not installed.
//!
//! Span names are from a fixed set, so that no caller can multiply them: a method outside
//! HTTP's own is `_OTHER` and its span is named `HTTP`; a path that matches no route is never
//! named.
use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use http::Method;
use tracing::{Instrument as _, field::Empty};

use crate::{edge::address::trusted_peer, telemetry};

/// Adds the request span layer to `router` when spans are exported; `trusted` are the proxies
/// whose trace context is adopted (`TESSERA_TRUSTED_PROXIES`).
pub(super) fn layer(router: axum::Router, trusted: Arc<[ipnet::IpNet]>) -> axum::Router {
    if telemetry::exporting() {
        router.layer(axum::middleware::from_fn(move |request, next| {
            request_span(trusted.clone(), request, next)
        }))
    } else {
        router
    }
}

async fn request_span(trusted: Arc<[ipnet::IpNet]>, request: Request, next: Next) -> Response {
    // The route is ours (a path template); an unknown path is not named (it is the caller's).
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let (method, name) = span_name(request.method(), route.as_deref());
    let span = tracing::info_span!(
        target: telemetry::OTEL_TARGET,
        parent: None,
        "http",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = Empty,
    );
    // The peer is a trusted proxy: a TLS client certificate may be a ground for trust too
    // (mTLS), once the listener has one to show.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    telemetry::place_in_callers_trace(&span, request.headers(), trusted_peer(peer, &trusted));
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response
}

/// The `http.request.method` of a request (`_OTHER` for a method outside HTTP's own), and its
/// span's name: `METHOD /route`, `METHOD` when no route matched, `HTTP` for `_OTHER`.
fn span_name(method: &Method, route: Option<&str>) -> (&'static str, String) {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    let Some(method) = KNOWN.into_iter().find(|known| *known == method.as_str()) else {
        return ("_OTHER", "HTTP".to_owned());
    };
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    (method, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_names_come_from_a_fixed_set_whatever_the_caller_sends() {
        assert_eq!(
            span_name(&Method::POST, Some("/v1/auth/token")),
            ("POST", "POST /v1/auth/token".to_owned())
        );
        assert_eq!(span_name(&Method::GET, None), ("GET", "GET".to_owned()));
        for odd in ["BREW", "get", "X-SECRET-1234", "PROPFIND"] {
            let method = Method::from_bytes(odd.as_bytes()).expect("a method");
            assert_eq!(
                span_name(&method, Some("/v1/auth/token")),
                ("_OTHER", "HTTP".to_owned()),
                "{odd}"
            );
        }
    }
}
