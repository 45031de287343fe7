//! Official PASETO v4.public and PASERK k4 test vectors (tests/data/paseto, see its README),
//! and a check that Tessera's access tokens are plain PASETO that any v4.public verifier
//! holding only the published `k4.public` key accepts.
use std::{
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use pasetors::{
    Public,
    claims::{Claims, ClaimsValidationRules},
    keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey, Generate},
    token::UntrustedToken,
    version4::{PublicToken, V4},
};
use serde_json::Value;
use tessera::domain::{
    keyring::{paserk_pid, paserk_public},
    token::{AccessClaims, sign},
};

fn vectors(file: &str) -> Vec<Value> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "data", "paseto", file]
        .iter()
        .collect();
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut doc: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    match doc.get_mut("tests").map(Value::take) {
        Some(Value::Array(tests)) => tests,
        _ => panic!("{file}: no \"tests\" array"),
    }
}

fn field<'a>(vector: &'a Value, name: &str) -> &'a str {
    vector[name]
        .as_str()
        .unwrap_or_else(|| panic!("{}: field {name:?} is not a string", vector["name"]))
}

fn name(vector: &Value) -> &str {
    field(vector, "name")
}

fn expect_fail(vector: &Value) -> bool {
    vector["expect-fail"]
        .as_bool()
        .unwrap_or_else(|| panic!("{}: no expect-fail", name(vector)))
}

fn bytes(vector: &Value, name_of_field: &str) -> Vec<u8> {
    hex::decode(field(vector, name_of_field))
        .unwrap_or_else(|e| panic!("{}: {name_of_field} is not hex: {e}", name(vector)))
}

/// The `v4.public` vectors: those that carry an Ed25519 key pair.
fn public_token_vectors() -> Vec<Value> {
    vectors("v4.json")
        .into_iter()
        .filter(|v| v.get("public-key").is_some())
        .collect()
}

fn public_key(vector: &Value) -> AsymmetricPublicKey<V4> {
    AsymmetricPublicKey::<V4>::from(&bytes(vector, "public-key"))
        .unwrap_or_else(|e| panic!("{}: public key: {e:?}", name(vector)))
}

fn secret_key(vector: &Value) -> AsymmetricSecretKey<V4> {
    AsymmetricSecretKey::<V4>::from(&bytes(vector, "secret-key"))
        .unwrap_or_else(|e| panic!("{}: secret key: {e:?}", name(vector)))
}

/// `None` for an empty footer, as the vectors mean it.
fn footer(vector: &Value) -> Option<&[u8]> {
    Some(field(vector, "footer").as_bytes()).filter(|f| !f.is_empty())
}

fn implicit_assertion(vector: &Value) -> &[u8] {
    field(vector, "implicit-assertion").as_bytes()
}

/// Verifies `token` as the vector says (its public key, footer and implicit assertion).
fn verify(vector: &Value, token: &str) -> Result<String, String> {
    let untrusted =
        UntrustedToken::<Public, V4>::try_from(token).map_err(|e| format!("parse: {e:?}"))?;
    let trusted = PublicToken::verify(
        &public_key(vector),
        &untrusted,
        footer(vector),
        Some(implicit_assertion(vector)),
    )
    .map_err(|e| format!("verify: {e:?}"))?;
    Ok(trusted.payload().to_owned())
}

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds fit in i64")
}

#[test]
fn the_vector_files_hold_the_expected_v4_public_entries() {
    let names: Vec<String> = public_token_vectors()
        .iter()
        .map(|v| name(v).to_owned())
        .collect();
    assert_eq!(names, ["4-S-1", "4-S-2", "4-S-3", "4-F-1"]);
    assert_eq!(vectors("k4.public.json").len(), 4);
    assert_eq!(vectors("k4.pid.json").len(), 5);
}

