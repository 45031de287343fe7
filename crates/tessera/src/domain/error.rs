//! The one error type of the domain: what a caller can act on.
use std::time::Duration;

use super::repository::RepositoryError;

/// One malformed field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: &'static str,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: &'static str, description: impl Into<String>) -> Self {
        Self {
            field,
            description: description.into(),
        }
    }
}

/// Why a request failed. Each variant is one row of SPEC §4's error table.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("invalid request: {}", describe(.0))]
    InvalidRequest(Vec<FieldViolation>),
    #[error("client authentication failed")]
    InvalidClient,
    #[error("the grant is invalid, expired or revoked")]
    InvalidGrant,
    #[error("this client may not use this grant")]
    UnauthorizedClient,
    #[error("the token belongs to another client")]
    ForeignToken,
    #[error("the requested scope is wider than the grant allows")]
    InvalidScope,
    #[error("too many attempts; retry later")]
    SlowDown { retry_after: Duration },
    #[error(
        "introspection requires `authorization: Bearer <access token of an integration client>`"
    )]
    MissingCallerToken,
    #[error("introspection requires an active access token of an integration client")]
    CallerNotAllowed,
    /// The `Authorization: Bearer` token a caller proves its session with is not an active
    /// access token (HTTP revocation, SPEC §8).
    #[error("the bearer token is invalid, expired or revoked")]
    InvalidBearer,
    #[error("the service is temporarily unavailable; retry later")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn describe(violations: &[FieldViolation]) -> String {
    let parts: Vec<_> = violations
        .iter()
        .map(|v| format!("{} {}", v.field, v.description))
        .collect();
    parts.join("; ")
}

impl DomainError {
    /// A single invalid field.
    pub fn invalid_field(field: &'static str, description: impl Into<String>) -> Self {
        Self::InvalidRequest(vec![FieldViolation::new(field, description)])
    }

    /// The OAuth error code (the `ErrorInfo` reason) of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient | Self::MissingCallerToken => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient | Self::ForeignToken | Self::CallerNotAllowed => {
                "unauthorized_client"
            }
            Self::InvalidScope => "invalid_scope",
            Self::InvalidBearer => "invalid_token",
            Self::SlowDown { .. } => "slow_down",
            Self::Unavailable => "temporarily_unavailable",
            Self::Internal(_) => "server_error",
        }
    }
}

impl From<super::keyring::KeyRingError> for DomainError {
    fn from(err: super::keyring::KeyRingError) -> Self {
        match err {
            super::keyring::KeyRingError::Repository(err) => err.into(),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<RepositoryError> for DomainError {
    fn from(err: RepositoryError) -> Self {
        match err {
            RepositoryError::Unavailable(_) => Self::Unavailable,
            other => Self::Internal(other.into()),
        }
    }
}
