//! Any text, damaged real tokens, arbitrary payloads signed with the real key, and claims of any
//! range signed by the key ring: through `Unverified::parse`, verification against a fixed key
//! and the key ring, and the whole introspection path. Never a panic or an internal error; a
//! damaged token never verifies; signed claims come back unchanged when they are active.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pasetors::{
    keys::{AsymmetricKeyPair, AsymmetricPublicKey, Generate},
    version4::{PublicToken, V4},
};
use tessera::domain::{
    DomainError,
    clock::now_ms,
    keyring::Verification,
    token::{AccessClaims, Unverified},
};
use tessera_fuzz::{Text, harness};

#[derive(Arbitrary, Debug)]
enum Time {
    /// Milliseconds from now.
    Near(i32),
    Absolute(i64),
}

impl Time {
    fn at(&self, now: i64) -> i64 {
        match self {
            Time::Near(d) => now.saturating_add(i64::from(*d)),
            Time::Absolute(t) => *t,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Input {
    Text(Text),
    /// A payload and footer of any bytes, validly signed with the ring's signing key.
    Signed {
        payload: Vec<u8>,
        footer: Option<Vec<u8>>,
        real_kid: bool,
    },
    /// Claims of any value, signed by the key ring as the service signs them.
    Claims {
        iss: Option<Text>,
        sub: Text,
        client_id: Text,
        scope: Text,
        jti: Text,
        iat: Time,
        nbf: Time,
        exp: Time,
        sid: Option<Text>,
    },
}

fn fixed_public_key() -> &'static AsymmetricPublicKey<V4> {
    static KEY: std::sync::OnceLock<AsymmetricPublicKey<V4>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        AsymmetricKeyPair::<V4>::generate()
            .expect("key pair")
            .public
    })
}

/// Parses and verifies `token` every way the service does; returns the introspection answer.
fn verify_everywhere(token: &str) -> Option<tessera::domain::service::ActiveToken> {
    let h = harness();
    if let Some(parsed) = Unverified::parse(token) {
        assert!(
            parsed.verify(fixed_public_key()).is_none(),
            "a foreign key verified {token}"
        );
        let _ = h.tokens.keys().verify(&parsed, now_ms());
    }
    match h.run(h.tokens.introspect(token)) {
        Ok(active) => active,
        Err(DomainError::Internal(e)) => panic!("introspection failed internally: {e:#}"),
        Err(_) => None,
    }
}

fuzz_target!(|input: Input| {
    let h = harness();
    match input {
        Input::Text(text) => {
            let token = text.resolve(h);
            let active = verify_everywhere(&token);
            if let Text::Damaged { known, .. } = &text
                && token != h.known(*known)
                && h.known(*known).starts_with("v4.public.")
            {
                assert!(active.is_none(), "a damaged token is active: {token}");
                if let (Some(parsed), Some(_)) = (
                    Unverified::parse(&token),
                    Unverified::parse(h.known(*known)),
                ) {
                    assert!(
                        !matches!(
                            h.tokens.keys().verify(&parsed, now_ms()),
                            Verification::Signed(_)
                        ),
                        "a damaged token verifies: {token}"
                    );
                }
            }
        }
        Input::Signed {
            payload,
            footer,
            real_kid,
        } => {
            let footer = if real_kid {
                serde_json::to_vec(&serde_json::json!({ "kid": h.signing_kid })).expect("json")
            } else {
                footer.unwrap_or_default()
            };
            let footer = (!footer.is_empty()).then_some(footer.as_slice());
            let Ok(token) = PublicToken::sign(&h.signing_key, &payload, footer, None) else {
                return;
            };
            verify_everywhere(&token);
        }
        Input::Claims {
            iss,
            sub,
            client_id,
            scope,
            jti,
            iat,
            nbf,
            exp,
            sid,
        } => {
            let now = now_ms();
            let claims = AccessClaims {
                iss: iss.map_or_else(|| "tessera".to_owned(), |t| t.resolve(h)),
                sub: sub.resolve(h),
                client_id: client_id.resolve(h),
                scope: scope.resolve(h),
                jti: jti.resolve(h),
                issued_at: iat.at(now),
                not_before: nbf.at(now),
                expires_at: exp.at(now),
                sid: sid.map(|t| t.resolve(h)),
            };
            let Ok(token) = h.tokens.keys().sign(&claims) else {
                return;
            };
            if let Some(active) = verify_everywhere(&token) {
                assert_eq!(active.scope, claims.scope);
                assert_eq!(active.client_id, claims.client_id);
                assert_eq!(active.sub, claims.sub);
                assert_eq!(active.sid, claims.sid);
                assert_eq!(active.jti.as_deref(), Some(claims.jti.as_str()));
                assert_eq!(active.expires_at, claims.expires_at);
                assert_eq!(active.issued_at, claims.issued_at);
                assert_eq!(claims.iss, "tessera");
                assert!(claims.is_valid_at(now_ms(), 5_000));
            }
        }
    }
});