#[test]
fn official_v4_public_vectors_sign_to_the_expected_tokens() {
    let mut checked = 0;
    for vector in public_token_vectors().iter().filter(|v| !expect_fail(v)) {
        let payload = field(vector, "payload");
        let token = PublicToken::sign(
            &secret_key(vector),
            payload.as_bytes(),
            footer(vector),
            Some(implicit_assertion(vector)),
        )
        .unwrap_or_else(|e| panic!("{}: sign: {e:?}", name(vector)));
        assert_eq!(token, field(vector, "token"), "{}", name(vector));
        checked += 1;
    }
    assert_eq!(checked, 3, "every 4-S-* vector signed");
}

#[test]
fn official_v4_public_vector_tokens_verify_with_the_public_key() {
    let mut checked = 0;
    for vector in public_token_vectors().iter().filter(|v| !expect_fail(v)) {
        let payload = verify(vector, field(vector, "token"))
            .unwrap_or_else(|e| panic!("{}: {e}", name(vector)));
        assert_eq!(payload, field(vector, "payload"), "{}", name(vector));
        checked += 1;
    }
    assert_eq!(checked, 3, "every 4-S-* vector verified");
}

#[test]
fn official_expect_fail_vectors_are_rejected() {
    let failing: Vec<Value> = public_token_vectors()
        .into_iter()
        .filter(expect_fail)
        .collect();
    assert!(
        !failing.is_empty(),
        "the vector file holds at least one expect-fail v4.public case"
    );
    for vector in &failing {
        assert!(
            vector["payload"].is_null(),
            "{}: an expect-fail vector has no payload",
            name(vector)
        );
        assert!(
            verify(vector, field(vector, "token")).is_err(),
            "{} must not verify",
            name(vector)
        );
    }
}

#[test]
fn an_official_token_with_a_changed_signature_footer_or_assertion_is_rejected() {
    for vector in public_token_vectors().iter().filter(|v| !expect_fail(v)) {
        let token = field(vector, "token");
        let key = public_key(vector);

        // Flip one character inside the base64url body (payload + signature).
        let body_at = "v4.public.".len() + 10;
        let mut tampered: Vec<u8> = token.as_bytes().to_vec();
        tampered[body_at] = if tampered[body_at] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert!(
            verify(vector, &tampered).is_err(),
            "{}: tampered body accepted",
            name(vector)
        );

        // Another implicit assertion than the one signed.
        let untrusted =
            UntrustedToken::<Public, V4>::try_from(token).expect("official token parses");
        let other_assertion =
            PublicToken::verify(&key, &untrusted, footer(vector), Some(b"{\"other\":1}"));
        assert!(
            other_assertion.is_err(),
            "{}: other implicit assertion accepted",
            name(vector)
        );

        // A footer other than the one signed: both when the caller expects another one and when
        // the token's own footer is swapped.
        let other_footer = PublicToken::verify(
            &key,
            &untrusted,
            Some(b"{\"kid\":\"other\"}"),
            Some(implicit_assertion(vector)),
        );
        assert!(
            other_footer.is_err(),
            "{}: other expected footer accepted",
            name(vector)
        );
        let mut parts: Vec<&str> = token.split('.').collect();
        parts.truncate(3);
        let swapped = format!("{}.eyJraWQiOiJvdGhlciJ9", parts.join("."));
        let swapped =
            UntrustedToken::<Public, V4>::try_from(swapped.as_str()).expect("swapped token parses");
        assert!(
            PublicToken::verify(&key, &swapped, None, Some(implicit_assertion(vector))).is_err(),
            "{}: swapped footer accepted",
            name(vector)
        );
    }
}

