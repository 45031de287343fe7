//! IntrospectToken: RFC 7662 answers for every kind of token that does not verify, and the
//! caller authorization of SPEC §4.
use std::time::Duration;

use pasetors::{
    keys::{AsymmetricKeyPair, Generate, SymmetricKey},
    version4::{LocalToken, V4},
};
use tessera::{
    config::IntrospectionAuth,
    domain::{
        clock::now_ms,
        keyring::paserk_pid,
        token::{self, AccessClaims},
    },
};

use crate::common::{
    TestApp, assert_inactive, assert_invalid_client, assert_invalid_request,
    assert_unauthorized_client, client_credentials,
};

/// Claims like the server's own, for a token the test signs itself.
fn claims_for(client_id: &str, now: i64) -> AccessClaims {
    AccessClaims {
        iss: "tessera".into(),
        sub: client_id.into(),
        client_id: client_id.into(),
        scope: "public-read".into(),
        jti: uuid::Uuid::new_v4().to_string(),
        issued_at: now,
        not_before: now,
        expires_at: now + 600_000,
        sid: None,
    }
}

#[tokio::test]
async fn a_token_signed_by_our_key_with_our_claims_is_active() {
    // The control for the forged tokens below: the same path, with nothing wrong.
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let token = app
        .tokens
        .keys()
        .sign(&claims_for(&id, now_ms()))
        .expect("sign");
    assert!(app.introspect(&token).await.active);
}

#[tokio::test]
async fn tampered_truncated_garbage_and_local_tokens_are_inactive_and_nothing_else() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let good = app.anonymous_token(&id).await;

    let mut tampered_payload = good.clone().into_bytes();
    tampered_payload[20] = if tampered_payload[20] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let (body, footer) = good.rsplit_once('.').expect("footer");
    let forged_footer = format!(
        "{body}.{}",
        base64_url(br#"{"kid":"k4.pid.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#)
    );
    let no_footer = body.to_owned();
    let local_key = SymmetricKey::<V4>::generate().expect("key");
    let local =
        LocalToken::encrypt(&local_key, br#"{"sub":"x"}"#, None, None).expect("local token");
    let inputs = vec![
        String::from_utf8(tampered_payload).expect("utf8"),
        good[..good.len() - 10].to_owned(),
        good[..40].to_owned(),
        forged_footer,
        no_footer,
        format!("{body}.{footer}x"),
        local,
        "garbage".into(),
        "v4.public.".into(),
        "v2.public.eyJ4IjoxfQ".into(),
        "💥".repeat(10),
        "A".repeat(43),
        "\u{0}".into(),
    ];
    for token in inputs {
        assert_inactive(&app.introspect(&token).await);
    }
    assert!(
        app.introspect(&good).await.active,
        "the untouched token stays active"
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn a_token_signed_by_a_key_that_is_not_ours_is_inactive() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let foreign = AsymmetricKeyPair::<V4>::generate().expect("keypair");
    let claims = claims_for(&id, now_ms());
    // Naming the foreign key's own id...
    let own_kid =
        token::sign(&claims, &paserk_pid(&foreign.public), &foreign.secret).expect("sign");
    assert_inactive(&app.introspect(&own_kid).await);
    // ...or claiming to be signed by our key.
    let our_kid =
        token::sign(&claims, &app.tokens.keys().signing_kid(), &foreign.secret).expect("sign");
    assert_inactive(&app.introspect(&our_kid).await);
}

#[tokio::test]
async fn a_token_that_is_not_yet_valid_is_inactive_beyond_the_leeway() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let now = now_ms();
    let mut future = claims_for(&id, now + 60_000);
    future.expires_at = now + 600_000;
    assert_inactive(
        &app.introspect(&app.tokens.keys().sign(&future).expect("sign"))
            .await,
    );

    let mut nbf_only = claims_for(&id, now);
    nbf_only.not_before = now + 60_000;
    assert_inactive(
        &app.introspect(&app.tokens.keys().sign(&nbf_only).expect("sign"))
            .await,
    );

    // Within the 5 s leeway, a peer's slightly fast clock is tolerated.
    let slightly_ahead = claims_for(&id, now + 2_000);
    assert!(
        app.introspect(&app.tokens.keys().sign(&slightly_ahead).expect("sign"))
            .await
            .active
    );
}

#[tokio::test]
async fn a_token_past_its_expiry_is_inactive() {
    let app = TestApp::spawn_with_manual_clock(|c| {
        c.policy.access_token_ttl = Duration::from_secs(1);
        c.policy.clock_leeway = Duration::ZERO;
    })
    .await;
    let id = app.marketplace_client().await;
    let token = app.anonymous_token(&id).await;
    // The caller's own token must outlive the clock's move: sign it with a long expiry.
    let (caller_id, _, _) = app.integration_login().await;
    let mut caller_claims = claims_for(&caller_id, app.now_ms());
    caller_claims.scope = "integ".into();
    let caller = app.tokens.keys().sign(&caller_claims).expect("sign");
    assert!(
        app.introspect_as(Some(&caller), &token)
            .await
            .expect("ok")
            .active
    );
    app.advance(Duration::from_millis(1_300)).await;
    assert_inactive(&app.introspect_as(Some(&caller), &token).await.expect("ok"));
}

#[tokio::test]
async fn a_token_of_another_issuer_is_inactive() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let mut claims = claims_for(&id, now_ms());
    claims.iss = "someone-else".into();
    assert_inactive(
        &app.introspect(&app.tokens.keys().sign(&claims).expect("sign"))
            .await,
    );
}

