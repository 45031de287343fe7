//! token_exchange (RFC 8693): a `user` token of the same client becomes a `trusted:user` one.
use std::time::Duration;

use tessera::{
    domain::{clock::now_ms, token::AccessClaims},
    grpc::pb::{self, issue_token_request::Grant},
};

use crate::common::{
    TestApp, assert_inactive, assert_invalid_client, assert_invalid_grant, assert_invalid_request,
    assert_unauthorized_client, client_credentials, revoke_request,
};

const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

fn exchange(client_id: &str, secret: &str, subject_token: &str) -> pb::IssueTokenRequest {
    pb::IssueTokenRequest {
        client_id: client_id.into(),
        client_secret: secret.into(),
        grant: Some(Grant::TokenExchange(pb::TokenExchangeGrant {
            subject_token: subject_token.into(),
            subject_token_type: ACCESS_TOKEN_TYPE.into(),
        })),
        ..Default::default()
    }
}

/// A marketplace client with a secret, and a logged-in user's tokens.
async fn setup(app: &TestApp) -> (String, String, pb::IssueTokenResponse) {
    let (client, secret) = app.marketplace_client_with_secret().await;
    let login = app
        .user_login(&client, "nina@example.com", "ninas-password")
        .await;
    (client, secret, login)
}

/// The login's access token exchanged for a `trusted:user` one.
async fn trusted_token(
    app: &TestApp,
    client: &str,
    secret: &str,
    login: &pb::IssueTokenResponse,
) -> pb::IssueTokenResponse {
    app.issue(exchange(client, secret, &login.access_token))
        .await
        .expect("exchange")
}

#[tokio::test]
async fn a_user_token_becomes_a_trusted_token_of_the_same_subject_and_session() {
    let app = TestApp::spawn().await;
    let (client, secret, login) = setup(&app).await;
    let trusted = trusted_token(&app, &client, &secret, &login).await;
    assert_eq!(trusted.scope, "trusted:user");
    assert_eq!(
        trusted.refresh_token, "",
        "exchange again instead of refreshing"
    );
    assert_eq!(trusted.issued_token_type, ACCESS_TOKEN_TYPE);
    assert_eq!(trusted.token_type, "bearer");
    assert!(trusted.expires_in <= 300);
    let (user, derived) = (
        app.introspect(&login.access_token).await,
        app.introspect(&trusted.access_token).await,
    );
    assert!(derived.active);
    assert_eq!(
        (derived.sub.as_str(), derived.sid.as_str()),
        (user.sub.as_str(), user.sid.as_str())
    );
    assert!(derived.expire_time.expect("exp").seconds <= user.expire_time.expect("exp").seconds);
    // An empty subject_token_type means the same.
    let mut untyped = exchange(&client, &secret, &login.access_token);
    if let Some(Grant::TokenExchange(g)) = untyped.grant.as_mut() {
        g.subject_token_type.clear();
    }
    app.issue(untyped).await.expect("empty subject_token_type");
}

#[tokio::test]
async fn a_trusted_token_never_outlives_the_user_token_it_came_from() {
    let app = TestApp::spawn_with(|c| {
        c.policy.access_token_ttl = Duration::from_secs(60);
        c.policy.trusted_token_ttl = Duration::from_secs(300);
    })
    .await;
    let (client, secret, login) = setup(&app).await;
    let trusted = trusted_token(&app, &client, &secret, &login).await;
    assert!(trusted.expires_in <= 60, "{}", trusted.expires_in);
    let (user, derived) = (
        app.introspect(&login.access_token).await,
        app.introspect(&trusted.access_token).await,
    );
    let millis = |t: prost_types::Timestamp| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000;
    assert!(millis(derived.expire_time.expect("exp")) <= millis(user.expire_time.expect("exp")));
}

#[tokio::test]
async fn only_a_marketplace_client_presenting_its_secret_may_exchange() {
    let app = TestApp::spawn().await;
    let (client, secret, login) = setup(&app).await;
    assert_invalid_client(app.issue(exchange(&client, "", &login.access_token)).await);
    assert_invalid_client(
        app.issue(exchange(&client, "wrong", &login.access_token))
            .await,
    );
    let public = app.marketplace_client().await;
    assert_invalid_client(app.issue(exchange(&public, "", &login.access_token)).await);
    let (integ, integ_secret) = app.integration_client().await;
    assert_unauthorized_client(
        app.issue(exchange(&integ, &integ_secret, &login.access_token))
            .await,
    );
    app.issue(exchange(&client, &secret, &login.access_token))
        .await
        .expect("the right way still works");
}

#[tokio::test]
async fn every_unusable_subject_token_gets_one_identical_invalid_grant() {
    let app = TestApp::spawn_with(|c| c.policy.clock_leeway = Duration::ZERO).await;
    let (client, secret, login) = setup(&app).await;
    let anonymous = app
        .issue(client_credentials(&client, ""))
        .await
        .expect("anonymous")
        .access_token;
    let trusted = trusted_token(&app, &client, &secret, &login)
        .await
        .access_token;
    // A user token of another client.
    let other = app.marketplace_client().await;
    let foreign = app
        .login(&other, "nina@example.com", "ninas-password")
        .await
        .expect("login")
        .access_token;
    // An expired user token, signed by our own key.
    let user = app.introspect(&login.access_token).await;
    let now = now_ms();
    let expired = app
        .tokens
        .keys()
        .sign(&AccessClaims {
            iss: "tessera".into(),
            sub: user.sub.clone(),
            client_id: client.clone(),
            scope: "user".into(),
            jti: uuid::Uuid::new_v4().to_string(),
            issued_at: now - 120_000,
            not_before: now - 120_000,
            expires_at: now - 60_000,
            sid: Some(user.sid.clone()),
        })
        .expect("sign");
    // A revoked one: a second session, revoked.
    let revoked = app
        .login(&client, "nina@example.com", "ninas-password")
        .await
        .expect("login");
    app.revoke(revoke_request(&client, "", &revoked.access_token))
        .await
        .expect("revoke");

    let mut messages = Vec::new();
    for subject in [
        anonymous.as_str(),
        trusted.as_str(),
        login.refresh_token.as_str(),
        expired.as_str(),
        revoked.access_token.as_str(),
        foreign.as_str(),
        "garbage",
        "v4.public.AAAA",
    ] {
        let status = assert_invalid_grant(app.issue(exchange(&client, &secret, subject)).await);
        messages.push(status.message().to_owned());
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:?}");
}

#[tokio::test]
async fn a_subject_token_type_other_than_access_token_is_invalid_request() {
    let app = TestApp::spawn().await;
    let (client, secret, login) = setup(&app).await;
    let mut request = exchange(&client, &secret, &login.access_token);
    if let Some(Grant::TokenExchange(g)) = request.grant.as_mut() {
        g.subject_token_type = "urn:ietf:params:oauth:token-type:refresh_token".into();
    }
    assert_invalid_request(app.issue(request).await);
}

#[tokio::test]
async fn ending_the_session_makes_the_trusted_token_inactive() {
    let app = TestApp::spawn().await;
    let (client, secret, login) = setup(&app).await;
    let trusted = trusted_token(&app, &client, &secret, &login).await;
    let mut logout = revoke_request(&client, "", &login.refresh_token);
    logout.token_type_hint = pb::TokenTypeHint::RefreshToken as i32;
    app.revoke(logout).await.expect("revoke");
    assert_inactive(&app.introspect(&trusted.access_token).await);
    assert_inactive(&app.introspect(&login.access_token).await);
}
