//! Shape checks on incoming messages: lengths and required fields, before any domain work.
use secrecy::SecretString;

use super::pb;
use crate::domain::{
    DomainError, FieldViolation,
    service::{Grant, IssueRequest},
};

/// Longest token accepted anywhere (SPEC §4: 4 KiB).
pub const MAX_TOKEN_LEN: usize = 4096;
/// Longest username: an e-mail address.
pub use crate::domain::users::{MAX_PASSWORD_CHARS, MAX_USERNAME_LEN};
/// Longest client secret accepted (ours are 43 characters).
pub const MAX_SECRET_LEN: usize = 256;
/// Longest requested scope.
pub const MAX_SCOPE_LEN: usize = 1024;
pub use crate::domain::service::ACCESS_TOKEN_TYPE;

/// Collects every violation of a message, so that one answer names them all.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn check(&mut self, ok: bool, field: &'static str, description: &str) {
        if !ok {
            self.0.push(FieldViolation::new(field, description));
        }
    }

    fn required(&mut self, value: &str, field: &'static str) {
        self.check(!value.is_empty(), field, "is required");
    }

    fn max_len(&mut self, value: &str, max: usize, field: &'static str) {
        self.check(
            value.len() <= max,
            field,
            &format!("must be at most {max} bytes"),
        );
    }

    fn finish(self) -> Result<(), DomainError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DomainError::InvalidRequest(self.0))
        }
    }
}

/// Checks a client_id: required, and shaped as the UUIDs the server makes.
fn client_id(v: &mut Violations, value: &str) {
    if value.is_empty() {
        v.required(value, "client_id");
    } else {
        v.check(
            value.len() == 36 && uuid::Uuid::try_parse(value).is_ok(),
            "client_id",
            "must be a client id (a UUID)",
        );
    }
}

fn secret(value: String) -> Option<SecretString> {
    (!value.is_empty()).then(|| SecretString::from(value))
}

/// The end user's address from `x-forwarded-for` (the left-most entry, which the calling
/// service set), when it is an IP address.
pub fn end_user_address(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    let value = metadata.get("x-forwarded-for")?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    first
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_string())
}

/// Validates IssueToken and turns it into a domain request.
pub fn issue_request(
    req: pb::IssueTokenRequest,
    end_user_address: Option<String>,
) -> Result<IssueRequest, DomainError> {
    let mut v = Violations::default();
    client_id(&mut v, &req.client_id);
    v.max_len(&req.client_secret, MAX_SECRET_LEN, "client_secret");
    v.max_len(&req.scope, MAX_SCOPE_LEN, "scope");
    use pb::issue_token_request::Grant as G;
    let grant = match req.grant {
        None => {
            v.check(
                false,
                "grant",
                "one of client_credentials, password, token_exchange, refresh_token is required",
            );
            None
        }
        Some(G::ClientCredentials(_)) => Some(Grant::ClientCredentials),
        Some(G::Password(p)) => {
            v.required(p.username.trim(), "password.username");
            v.check(
                !p.username.chars().any(char::is_control),
                "password.username",
                "must not contain control characters",
            );
            v.max_len(&p.username, MAX_USERNAME_LEN, "password.username");
            v.required(&p.password, "password.password");
            v.check(
                p.password.chars().count() <= MAX_PASSWORD_CHARS,
                "password.password",
                "must be at most 128 characters",
            );
            Some(Grant::Password {
                username: p.username,
                password: SecretString::from(p.password),
            })
        }
        Some(G::TokenExchange(t)) => {
            v.required(&t.subject_token, "token_exchange.subject_token");
            v.max_len(
                &t.subject_token,
                MAX_TOKEN_LEN,
                "token_exchange.subject_token",
            );
            v.check(
                t.subject_token_type.is_empty() || t.subject_token_type == ACCESS_TOKEN_TYPE,
                "token_exchange.subject_token_type",
                "must be empty or urn:ietf:params:oauth:token-type:access_token",
            );
            Some(Grant::TokenExchange {
                subject_token: SecretString::from(t.subject_token),
                subject_token_type: t.subject_token_type,
            })
        }
        Some(G::RefreshToken(r)) => {
            v.required(&r.refresh_token, "refresh_token.refresh_token");
            v.max_len(
                &r.refresh_token,
                MAX_TOKEN_LEN,
                "refresh_token.refresh_token",
            );
            Some(Grant::RefreshToken {
                refresh_token: SecretString::from(r.refresh_token),
            })
        }
    };
    v.finish()?;
    Ok(IssueRequest {
        client_id: req.client_id,
        client_secret: secret(req.client_secret),
        scope: req.scope,
        grant: grant.ok_or_else(|| DomainError::invalid_field("grant", "is required"))?,
        end_user_address,
    })
}

/// Validates the token of IntrospectToken.
pub fn introspected_token(req: &pb::IntrospectTokenRequest) -> Result<(), DomainError> {
    let mut v = Violations::default();
    v.required(&req.token, "token");
    v.max_len(&req.token, MAX_TOKEN_LEN, "token");
    v.finish()
}

/// Validates RevokeToken.
pub fn revoke_request(req: &pb::RevokeTokenRequest) -> Result<(), DomainError> {
    let mut v = Violations::default();
    client_id(&mut v, &req.client_id);
    v.max_len(&req.client_secret, MAX_SECRET_LEN, "client_secret");
    v.required(&req.token, "token");
    v.max_len(&req.token, MAX_TOKEN_LEN, "token");
    v.finish()
}

/// A client_id fit for a log line: only when it has the shape of one.
pub fn loggable_client_id(value: &str) -> &str {
    if value.len() == 36 && uuid::Uuid::try_parse(value).is_ok() {
        value
    } else {
        "-"
    }
}

/// The secret of a RevokeToken request, if one was sent.
pub fn revoke_secret(req: &mut pb::RevokeTokenRequest) -> Option<SecretString> {
    secret(std::mem::take(&mut req.client_secret))
}
