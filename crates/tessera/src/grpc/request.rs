//! Shape checks on incoming messages: the shared rules of [`crate::edge::shape`], with the
//! fields named as the proto names them.
use secrecy::SecretString;

use super::pb;
use crate::domain::{DomainError, service::IssueRequest};
pub use crate::edge::address::end_user_address;
use crate::edge::shape::{self, FieldNames, GrantFields, IssueFields, Violations};
pub use crate::edge::shape::{
    ACCESS_TOKEN_TYPE, MAX_PASSWORD_CHARS, MAX_SCOPE_LEN, MAX_SECRET_LEN, MAX_TOKEN_LEN,
    MAX_USERNAME_LEN, loggable_client_id,
};

/// The proto's field paths, as BadRequest field violations name them.
const FIELDS: FieldNames = FieldNames {
    grant: "grant",
    username: "password.username",
    password: "password.password",
    subject_token: "token_exchange.subject_token",
    subject_token_type: "token_exchange.subject_token_type",
    refresh_token: "refresh_token.refresh_token",
};

/// Validates IssueToken and turns it into a domain request.
pub fn issue_request(
    req: pb::IssueTokenRequest,
    end_user_address: Option<String>,
) -> Result<IssueRequest, DomainError> {
    use pb::issue_token_request::Grant as G;
    let grant = req.grant.map(|grant| match grant {
        G::ClientCredentials(_) => GrantFields::ClientCredentials,
        G::Password(p) => GrantFields::Password {
            username: p.username,
            password: p.password,
        },
        G::TokenExchange(t) => GrantFields::TokenExchange {
            subject_token: t.subject_token,
            subject_token_type: t.subject_token_type,
        },
        G::RefreshToken(r) => GrantFields::RefreshToken {
            refresh_token: r.refresh_token,
        },
    });
    let fields = IssueFields {
        client_id: req.client_id,
        client_secret: req.client_secret,
        scope: req.scope,
        grant,
    };
    shape::issue_request(fields, &FIELDS, end_user_address)
}

/// Validates the token of IntrospectToken.
pub fn introspected_token(req: &pb::IntrospectTokenRequest) -> Result<(), DomainError> {
    let mut v = Violations::default();
    v.token(&req.token, "token");
    v.finish()
}

/// Validates RevokeToken.
pub fn revoke_request(req: &pb::RevokeTokenRequest) -> Result<(), DomainError> {
    let mut v = Violations::default();
    v.client_id(&req.client_id);
    v.max_len(&req.client_secret, MAX_SECRET_LEN, "client_secret");
    v.token(&req.token, "token");
    v.finish()
}

/// The secret of a RevokeToken request, if one was sent.
pub fn revoke_secret(req: &mut pb::RevokeTokenRequest) -> Option<SecretString> {
    shape::secret(std::mem::take(&mut req.client_secret))
}

/// The holder of the client certificate the caller's connection presented, if it presented
/// one: the gRPC listener refuses at the handshake any certificate the client CA did not
/// sign, or that was not made for client authentication. (`-` when it names nobody.)
pub fn client_certificate_holder<T>(req: &tonic::Request<T>) -> Option<String> {
    let chain = req.peer_certs()?;
    let leaf = chain.first()?;
    Some(crate::edge::tls::client_cert::holder(leaf).unwrap_or_else(|| "-".to_owned()))
}
