//! Shape checks on what a caller sends, before any domain work: lengths and required fields.
//! Both edges check the same rules; each names the fields as its protocol spells them.
use secrecy::SecretString;

use crate::domain::{
    DomainError, FieldViolation,
    service::{Grant, IssueRequest},
};

/// Longest token accepted anywhere (SPEC §4: 4 KiB).
pub const MAX_TOKEN_LEN: usize = 4096;
pub use crate::domain::users::{MAX_PASSWORD_CHARS, MAX_USERNAME_LEN};
/// Longest client secret accepted (ours are 43 characters).
pub const MAX_SECRET_LEN: usize = 256;
/// Longest requested scope.
pub const MAX_SCOPE_LEN: usize = 1024;
pub use crate::domain::service::ACCESS_TOKEN_TYPE;

/// Collects every violation of a request, so that one answer names them all.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn check(&mut self, ok: bool, field: &'static str, description: &str) {
        if !ok {
            self.0.push(FieldViolation::new(field, description));
        }
    }

    pub fn required(&mut self, value: &str, field: &'static str) {
        self.check(!value.is_empty(), field, "is required");
    }

    pub fn max_len(&mut self, value: &str, max: usize, field: &'static str) {
        self.check(
            value.len() <= max,
            field,
            &format!("must be at most {max} bytes"),
        );
    }

    /// A client_id: required, and shaped as the UUIDs the server makes.
    pub fn client_id(&mut self, value: &str) {
        if value.is_empty() {
            self.required(value, "client_id");
        } else {
            self.check(
                is_client_id(value),
                "client_id",
                "must be a client id (a UUID)",
            );
        }
    }

    /// A token to introspect or revoke: required, at most [`MAX_TOKEN_LEN`].
    pub fn token(&mut self, value: &str, field: &'static str) {
        self.required(value, field);
        self.max_len(value, MAX_TOKEN_LEN, field);
    }

    pub fn finish(self) -> Result<(), DomainError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DomainError::InvalidRequest(self.0))
        }
    }
}

fn is_client_id(value: &str) -> bool {
    value.len() == 36 && uuid::Uuid::try_parse(value).is_ok()
}

/// A client_id fit for a log line: only when it has the shape of one.
pub fn loggable_client_id(value: &str) -> &str {
    if is_client_id(value) { value } else { "-" }
}

/// A secret that was sent, if one was.
pub fn secret(value: String) -> Option<SecretString> {
    (!value.is_empty()).then(|| SecretString::from(value))
}

/// What a token request says, whichever protocol carried it.
pub struct IssueFields {
    pub client_id: String,
    pub client_secret: String,
    pub scope: String,
    pub grant: Option<GrantFields>,
}

/// The grant of a token request, unchecked.
pub enum GrantFields {
    ClientCredentials,
    Password {
        username: String,
        password: String,
    },
    TokenExchange {
        subject_token: String,
        subject_token_type: String,
    },
    RefreshToken {
        refresh_token: String,
    },
}

/// How a protocol names the fields of a grant in its answers.
pub struct FieldNames {
    pub grant: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub subject_token: &'static str,
    pub subject_token_type: &'static str,
    pub refresh_token: &'static str,
}

/// Validates a token request and turns it into a domain request.
pub fn issue_request(
    req: IssueFields,
    names: &FieldNames,
    end_user_address: Option<String>,
) -> Result<IssueRequest, DomainError> {
    let mut v = Violations::default();
    v.client_id(&req.client_id);
    v.max_len(&req.client_secret, MAX_SECRET_LEN, "client_secret");
    v.max_len(&req.scope, MAX_SCOPE_LEN, "scope");
    let grant = match req.grant {
        None => {
            v.check(
                false,
                names.grant,
                "one of client_credentials, password, token_exchange, refresh_token is required",
            );
            None
        }
        Some(GrantFields::ClientCredentials) => Some(Grant::ClientCredentials),
        Some(GrantFields::Password { username, password }) => {
            v.required(username.trim(), names.username);
            v.check(
                !username.chars().any(char::is_control),
                names.username,
                "must not contain control characters",
            );
            v.max_len(&username, MAX_USERNAME_LEN, names.username);
            v.required(&password, names.password);
            v.check(
                password.chars().count() <= MAX_PASSWORD_CHARS,
                names.password,
                "must be at most 128 characters",
            );
            Some(Grant::Password {
                username,
                password: SecretString::from(password),
            })
        }
        Some(GrantFields::TokenExchange {
            subject_token,
            subject_token_type,
        }) => {
            v.token(&subject_token, names.subject_token);
            v.check(
                subject_token_type.is_empty() || subject_token_type == ACCESS_TOKEN_TYPE,
                names.subject_token_type,
                "must be empty or urn:ietf:params:oauth:token-type:access_token",
            );
            Some(Grant::TokenExchange {
                subject_token: SecretString::from(subject_token),
                subject_token_type,
            })
        }
        Some(GrantFields::RefreshToken { refresh_token }) => {
            v.token(&refresh_token, names.refresh_token);
            Some(Grant::RefreshToken {
                refresh_token: SecretString::from(refresh_token),
            })
        }
    };
    v.finish()?;
    Ok(IssueRequest {
        client_id: req.client_id,
        client_secret: secret(req.client_secret),
        scope: req.scope,
        grant: grant.ok_or_else(|| DomainError::invalid_field(names.grant, "is required"))?,
        end_user_address,
    })
}
