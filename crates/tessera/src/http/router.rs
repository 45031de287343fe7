//! The routes of the HTTP listener, what every handler shares ([`HttpState`]), and how a
//! request runs: inside its span, its outcome recorded, as gRPC calls do.
use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router,
    response::{IntoResponse, Response},
    routing::{MethodRouter, get, post},
};
use tracing::{Instrument as _, field::Empty};

use super::{ApiError, cors, health, introspect, keys, revoke, token};
use crate::config::{CorsOrigins, IntrospectionAuth};
use crate::domain::TokenService;
use crate::edge::call;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct HttpState {
    pub(super) tokens: Arc<TokenService>,
    pub(super) introspection_auth: IntrospectionAuth,
    /// Proxies whose `x-forwarded-for` is believed.
    pub(super) trusted_proxies: Arc<[ipnet::IpNet]>,
    /// Set when the server starts to stop: `/readyz` then sends load balancers elsewhere.
    stopping: Arc<AtomicBool>,
}

impl HttpState {
    pub fn new(
        tokens: Arc<TokenService>,
        introspection_auth: IntrospectionAuth,
        trusted_proxies: &[ipnet::IpNet],
    ) -> Self {
        Self {
            tokens,
            introspection_auth,
            trusted_proxies: Arc::from(trusted_proxies),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Marks the server as stopping.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

/// The HTTP listener's routes (SPEC §8), under the CORS rule of `origins`. Requests need the
/// peer's address ([`axum::extract::ConnectInfo`]): [`super::serve`] adds it.
pub fn router(state: HttpState, origins: &CorsOrigins) -> Router {
    let trusted = state.trusted_proxies.clone();
    let routes = Router::new()
        .route("/v1/auth/token", only("POST", post(token::token)))
        .route("/v1/auth/revoke", only("POST", post(revoke::revoke)))
        .route(
            "/v1/auth/introspect",
            only("POST", post(introspect::introspect)),
        )
        .route("/v1/auth/keys", only("GET", get(keys::keys)))
        .route("/healthz", only("GET", get(health::live)))
        .route("/readyz", only("GET", get(health::ready)))
        .fallback(|| async { ApiError::not_found() })
        .layer(cors::cors_layer(origins))
        .with_state(state);
    super::trace::layer(routes, trusted)
}

/// A route that answers 405, with `Allow`, to any other method.
fn only(allow: &'static str, route: MethodRouter<HttpState>) -> MethodRouter<HttpState> {
    route.fallback(move || async move { ApiError::method_not_allowed(allow) })
}

/// Runs one request inside its span (`route`, `client_id` once known, `outcome`) and logs how
/// it ended, once.
pub(super) async fn traced(
    route: &'static str,
    work: impl Future<Output = Result<Response, ApiError>>,
) -> Response {
    let span = tracing::info_span!("http", route, client_id = Empty, outcome = Empty);
    let started = std::time::Instant::now();
    let response = async move {
        let result = work.await;
        call::record_outcome("request", &result);
        result.unwrap_or_else(IntoResponse::into_response)
    }
    .instrument(span)
    .await;
    // `route` is "METHOD /path", a constant of ours: safe as labels.
    let (method, path) = route.split_once(' ').unwrap_or(("", route));
    metrics::counter!(
        "http_server_requests_total",
        "method" => method,
        "route" => path,
        "status" => response.status().as_str().to_owned()
    )
    .increment(1);
    metrics::histogram!(
        "http_server_request_duration_seconds",
        "method" => method,
        "route" => path
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// Names the caller's client on the request's span, when it has the shape of one.
pub(super) fn record_client_id(client_id: &str) {
    tracing::Span::current().record(
        "client_id",
        crate::edge::shape::loggable_client_id(client_id),
    );
}
