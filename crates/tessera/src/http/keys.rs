//! `GET /v1/auth/keys`: the key set, as GetKeySet gives it (SPEC §8).
use axum::{extract::State, response::Response};
use http::StatusCode;

use super::{HttpState, error::json, router::traced};
use crate::edge::call::within_deadline;

/// The public keys that verify tokens now: `{"keys": [{"kid", "paserk", "create_time",
/// "retire_time", "signing"}]}`, times in RFC 3339 as protobuf's JSON mapping writes them.
pub async fn keys(State(state): State<HttpState>) -> Response {
    traced("GET /v1/auth/keys", async move {
        let keys = within_deadline(state.tokens.key_set()).await?;
        let keys: Vec<_> = keys
            .into_iter()
            .map(|k| {
                serde_json::json!({
                    "kid": k.kid,
                    "paserk": k.paserk,
                    "create_time": rfc3339(k.created_at),
                    "retire_time": k.retire_at.map(rfc3339),
                    "signing": k.signing,
                })
            })
            .collect();
        let mut response = json(StatusCode::OK, &serde_json::json!({ "keys": keys }));
        // A cache in between asks again each time: after a rotation, the new key must show.
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-cache"),
        );
        Ok(response)
    })
    .await
}

/// Unix milliseconds as RFC 3339 (UTC).
pub(super) fn rfc3339(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
