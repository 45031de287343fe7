//! Tessera's access tokens: PASETO v4.public with a `{"kid": ...}` footer and RFC 3339 times
//! (SPEC §3). Parsing and the signature only; times, issuer and revocation are the verifier's.
use pasetors::{
    Public,
    keys::AsymmetricPublicKey,
    token::UntrustedToken,
    version4::{PublicToken, V4},
};
use serde::Deserialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::claims::{Claims, Fields};

/// Prefix of every access token.
pub(crate) const ACCESS_TOKEN_PREFIX: &str = "v4.public.";
/// Longer than any token Tessera issues, and what the server itself refuses (SPEC §4).
const MAX_TOKEN_LEN: usize = 4_096;

#[derive(Deserialize)]
struct WireClaims {
    iss: String,
    sub: String,
    client_id: String,
    scope: String,
    jti: String,
    iat: String,
    nbf: String,
    exp: String,
    #[serde(default)]
    sid: Option<String>,
}

#[derive(Deserialize)]
struct Footer {
    kid: String,
}

/// A token that parsed as v4.public with a footer naming a key, before its signature is
/// checked.
pub(crate) struct Unverified {
    token: UntrustedToken<Public, V4>,
    kid: String,
}

impl Unverified {
    /// `None` for anything that is not a v4.public token with a `{"kid": "..."}` footer.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        if !text.starts_with(ACCESS_TOKEN_PREFIX) || text.len() > MAX_TOKEN_LEN {
            return None;
        }
        let token = UntrustedToken::<Public, V4>::try_from(text).ok()?;
        let footer: Footer = serde_json::from_slice(token.untrusted_footer()).ok()?;
        Some(Self {
            token,
            kid: footer.kid,
        })
    }

    /// The key the footer names: only a hint for choosing among the keys already known.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// Checks the signature with `key` and reads the claims; `None` if either fails.
    pub(crate) fn verify(&self, key: &AsymmetricPublicKey<V4>) -> Option<Claims> {
        let trusted = PublicToken::verify(key, &self.token, None, None).ok()?;
        let wire: WireClaims = serde_json::from_str(trusted.payload()).ok()?;
        Some(Claims::new(Fields {
            issued_at: parse_rfc3339(&wire.iat)?,
            not_before: parse_rfc3339(&wire.nbf)?,
            expires_at: parse_rfc3339(&wire.exp)?,
            issuer: wire.iss,
            subject: wire.sub,
            client_id: wire.client_id,
            scope: wire.scope,
            jti: wire.jti,
            sid: wire.sid,
        }))
    }
}

/// Any RFC 3339 date-time, in Unix milliseconds.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use pasetors::keys::{AsymmetricKeyPair, AsymmetricSecretKey, Generate};

    use super::*;

    /// Signs claims the way the server does.
    pub(crate) fn sign(
        payload: &serde_json::Value,
        kid: &str,
        key: &AsymmetricSecretKey<V4>,
    ) -> String {
        let footer = serde_json::json!({ "kid": kid }).to_string();
        PublicToken::sign(
            key,
            payload.to_string().as_bytes(),
            Some(footer.as_bytes()),
            None,
        )
        .expect("sign")
    }

    pub(crate) fn payload() -> serde_json::Value {
        serde_json::json!({
            "iss": "tessera", "sub": "u", "client_id": "c", "scope": "user", "jti": "j",
            "iat": "2026-01-01T00:00:00.000+00:00", "nbf": "2026-01-01T00:00:00.000+00:00",
            "exp": "2026-01-01T00:10:00+00:00", "sid": "s"
        })
    }

    #[test]
    fn a_token_verifies_with_its_key_and_not_with_another() {
        let pair = AsymmetricKeyPair::<V4>::generate().expect("keypair");
        let other = AsymmetricKeyPair::<V4>::generate().expect("keypair");
        let token = sign(&payload(), "k4.pid.x", &pair.secret);
        let parsed = Unverified::parse(&token).expect("parses");
        assert_eq!(parsed.kid(), "k4.pid.x");
        let claims = parsed.verify(&pair.public).expect("verifies");
        assert_eq!(claims.sid(), Some("s"));
        assert_eq!(
            claims.fields().expires_at - claims.fields().issued_at,
            600_000
        );
        assert!(parsed.verify(&other.public).is_none());
    }

    #[test]
    fn garbage_and_refresh_tokens_do_not_parse() {
        for text in [
            "",
            "v4.public.",
            "v4.local.abc",
            "v4.public.!!!",
            "wEUHV0njUe4XaJyO1Wn91Cek0u5zThYVB50NNtRE4Y8",
        ] {
            assert!(Unverified::parse(text).is_none(), "{text}");
        }
    }
}
