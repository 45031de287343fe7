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
