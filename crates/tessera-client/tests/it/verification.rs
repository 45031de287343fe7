//! Offline verification with the server's rules, through the listings service's layer.
use std::time::Duration;

use pasetors::{
    Public,
    keys::{AsymmetricKeyPair, Generate},
    token::UntrustedToken,
    version4::{PublicToken, V4},
};
use tessera::{domain::keyring, server::resolve_master_key};
use tessera_client::VerifyError;
use tessera_testkit::TestApp;
use tonic::Code;

use crate::harness::{
    Calls, ListingsClient, listing, serve_listings, start_verifier, trusted_login, user_login,
    within,
};

fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> Code {
    result.expect_err("refused").code()
}

/// `token` with one character of its payload changed.
fn tampered(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let at = "v4.public.".len() + 20;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

/// The footer segment of a token: the same text for the same key id.
fn footer(token: &str) -> &str {
    token.rsplit('.').next().expect("footer")
}

/// A token with `token`'s claims but signed by a key of our own, naming `kid`.
fn forged(claims: serde_json::Value, kid: &str) -> String {
    let pair = AsymmetricKeyPair::<V4>::generate().expect("keypair");
    let footer = serde_json::json!({ "kid": kid }).to_string();
    PublicToken::sign(
        &pair.secret,
        claims.to_string().as_bytes(),
        Some(footer.as_bytes()),
        None,
    )
    .expect("sign")
}

fn claims_of(issuer: &str) -> serde_json::Value {
    let now = time::OffsetDateTime::now_utc();
    let format = &time::format_description::well_known::Rfc3339;
    serde_json::json!({
        "iss": issuer, "sub": "u", "client_id": "c", "scope": "user trusted:user", "jti": "j",
        "iat": now.format(format).expect("time"), "nbf": now.format(format).expect("time"),
        "exp": (now + time::Duration::minutes(5)).format(format).expect("time"),
    })
}

#[tokio::test]
async fn the_layer_lets_valid_tokens_through_and_refuses_the_rest_with_the_right_status() {
    // Tokens issued before the clock moves are an hour old: expired.
    let app = TestApp::spawn_with_manual_clock_behind(Duration::from_secs(3_600), |_| {}).await;
    let (_, old) = user_login(&app, "old@example.com").await;
    app.advance(Duration::from_secs(3_600)).await;
    let calls = Calls::default();
    let verifier = start_verifier(&app, app.channel(), &calls, |b| b).await;
    let mut listings = ListingsClient::new(serve_listings(verifier.clone()).await);

    let (client, login) = user_login(&app, "ann@example.com").await;
    let user = login.access_token.as_str();
    let seen = listings
        .get_listing(listing(Some(user)))
        .await
        .expect("a user token passes");
    let claims = verifier.verify(user).await.expect("verifies");
    assert_eq!(seen.viewer, claims.subject());
    assert_eq!(claims.client_id(), client);
    assert!(claims.sid().is_some() && !claims.is_trusted());

    let expired = listings.get_listing(listing(Some(&old.access_token))).await;
    assert_eq!(code(expired), Code::Unauthenticated);
    let bad_signature = listings.get_listing(listing(Some(&tampered(user)))).await;
    assert_eq!(code(bad_signature), Code::Unauthenticated);
    let refresh = listings
        .get_listing(listing(Some(&login.refresh_token)))
        .await;
    assert_eq!(code(refresh), Code::Unauthenticated);
    assert_eq!(
        code(listings.get_listing(listing(None)).await),
        Code::Unauthenticated
    );
    let foreign = forged(claims_of("elsewhere"), &footer_kid(user));
    assert_eq!(
        code(listings.get_listing(listing(Some(&foreign))).await),
        Code::Unauthenticated
    );

    let anonymous = app.anonymous_token(&client).await;
    let anonymous_for_user = listings.get_listing(listing(Some(&anonymous))).await;
    assert_eq!(code(anonymous_for_user), Code::PermissionDenied);

    let (_, trusted) = trusted_login(&app, "bea@example.com").await;
    let closed = listings
        .close_listing(listing(Some(&trusted)))
        .await
        .expect("trusted closes");
    assert!(closed.closed);
    listings
        .get_listing(listing(Some(&trusted)))
        .await
        .expect("trusted counts as user");
    assert_eq!(
        code(listings.close_listing(listing(Some(user))).await),
        Code::PermissionDenied
    );

    // The same valid token, for a service that expects another issuer.
    let elsewhere = start_verifier(&app, app.channel(), &calls, |b| b.issuer("elsewhere")).await;
    assert!(matches!(
        elsewhere.verify(user).await,
        Err(VerifyError::WrongIssuer)
    ));

    assert_eq!(
        calls.count("IntrospectToken"),
        0,
        "everything was checked offline"
    );
}

/// The kid in a token's footer.
fn footer_kid(token: &str) -> String {
    let parsed = UntrustedToken::<Public, V4>::try_from(token).expect("a token");
    let footer: serde_json::Value =
        serde_json::from_slice(parsed.untrusted_footer()).expect("json footer");
    footer["kid"].as_str().expect("kid").to_owned()
}

#[tokio::test]
async fn a_key_rotation_is_followed_and_unknown_kids_cost_at_most_one_fetch_per_interval() {
    let app = TestApp::spawn().await;
    let calls = Calls::default();
    let verifier = start_verifier(&app, app.channel(), &calls, |b| b).await;
    let market = app.marketplace_client().await;
    let before = app.anonymous_token(&market).await;
    verifier.verify(&before).await.expect("verifies");

    // Past the refetch interval, a burst of forged kids makes one fetch.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let fetched = calls.count("GetKeySet");
    let forgeries: Vec<String> = (0..20)
        .map(|i| forged(claims_of("tessera"), &format!("k4.pid.forged{i}")))
        .collect();
    let mut verifying = tokio::task::JoinSet::new();
    for token in forgeries {
        let verifier = verifier.clone();
        verifying.spawn(async move { verifier.verify(&token).await });
    }
    while let Some(outcome) = verifying.join_next().await {
        let outcome = outcome.expect("task");
        assert!(
            matches!(outcome, Err(VerifyError::UnknownKey)),
            "{outcome:?}"
        );
    }
    assert_eq!(calls.count("GetKeySet"), fetched + 1);

    let master =
        resolve_master_key(app.config.master_key.as_ref(), &app.db.url).expect("master key");
    let window = app.config.policy.key_verification_window();
    keyring::rotate(
        &app.store,
        &master,
        window,
        tessera::domain::clock::now_ms(),
    )
    .await
    .expect("rotate");
    let followed = within(Duration::from_secs(5), || async {
        let after = app.anonymous_token(&market).await;
        footer(&after) != footer(&before) && verifier.verify(&after).await.is_ok()
    })
    .await;
    assert!(followed, "a token of the new key verifies");
    verifier
        .verify(&before)
        .await
        .expect("the old key still verifies");
}
