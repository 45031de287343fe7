//! The one place that turns a failure into an HTTP answer: RFC 6749 §5.2 JSON
//! `{"error", "error_description"}` with the status SPEC §8 gives each OAuth error code.
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::domain::DomainError;
use crate::edge::call::Outcome;

/// Why an HTTP request failed: a domain error, or what only HTTP can get wrong.
#[derive(Debug)]
pub struct ApiError {
    kind: Kind,
    /// The scheme the caller authenticated with, named again in `WWW-Authenticate` when the
    /// answer is 401 (RFC 6749 §5.2, RFC 6750 §3).
    challenge: Option<Challenge>,
}

#[derive(Debug)]
enum Kind {
    Domain(DomainError),
    UnsupportedGrantType,
    PayloadTooLarge,
    UnsupportedMediaType,
    BodyTimeout,
    MethodNotAllowed(&'static str),
    NotFound,
}

/// How the caller authenticated, or was expected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer,
}

/// The realm every challenge names.
const REALM: &str = "tessera";

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        Self {
            kind: Kind::Domain(err),
            challenge: None,
        }
    }
}

impl Outcome for ApiError {
    fn outcome(&self) -> &'static str {
        self.code()
    }
}

impl ApiError {
    fn of(kind: Kind) -> Self {
        Self {
            kind,
            challenge: None,
        }
    }

    /// A `grant_type` Tessera does not serve.
    pub fn unsupported_grant_type() -> Self {
        Self::of(Kind::UnsupportedGrantType)
    }

    /// A body over the 64 KiB bound.
    pub fn payload_too_large() -> Self {
        Self::of(Kind::PayloadTooLarge)
    }

    /// A body that is not a form.
    pub fn unsupported_media_type() -> Self {
        Self::of(Kind::UnsupportedMediaType)
    }

    /// A body that did not arrive in time.
    pub fn body_timeout() -> Self {
        Self::of(Kind::BodyTimeout)
    }

