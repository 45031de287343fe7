//! Health for HTTP load balancers: `/healthz` while the process serves, `/readyz` while it
//! can answer (the database probe finds the database usable, and the server is not stopping).
use axum::{extract::State, response::Response};
use http::{HeaderValue, StatusCode, header};

use super::{HttpState, error::json};

/// `GET /healthz`: 200 while the process serves.
pub async fn live() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "serving"}))
}

/// `GET /readyz`: 200 while the database is usable, 503 (with `Retry-After`) otherwise and
/// once the server is stopping.
pub async fn ready(State(state): State<HttpState>) -> Response {
    if state.tokens.database_usable() && !state.is_stopping() {
        return json(StatusCode::OK, &serde_json::json!({"status": "serving"}));
    }
    let mut response = json(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({"status": "not_serving"}),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