#[test]
fn official_k4_public_paserk_vectors_match_paserk_public() {
    let mut checked = 0;
    for vector in vectors("k4.public.json") {
        let key = AsymmetricPublicKey::<V4>::from(&bytes(&vector, "key"));
        if expect_fail(&vector) {
            assert!(
                key.is_err(),
                "{}: a non-v4 key must not load as a v4 public key",
                name(&vector)
            );
            continue;
        }
        let key = key.unwrap_or_else(|e| panic!("{}: key: {e:?}", name(&vector)));
        let expected = field(&vector, "paserk");
        assert_eq!(paserk_public(&key), expected, "{}", name(&vector));
        // And back: the PASERK parses to the same key.
        let parsed = AsymmetricPublicKey::<V4>::try_from(expected)
            .unwrap_or_else(|e| panic!("{}: parse PASERK: {e:?}", name(&vector)));
        assert_eq!(parsed.as_bytes(), key.as_bytes(), "{}", name(&vector));
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn official_k4_pid_paserk_vectors_match_paserk_pid() {
    let mut checked = 0;
    for vector in vectors("k4.pid.json") {
        let key = AsymmetricPublicKey::<V4>::from(&bytes(&vector, "key"));
        if expect_fail(&vector) {
            assert!(
                key.is_err(),
                "{}: a malformed or non-v4 key must not load as a v4 public key",
                name(&vector)
            );
            continue;
        }
        let key = key.unwrap_or_else(|e| panic!("{}: key: {e:?}", name(&vector)));
        assert_eq!(
            paserk_pid(&key),
            field(&vector, "paserk"),
            "{}",
            name(&vector)
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn a_tessera_token_verifies_with_plain_pasetors_given_only_the_published_paserk() {
    let pair = AsymmetricKeyPair::<V4>::generate().expect("generate key pair");
    let kid = paserk_pid(&pair.public);
    let published = paserk_public(&pair.public);
    let now = now_ms();
    let claims = AccessClaims {
        iss: "tessera".into(),
        sub: "user-1".into(),
        client_id: "client-1".into(),
        scope: "integ".into(),
        jti: "jti-1".into(),
        issued_at: now,
        not_before: now,
        expires_at: now + 300_000,
        sid: Some("sid-1".into()),
    };
    let token = sign(&claims, &kid, &pair.secret).expect("tessera signs");
    assert!(token.starts_with("v4.public."), "{token}");

    // A verifier that knows nothing of Tessera: only the k4.public string.
    let public = AsymmetricPublicKey::<V4>::try_from(published.as_str()).expect("k4.public parses");
    let untrusted = UntrustedToken::<Public, V4>::try_from(token.as_str()).expect("token parses");
    let trusted = PublicToken::verify(&public, &untrusted, None, None).expect("signature verifies");

    let expected_footer = format!(r#"{{"kid":"{kid}"}}"#);
    assert!(kid.starts_with("k4.pid."), "{kid}");
    assert_eq!(
        std::str::from_utf8(trusted.footer()).expect("utf-8 footer"),
        expected_footer
    );
    // The same footer, asserted by pasetors itself.
    PublicToken::verify(&public, &untrusted, Some(expected_footer.as_bytes()), None)
        .expect("footer matches");

    let payload: Value = serde_json::from_str(trusted.payload()).expect("payload is JSON");
    assert_eq!(payload["iss"], "tessera");
    assert_eq!(payload["sub"], "user-1");
    assert_eq!(payload["client_id"], "client-1");
    assert_eq!(payload["scope"], "integ");
    assert_eq!(payload["jti"], "jti-1");
    assert_eq!(payload["sid"], "sid-1");
    for time in ["iat", "nbf", "exp"] {
        assert!(
            payload[time].is_string(),
            "{time} is an RFC 3339 string: {payload}"
        );
    }

    // pasetors' own claim rules (RFC 3339 iat/nbf/exp, currently valid) accept the claims.
    let parsed = Claims::from_string(trusted.payload()).expect("pasetors parses the claims");
    let mut rules = ClaimsValidationRules::new();
    rules.validate_issuer_with("tessera");
    rules
        .validate_claims(&parsed)
        .expect("pasetors validates the claims");

    // And the key a tessera token is not signed with does not verify it.
    let other = AsymmetricKeyPair::<V4>::generate().expect("generate key pair");
    assert!(PublicToken::verify(&other.public, &untrusted, None, None).is_err());
}
