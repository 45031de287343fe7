//! Access tokens: PASETO v4.public with Tessera's claims and a `{"kid": ...}` footer.
use pasetors::{
    Public,
    keys::{AsymmetricPublicKey, AsymmetricSecretKey},
    token::UntrustedToken,
    version4::{PublicToken, V4},
};
use serde::{Deserialize, Serialize};

use super::clock::{format_rfc3339, parse_rfc3339};

/// The claims of an access token, times in Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub client_id: String,
    pub scope: String,
    pub jti: String,
    pub issued_at: i64,
    pub not_before: i64,
    pub expires_at: i64,
    pub sid: Option<String>,
}

/// The JSON form of [`AccessClaims`]: PASETO registered claims are RFC 3339 strings.
#[derive(Serialize, Deserialize)]
struct WireClaims {
    iss: String,
    sub: String,
    client_id: String,
    scope: String,
    jti: String,
    iat: String,
    nbf: String,
    exp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Footer {
    kid: String,
}

/// Prefix of every access token.
pub const ACCESS_TOKEN_PREFIX: &str = "v4.public.";

/// Signs `claims` with `key`, naming `kid` in the footer.
pub fn sign(
    claims: &AccessClaims,
    kid: &str,
    key: &AsymmetricSecretKey<V4>,
) -> Result<String, anyhow::Error> {
    let wire = WireClaims {
        iss: claims.iss.clone(),
        sub: claims.sub.clone(),
        client_id: claims.client_id.clone(),
        scope: claims.scope.clone(),
        jti: claims.jti.clone(),
        iat: format_rfc3339(claims.issued_at),
        nbf: format_rfc3339(claims.not_before),
        exp: format_rfc3339(claims.expires_at),
        sid: claims.sid.clone(),
    };
    let payload = serde_json::to_vec(&wire)?;
    let footer = serde_json::to_vec(&Footer {
        kid: kid.to_owned(),
    })?;
    Ok(PublicToken::sign(key, &payload, Some(&footer), None)?)
}

/// A token that parsed as v4.public, before its signature is checked.
pub struct Unverified {
    token: UntrustedToken<Public, V4>,
    kid: String,
}

impl Unverified {
    /// Parses the token and its footer. `None` for anything that is not a v4.public token
    /// with a `{"kid": "..."}` footer.
    pub fn parse(text: &str) -> Option<Self> {
        if !text.starts_with(ACCESS_TOKEN_PREFIX) {
            return None;
        }
        let token = UntrustedToken::<Public, V4>::try_from(text).ok()?;
        let footer: Footer = serde_json::from_slice(token.untrusted_footer()).ok()?;
        Some(Self {
            token,
            kid: footer.kid,
        })
    }

    /// The key id the footer names: only a hint for choosing among our own keys.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Checks the signature with `key` and parses the claims. Times are not checked here.
    pub fn verify(&self, key: &AsymmetricPublicKey<V4>) -> Option<AccessClaims> {
        let trusted = PublicToken::verify(key, &self.token, None, None).ok()?;
        let wire: WireClaims = serde_json::from_str(trusted.payload()).ok()?;
        Some(AccessClaims {
            issued_at: parse_rfc3339(&wire.iat)?,
            not_before: parse_rfc3339(&wire.nbf)?,
            expires_at: parse_rfc3339(&wire.exp)?,
            iss: wire.iss,
            sub: wire.sub,
            client_id: wire.client_id,
            scope: wire.scope,
            jti: wire.jti,
            sid: wire.sid,
        })
    }
}

impl AccessClaims {
    /// Whether the token is valid at `now`, allowing `leeway_ms` of clock difference on `iat`,
    /// `nbf` and `exp`.
    pub fn is_valid_at(&self, now: i64, leeway_ms: i64) -> bool {
        self.issued_at <= now.saturating_add(leeway_ms)
            && self.not_before <= now.saturating_add(leeway_ms)
            && self.expires_at > now.saturating_sub(leeway_ms)
    }
}

#[cfg(test)]
mod tests {
    use pasetors::keys::{AsymmetricKeyPair, Generate};

    use super::*;

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "tessera".into(),
            sub: "s".into(),
            client_id: "c".into(),
            scope: "integ".into(),
            jti: "j".into(),
            issued_at: 1_000_000,
            not_before: 1_000_000,
            expires_at: 1_600_000,
            sid: Some("sid".into()),
        }
    }

    #[test]
    fn a_signed_token_verifies_with_its_key_and_round_trips_the_claims() {
        let kp = AsymmetricKeyPair::<V4>::generate().expect("keypair");
        let token = sign(&claims(), "k4.pid.x", &kp.secret).expect("sign");
        let parsed = Unverified::parse(&token).expect("parse");
        assert_eq!(parsed.kid(), "k4.pid.x");
        assert_eq!(parsed.verify(&kp.public), Some(claims()));
    }

    #[test]
    fn another_key_does_not_verify_it() {
        let kp = AsymmetricKeyPair::<V4>::generate().expect("keypair");
        let other = AsymmetricKeyPair::<V4>::generate().expect("keypair");
        let token = sign(&claims(), "k4.pid.x", &kp.secret).expect("sign");
        assert_eq!(
            Unverified::parse(&token)
                .expect("parse")
                .verify(&other.public),
            None
        );
    }

    #[test]
    fn leeway_applies_to_every_time_claim() {
        let c = claims();
        assert!(c.is_valid_at(1_000_000, 0));
        assert!(!c.is_valid_at(999_999, 0));
        assert!(c.is_valid_at(995_000, 5_000));
        assert!(!c.is_valid_at(1_600_000, 0));
        assert!(c.is_valid_at(1_604_999, 5_000));
        assert!(!c.is_valid_at(1_605_000, 5_000));
    }

    #[test]
    fn garbage_does_not_parse() {
        for text in [
            "",
            "v4.public.",
            "v4.local.abc",
            "v4.public.!!!",
            "v2.public.abc",
        ] {
            assert!(Unverified::parse(text).is_none(), "{text}");
        }
    }
}
