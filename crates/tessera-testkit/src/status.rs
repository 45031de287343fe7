//! Assertions on statuses and answers.
use tessera_proto::pb;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Asserts a status's code, its ErrorInfo reason and domain.
pub fn assert_error(
    result: Result<impl std::fmt::Debug, Status>,
    code: Code,
    reason: &str,
) -> Status {
    let status = result.expect_err("expected an error status");
    assert_eq!(status.code(), code, "status: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "status: {status:?}");
    assert_eq!(info.domain, "tessera.auth");
    status
}

/// Defines one assertion per error of the error table: its code and ErrorInfo reason.
macro_rules! error_assertions {
    ($($(#[doc = $doc:literal])* $name:ident: $code:ident, $reason:literal;)*) => {$(
        $(#[doc = $doc])*
        pub fn $name(result: Result<impl std::fmt::Debug, Status>) -> Status {
            assert_error(result, Code::$code, $reason)
        }
    )*};
}

error_assertions! {
    /// Asserts UNAUTHENTICATED `invalid_client`: an unknown, disabled or unauthenticated client.
    assert_invalid_client: Unauthenticated, "invalid_client";
    /// Asserts UNAUTHENTICATED `invalid_grant`: credentials or a token that do not hold.
    assert_invalid_grant: Unauthenticated, "invalid_grant";
    /// Asserts PERMISSION_DENIED `unauthorized_client`: a client not allowed to do this.
    assert_unauthorized_client: PermissionDenied, "unauthorized_client";
    /// Asserts PERMISSION_DENIED `invalid_scope`: a scope wider than the grant.
    assert_invalid_scope: PermissionDenied, "invalid_scope";
    /// Asserts INVALID_ARGUMENT `invalid_request`: a malformed request.
    assert_invalid_request: InvalidArgument, "invalid_request";
    /// Asserts RESOURCE_EXHAUSTED `slow_down`: a throttled caller.
    assert_slow_down: ResourceExhausted, "slow_down";
}

/// The delay a status's RetryInfo asks for; panics when it has none.
pub fn retry_after(status: &Status) -> std::time::Duration {
    status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo with a delay")
}

/// Asserts an introspection answer is exactly `active: false` with nothing else.
pub fn assert_inactive(response: &pb::IntrospectTokenResponse) {
    assert_eq!(
        response,
        &pb::IntrospectTokenResponse::default(),
        "expected active: false and nothing else"
    );
}

/// The ErrorInfo reason of a status, or "" when it has none.
pub fn reason_of(status: &Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// A status in one line, for reports: its code and message.
pub fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}
