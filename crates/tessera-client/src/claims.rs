//! The verified claims of an access token, as a service reads them from a request's extensions.
use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// `public-read`: an anonymous token of a marketplace client.
pub const PUBLIC_READ: &str = "public-read";
/// `user`: an end user's token.
pub const USER: &str = "user";
/// `trusted:user`: an end user's token exchanged by a trusted back end, for privileged
/// operations.
pub const TRUSTED_USER: &str = "trusted:user";
/// `integ`: an integration client's token.
pub const INTEG: &str = "integ";

/// What a verified access token says. Cheap to clone (shared).
///
/// The [`AuthLayer`](crate::AuthLayer) puts one in every request it lets through:
/// `request.extensions().get::<Claims>()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims(Arc<Fields>);

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fields {
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) client_id: String,
    pub(crate) scope: String,
    pub(crate) jti: String,
    pub(crate) sid: Option<String>,
    /// Unix milliseconds.
    pub(crate) issued_at: i64,
    pub(crate) not_before: i64,
    pub(crate) expires_at: i64,
}

impl Claims {
    pub(crate) fn new(fields: Fields) -> Self {
        Self(Arc::new(fields))
    }

    pub(crate) fn fields(&self) -> &Fields {
        &self.0
    }

    /// `sub`: the user's id for `user` and `trusted:user` tokens, the client's id otherwise.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The client the token was issued to.
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// The space-separated scopes, as issued.
    pub fn scope(&self) -> &str {
        &self.0.scope
    }

    /// The scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.0.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// The session the token belongs to; `None` for anonymous tokens.
    pub fn sid(&self) -> Option<&str> {
        self.0.sid.as_deref()
    }

    /// The token's unique id.
    pub fn jti(&self) -> &str {
        &self.0.jti
    }

    /// `iss`: who issued it (checked against the verifier's issuer).
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// When the token was issued.
    pub fn issued_at(&self) -> SystemTime {
        system_time(self.0.issued_at)
    }

    /// When the token stops being valid (before the clock leeway).
    pub fn expires_at(&self) -> SystemTime {
        system_time(self.0.expires_at)
    }

    /// Whether the token carries `scope`. A `trusted:user` token also counts as a `user` token:
    /// it is the same user's, exchanged by a trusted back end.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes()
            .any(|s| s == scope || (scope == USER && s == TRUSTED_USER))
    }

    /// Whether the token is a `trusted:user` one: what privileged operations require.
    pub fn is_trusted(&self) -> bool {
        self.has_scope(TRUSTED_USER)
    }

    /// `Ok` when the token carries `scope`; else an error that converts into
    /// PERMISSION_DENIED, for checks inside a handler.
    pub fn require_scope(&self, scope: &str) -> Result<(), MissingScope> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(MissingScope {
                scope: scope.to_owned(),
            })
        }
    }

    /// Whether the token is valid at `now` (Unix ms), allowing `leeway_ms` on `iat`, `nbf` and
    /// `exp`: the server's own rule.
    pub(crate) fn is_valid_at(&self, now: i64, leeway_ms: i64) -> bool {
        let f = &self.0;
        f.issued_at <= now.saturating_add(leeway_ms)
            && f.not_before <= now.saturating_add(leeway_ms)
            && f.expires_at > now.saturating_sub(leeway_ms)
    }
}

/// A request's token lacks a scope the operation needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the token lacks the scope {scope}")]
pub struct MissingScope {
    /// The scope that was needed.
    pub scope: String,
}

impl From<MissingScope> for tonic::Status {
    fn from(missing: MissingScope) -> Self {
        crate::rejection::insufficient_scope_status(&missing.scope)
    }
}

fn system_time(unix_ms: i64) -> SystemTime {
    match u64::try_from(unix_ms) {
        Ok(ms) => UNIX_EPOCH + Duration::from_millis(ms),
        Err(_) => UNIX_EPOCH,
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A duration in milliseconds, saturating.
pub(crate) fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn claims(scope: &str) -> Claims {
        Claims::new(Fields {
            issuer: "tessera".into(),
            subject: "s".into(),
            client_id: "c".into(),
            scope: scope.into(),
            jti: "j".into(),
            sid: Some("sid".into()),
            issued_at: 1_000_000,
            not_before: 1_000_000,
            expires_at: 1_600_000,
        })
    }

    #[test]
    fn a_trusted_token_counts_as_a_user_token_but_not_the_reverse() {
        assert!(claims("trusted:user").has_scope(USER));
        assert!(claims("trusted:user").is_trusted());
        assert!(!claims("user").is_trusted());
        assert!(!claims("public-read").has_scope(USER));
        assert!(claims("integ").require_scope(TRUSTED_USER).is_err());
    }

    #[test]
    fn leeway_applies_to_every_time_claim_as_on_the_server() {
        let c = claims("user");
        assert!(c.is_valid_at(1_000_000, 0));
        assert!(!c.is_valid_at(999_999, 0));
        assert!(c.is_valid_at(995_000, 5_000));
        assert!(!c.is_valid_at(1_600_000, 0));
        assert!(c.is_valid_at(1_604_999, 5_000));
        assert!(!c.is_valid_at(1_605_000, 5_000));
    }
}