#[tokio::test]
async fn tokens_of_a_disabled_client_are_inactive() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let token = app.anonymous_token(&id).await;
    let (iid, _, integ) = app.integration_login().await;
    app.disable_client(&id).await;
    app.disable_client(&iid).await;
    // Disabling is an out-of-band (CLI) action: it reaches the server within a second.
    app.assert_inactive_within_a_second(&token).await;
    app.assert_inactive_within_a_second(&integ.access_token)
        .await;
    assert_inactive(&app.introspect(&integ.refresh_token).await);
}

#[tokio::test]
async fn an_oversized_token_is_invalid_request() {
    let app = TestApp::spawn().await;
    let bearer = app.introspection_bearer().await;
    assert_invalid_request(app.introspect_as(Some(&bearer), &"a".repeat(4097)).await);
    assert_invalid_request(app.introspect_as(Some(&bearer), "").await);
    assert_inactive(
        &app.introspect_as(Some(&bearer), &"a".repeat(4096))
            .await
            .expect("4 KiB is allowed"),
    );
}

#[tokio::test]
async fn introspection_without_a_bearer_token_is_unauthenticated() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let token = app.anonymous_token(&id).await;
    assert_invalid_client(app.introspect_as(None, &token).await);
}

#[tokio::test]
async fn introspection_with_anything_but_an_active_integ_token_is_permission_denied() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let anonymous = app.anonymous_token(&id).await;
    let (iid, _, integ) = app.integration_login().await;
    for bearer in [anonymous.as_str(), "garbage", integ.refresh_token.as_str()] {
        assert_unauthorized_client(app.introspect_as(Some(bearer), &anonymous).await);
    }
    app.disable_client(&iid).await;
    app.assert_inactive_within_a_second(&integ.access_token)
        .await;
    assert_unauthorized_client(
        app.introspect_as(Some(&integ.access_token), &anonymous)
            .await,
    );
}

#[tokio::test]
async fn introspection_auth_none_lets_any_caller_in() {
    let app = TestApp::spawn_with(|c| c.introspection_auth = IntrospectionAuth::None).await;
    let id = app.marketplace_client().await;
    let token = app.anonymous_token(&id).await;
    assert!(app.introspect_as(None, &token).await.expect("ok").active);
}

#[tokio::test]
async fn a_token_issued_by_one_instance_introspects_on_another_sharing_the_database() {
    let first = TestApp::spawn().await;
    let second = first.sibling().await;
    let id = first.marketplace_client().await;
    let token = first
        .issue(client_credentials(&id, ""))
        .await
        .expect("token")
        .access_token;
    assert!(second.introspect(&token).await.active);
}
