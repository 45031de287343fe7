//! Property tests (proptest) for the parsers and the token round trip: access tokens carry any
//! claims in the valid range through sign -> parse -> verify unchanged and no single damaged
//! byte ever verifies; username normalisation is idempotent, trims, and ignores letter case.
use std::sync::OnceLock;

use pasetors::{
    keys::{AsymmetricKeyPair, Generate},
    version4::V4,
};
use proptest::prelude::*;
use tessera::domain::{
    token::{AccessClaims, Unverified, sign},
    users::normalize_username,
};

/// One key pair for the whole run: key generation is not what is under test.
fn key_pair() -> &'static AsymmetricKeyPair<V4> {
    static PAIR: OnceLock<AsymmetricKeyPair<V4>> = OnceLock::new();
    PAIR.get_or_init(|| AsymmetricKeyPair::<V4>::generate().expect("key pair"))
}

/// 0001-01-01 to 9999-12-31 in Unix milliseconds: what RFC 3339 (and so PASETO) can say.
const EARLIEST_MS: i64 = -62_135_596_800_000;
const LATEST_MS: i64 = 253_402_300_799_999;

fn claims() -> impl Strategy<Value = AccessClaims> {
    (
        (any::<String>(), any::<String>(), any::<String>()),
        (
            any::<String>(),
            any::<String>(),
            proptest::option::of(any::<String>()),
        ),
        (
            EARLIEST_MS..=LATEST_MS,
            EARLIEST_MS..=LATEST_MS,
            EARLIEST_MS..=LATEST_MS,
        ),
    )
        .prop_map(
            |((iss, sub, client_id), (scope, jti, sid), (issued_at, not_before, expires_at))| {
                AccessClaims {
                    iss,
                    sub,
                    client_id,
                    scope,
                    jti,
                    issued_at,
                    not_before,
                    expires_at,
                    sid,
                }
            },
        )
}

/// A username-like string: letters of several scripts and cases, digits, dots, `@`, and the
/// whitespace a user or a form may add around it. Left out on purpose: the letters whose case
/// does not round-trip under `to_lowercase` (`ß` -> `SS` -> `ss`; a word-final `Σ` lowers to
/// `ς`, a `σ` stays `σ`): lower-casing is not full case folding (docs/fuzzing.md).
fn username() -> impl Strategy<Value = String> {
    let core = "[a-zA-Z0-9._%+@ÀÉÎÕÜàéîõüÆæØøĀāŁłΑΒΓαβγДЖЯджя-]{0,40}";
    (
        "[ \t\r\n\u{a0}\u{2003}\u{3000}]{0,3}",
        core,
        "[ \t\r\n\u{a0}\u{2003}\u{3000}]{0,3}",
    )
        .prop_map(|(before, core, after)| format!("{before}{core}{after}"))
}

/// `text` with the letters at the positions `mask` picks put in the other case.
fn flip_case(text: &str, mask: &[bool]) -> String {
    text.chars()
        .zip(mask.iter().cycle())
        .map(|(c, &flip)| {
            if !flip {
                c.to_string()
            } else if c.is_lowercase() {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_claims_in_range_survive_sign_parse_and_verify_unchanged(claims in claims()) {
        let pair = key_pair();
        let token = sign(&claims, "k4.pid.test", &pair.secret).expect("sign");
        let parsed = Unverified::parse(&token).expect("parse");
        prop_assert_eq!(parsed.kid(), "k4.pid.test");
        prop_assert_eq!(parsed.verify(&pair.public), Some(claims));
    }

    #[test]
    fn a_token_with_any_single_byte_changed_never_verifies(
        claims in claims(),
        at in any::<prop::sample::Index>(),
        change in 1u8..=255,
    ) {
        let pair = key_pair();
        let token = sign(&claims, "k4.pid.test", &pair.secret).expect("sign");
        let mut bytes = token.into_bytes();
        let at = at.index(bytes.len());
        bytes[at] ^= change;
        // The API carries tokens as protobuf strings: only UTF-8 ever reaches the parser.
        if let Ok(damaged) = String::from_utf8(bytes) {
            let verified = Unverified::parse(&damaged).and_then(|t| t.verify(&pair.public));
            prop_assert!(verified.is_none(), "byte {} changed and still verifies", at);
        }
    }

    #[test]
    fn normalising_a_username_twice_changes_nothing(raw in username()) {
        let once = normalize_username(&raw);
        prop_assert_eq!(normalize_username(&once), once);
    }

    #[test]
    fn a_normalised_username_has_no_surrounding_whitespace(raw in any::<String>()) {
        let normalised = normalize_username(&raw);
        prop_assert_eq!(normalised.trim(), normalised.as_str());
    }

    #[test]
    fn whitespace_around_a_username_does_not_matter(
        raw in username(),
        before in "[ \t\r\n\u{a0}\u{2003}]{0,4}",
        after in "[ \t\r\n\u{a0}\u{2003}]{0,4}",
    ) {
        prop_assert_eq!(
            normalize_username(&format!("{before}{raw}{after}")),
            normalize_username(&raw)
        );
    }

    #[test]
    fn letter_case_in_a_username_does_not_matter(
        raw in username(),
        mask in prop::collection::vec(any::<bool>(), 1..16),
    ) {
        prop_assert_eq!(
            normalize_username(&flip_case(&raw, &mask)),
            normalize_username(&raw)
        );
        prop_assert_eq!(
            normalize_username(&raw.to_uppercase()),
            normalize_username(&raw)
        );
    }

    #[test]
    fn a_normalised_username_has_no_upper_case_letter(raw in any::<String>()) {
        let normalised = normalize_username(&raw);
        prop_assert_eq!(normalised.to_lowercase(), normalised);
    }
}
