//! `DomainError` -> `tonic::Status`, with `ErrorInfo` and, where SPEC §4 names them,
//! `BadRequest` and `RetryInfo`.
use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::ERROR_DOMAIN;
use crate::domain::DomainError;

impl From<DomainError> for Status {
    fn from(err: DomainError) -> Self {
        let mut details = ErrorDetails::with_error_info(err.reason(), ERROR_DOMAIN, HashMap::new());
        let code = match &err {
            DomainError::InvalidRequest(violations) => {
                for v in violations {
                    details.add_bad_request_violation(v.field, v.description.clone());
                }
                Code::InvalidArgument
            }
            DomainError::InvalidClient
            | DomainError::InvalidGrant
            | DomainError::MissingCallerToken
            | DomainError::InvalidBearer => Code::Unauthenticated,
            DomainError::UnauthorizedClient
            | DomainError::ForeignToken
            | DomainError::InvalidScope
            | DomainError::CallerNotAllowed => Code::PermissionDenied,
            DomainError::SlowDown { retry_after } => {
                details.set_retry_info(Some(*retry_after));
                Code::ResourceExhausted
            }
            DomainError::Unavailable => Code::Unavailable,
            DomainError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                Code::Internal
            }
        };
        let message = match &err {
            DomainError::InvalidRequest(violations) => {
                let fields: Vec<_> = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect();
                format!("invalid request: {}", fields.join("; "))
            }
            other => other.to_string(),
        };
        Status::with_error_details(code, message, details)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_status_carries_error_info_with_the_oauth_reason() {
        let status = Status::from(DomainError::InvalidClient);
        assert_eq!(status.code(), Code::Unauthenticated);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "invalid_client");
        assert_eq!(info.domain, "tessera.auth");
    }

    #[test]
    fn slow_down_carries_retry_info() {
        let status = Status::from(DomainError::SlowDown {
            retry_after: Duration::from_secs(3),
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(3)));
    }

    #[test]
    fn invalid_request_names_the_fields() {
        let status = Status::from(DomainError::invalid_field("client_id", "is required"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations[0].field, "client_id");
    }
}
