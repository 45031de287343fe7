//! What a refused request gets: a gRPC status for gRPC callers (gRPC-Web included), an HTTP
//! status with `WWW-Authenticate` (RFC 6750 §3) for everyone else.
use std::collections::HashMap;

use http::{HeaderValue, StatusCode, header};
use tessera_proto::ERROR_DOMAIN;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Why the layer refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No bearer token, or one that does not verify: UNAUTHENTICATED / 401.
    InvalidToken(&'static str),
    /// A valid token without the scope the operation needs: PERMISSION_DENIED / 403.
    InsufficientScope(String),
    /// Revocations cannot be checked now: UNAVAILABLE / 503.
    Unavailable,
}

pub(crate) fn insufficient_scope_status(scope: &str) -> Status {
    status(
        Code::PermissionDenied,
        format!("the operation needs the scope {scope}"),
        "insufficient_scope",
    )
}

fn status(code: Code, message: String, reason: &str) -> Status {
    let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code, message, details)
}

impl Refusal {
    fn grpc_status(&self) -> Status {
        match self {
            Self::InvalidToken(why) => {
                status(Code::Unauthenticated, (*why).to_owned(), "invalid_token")
            }
            Self::InsufficientScope(scope) => insufficient_scope_status(scope),
            Self::Unavailable => status(
                Code::Unavailable,
                "revocations cannot be checked now: try again".to_owned(),
                "temporarily_unavailable",
            ),
        }
    }

    /// The answer, in the caller's protocol.
    pub(crate) fn response<B: Default>(&self, grpc: bool) -> http::Response<B> {
        if grpc {
            return self.grpc_status().into_http();
        }
        let (code, challenge) = match self {
            Self::InvalidToken(_) => (
                StatusCode::UNAUTHORIZED,
                "Bearer error=\"invalid_token\"".to_owned(),
            ),
            Self::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""),
            ),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
        };
        let mut response = http::Response::new(B::default());
        *response.status_mut() = code;
        if let Ok(value) = HeaderValue::from_str(&challenge)
            && !challenge.is_empty()
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// Whether a request speaks gRPC (or gRPC-Web), by its content type.
pub(crate) fn is_grpc<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_callers_get_401_403_503_with_a_bearer_challenge() {
        let invalid: http::Response<String> = Refusal::InvalidToken("no").response(false);
        assert_eq!(invalid.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            invalid.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        let scope: http::Response<String> =
            Refusal::InsufficientScope("trusted:user".into()).response(false);
        assert_eq!(scope.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            scope.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"insufficient_scope\", scope=\"trusted:user\""
        );
        let away: http::Response<String> = Refusal::Unavailable.response(false);
        assert_eq!(away.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn grpc_callers_get_a_status_with_its_error_info() {
        let response: http::Response<String> =
            Refusal::InsufficientScope("user".into()).response(true);
        let status = Status::from_header_map(response.headers()).expect("a grpc status");
        assert_eq!(status.code(), Code::PermissionDenied);
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("insufficient_scope", ERROR_DOMAIN)
        );
    }
}