    /// Another method than `allow` on a known path.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self::of(Kind::MethodNotAllowed(allow))
    }

    /// A path Tessera does not serve.
    pub fn not_found() -> Self {
        Self::of(Kind::NotFound)
    }

    /// Names the scheme the caller authenticated with, for a 401's `WWW-Authenticate`.
    pub fn challenge(mut self, challenge: Option<Challenge>) -> Self {
        if self.challenge.is_none() {
            self.challenge = challenge;
        }
        self
    }

    /// The OAuth error code (RFC 6749 §5.2, RFC 6750 §3.1).
    pub fn code(&self) -> &'static str {
        match &self.kind {
            // A bearer that proves nothing is RFC 6750's invalid_token, whichever way it fails.
            Kind::Domain(DomainError::CallerNotAllowed | DomainError::InvalidBearer) => {
                "invalid_token"
            }
            Kind::Domain(err) => err.reason(),
            Kind::UnsupportedGrantType => "unsupported_grant_type",
            Kind::PayloadTooLarge
            | Kind::UnsupportedMediaType
            | Kind::BodyTimeout
            | Kind::MethodNotAllowed(_)
            | Kind::NotFound => "invalid_request",
        }
    }

    fn status(&self) -> StatusCode {
        match &self.kind {
            Kind::Domain(err) => match err {
                DomainError::InvalidRequest(_)
                | DomainError::InvalidGrant
                | DomainError::UnauthorizedClient
                | DomainError::ForeignToken
                | DomainError::InvalidScope => StatusCode::BAD_REQUEST,
                DomainError::InvalidClient
                | DomainError::MissingCallerToken
                | DomainError::CallerNotAllowed
                | DomainError::InvalidBearer => StatusCode::UNAUTHORIZED,
                DomainError::SlowDown { .. } => StatusCode::TOO_MANY_REQUESTS,
                DomainError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                DomainError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Kind::UnsupportedGrantType => StatusCode::BAD_REQUEST,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Kind::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Kind::NotFound => StatusCode::NOT_FOUND,
        }
    }

    fn description(&self) -> String {
        match &self.kind {
            Kind::Domain(DomainError::InvalidRequest(violations)) => {
                let fields: Vec<_> = violations
                    .iter()
                    .map(|v| format!("{} {}", v.field, v.description))
                    .collect();
                format!("invalid request: {}", fields.join("; "))
            }
            Kind::Domain(DomainError::Internal(_)) => "internal error".into(),
            Kind::Domain(err) => err.to_string(),
            Kind::UnsupportedGrantType => "grant_type must be client_credentials, password, \
                 token_exchange (or urn:ietf:params:oauth:grant-type:token-exchange) or \
                 refresh_token"
                .into(),
            Kind::PayloadTooLarge => format!(
                "the request body is larger than {} KiB",
                crate::server::MAX_REQUEST_BYTES / 1024
            ),
            Kind::UnsupportedMediaType => {
                "the request body must be application/x-www-form-urlencoded".into()
            }
            Kind::BodyTimeout => "the request body did not arrive in time".into(),
            Kind::MethodNotAllowed(allow) => format!("this endpoint takes {allow} only"),
            Kind::NotFound => "no such endpoint".into(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match &self.kind {
            Kind::Domain(DomainError::SlowDown { retry_after }) => Some(*retry_after),
            Kind::Domain(DomainError::Unavailable) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    fn www_authenticate(&self) -> Option<String> {
        if self.status() != StatusCode::UNAUTHORIZED {
            return None;
        }
        let bearer_error = matches!(
            self.kind,
            Kind::Domain(DomainError::CallerNotAllowed | DomainError::InvalidBearer)
        );
        match (self.challenge, bearer_error) {
            (_, true) => Some(format!("Bearer realm=\"{REALM}\", error=\"invalid_token\"")),
            (Some(Challenge::Bearer), false) => Some(format!("Bearer realm=\"{REALM}\"")),
            (Some(Challenge::Basic), false) => {
                Some(format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""))
            }
            (None, false) => None,
        }
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache`: what RFC 6749 §5.1 asks of every answer
/// that carries a token, and what no error answer should be cached for either.
pub fn no_store(headers: &mut http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A JSON answer.
pub fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Kind::Domain(DomainError::Internal(cause)) = &self.kind {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let status = self.status();
        let body = serde_json::json!({
            "error": self.code(),
            "error_description": self.description(),
        });
        let mut response = json(status, &body);
        let headers = response.headers_mut();
        no_store(headers);
        if let Some(delay) = self.retry_after() {
            // Whole seconds, rounded up: a client that waits what it is told is not early.
            let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Some(challenge) = self.www_authenticate()
            && let Ok(value) = HeaderValue::from_str(&challenge)
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Kind::MethodNotAllowed(allow) = self.kind {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_oauth_error_gets_the_status_spec_8_gives_it() {
        let cases = [
            (
                ApiError::from(DomainError::invalid_field("token", "is required")),
                400,
                "invalid_request",
            ),
            (
                ApiError::from(DomainError::InvalidGrant),
                400,
                "invalid_grant",
            ),
            (
                ApiError::unsupported_grant_type(),
                400,
                "unsupported_grant_type",
            ),
            (
                ApiError::from(DomainError::InvalidScope),
                400,
                "invalid_scope",
            ),
            (
                ApiError::from(DomainError::UnauthorizedClient),
                400,
                "unauthorized_client",
            ),
            (
                ApiError::from(DomainError::InvalidClient),
                401,
                "invalid_client",
            ),
            (
                ApiError::from(DomainError::InvalidBearer),
                401,
                "invalid_token",
            ),
            (
                ApiError::from(DomainError::SlowDown {
                    retry_after: Duration::from_millis(2500),
                }),
                429,
                "slow_down",
            ),
            (
                ApiError::from(DomainError::Unavailable),
                503,
                "temporarily_unavailable",
            ),
            (ApiError::payload_too_large(), 413, "invalid_request"),
            (ApiError::unsupported_media_type(), 415, "invalid_request"),
            (ApiError::method_not_allowed("POST"), 405, "invalid_request"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.code(), code);
            assert_eq!(error.into_response().status().as_u16(), status, "{code}");
        }
    }

    #[test]
    fn throttled_and_unavailable_answers_say_when_to_retry_in_whole_seconds() {
        let slow = ApiError::from(DomainError::SlowDown {
            retry_after: Duration::from_millis(2500),
        })
        .into_response();
        assert_eq!(slow.headers()[header::RETRY_AFTER], "3");
        let down = ApiError::from(DomainError::Unavailable).into_response();
        assert_eq!(down.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn a_client_that_used_basic_is_challenged_with_basic() {
        let answer = ApiError::from(DomainError::InvalidClient)
            .challenge(Some(Challenge::Basic))
            .into_response();
        let challenge = answer.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .expect("ascii");
        assert!(challenge.starts_with("Basic "), "{challenge}");
        let plain = ApiError::from(DomainError::InvalidClient).into_response();
        assert!(plain.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
