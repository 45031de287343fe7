//! RevokeToken as far as the foundation reaches: sessions end, anonymous tokens are revoked
//! alone, other clients' tokens are refused and left alone.

use tessera::grpc::pb;

use crate::common::{
    TestApp, assert_inactive, assert_invalid_client, assert_unauthorized_client, revoke_request,
};

#[tokio::test]
async fn revoking_an_integration_access_token_ends_its_session() {
    let app = TestApp::spawn().await;
    let (id, secret, r) = app.integration_login().await;
    app.revoke(revoke_request(&id, &secret, &r.access_token))
        .await
        .expect("revoke");
    assert_inactive(&app.introspect(&r.access_token).await);
    assert_inactive(&app.introspect(&r.refresh_token).await);
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_session() {
    let app = TestApp::spawn().await;
    let (id, secret, r) = app.integration_login().await;
    app.revoke(revoke_request(&id, &secret, &r.refresh_token))
        .await
        .expect("revoke");
    assert_inactive(&app.introspect(&r.access_token).await);
}

#[tokio::test]
async fn revoking_an_anonymous_token_revokes_it_alone() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let first = app.anonymous_token(&id).await;
    let second = app.anonymous_token(&id).await;
    app.revoke(revoke_request(&id, "", &first))
        .await
        .expect("revoke");
    assert_inactive(&app.introspect(&first).await);
    assert!(app.introspect(&second).await.active);
    // Revoking again is harmless.
    app.revoke(revoke_request(&id, "", &first))
        .await
        .expect("revoke again");
}

#[tokio::test]
async fn unknown_and_invalid_tokens_revoke_ok() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    for token in ["garbage", "v4.public.abc", &"A".repeat(43)] {
        app.revoke(revoke_request(&id, "", token))
            .await
            .expect("OK per RFC 7009");
    }
}

#[tokio::test]
async fn another_clients_token_is_refused_and_stays_active() {
    let app = TestApp::spawn().await;
    let (id, secret, r) = app.integration_login().await;
    let other = app.marketplace_client().await;
    let anonymous = app.anonymous_token(&other).await;
    assert_unauthorized_client(app.revoke(revoke_request(&id, &secret, &anonymous)).await);
    assert_unauthorized_client(
        app.revoke(revoke_request(&other, "", &r.refresh_token))
            .await,
    );
    assert!(app.introspect(&anonymous).await.active);
    assert!(app.introspect(&r.refresh_token).await.active);
}

#[tokio::test]
async fn an_integration_client_must_authenticate_to_revoke_request() {
    let app = TestApp::spawn().await;
    let (id, _secret, r) = app.integration_login().await;
    assert_invalid_client(app.revoke(revoke_request(&id, "", &r.access_token)).await);
    assert!(app.introspect(&r.access_token).await.active);
}

#[tokio::test]
async fn the_token_type_hint_is_only_a_hint() {
    let app = TestApp::spawn().await;
    let (id, secret, r) = app.integration_login().await;
    let mut request = revoke_request(&id, &secret, &r.access_token);
    request.token_type_hint = pb::TokenTypeHint::RefreshToken as i32;
    app.revoke(request).await.expect("revoke");
    assert_inactive(&app.introspect(&r.access_token).await);
    let market = app.marketplace_client().await;
    let anonymous = app.anonymous_token(&market).await;
    let mut request = revoke_request(&market, "", &anonymous);
    request.token_type_hint = pb::TokenTypeHint::RefreshToken as i32;
    app.revoke(request).await.expect("revoke");
    assert_inactive(&app.introspect(&anonymous).await);
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    let mut app = TestApp::spawn().await;
    let market = app.marketplace_client().await;
    let anonymous = app.anonymous_token(&market).await;
    let (id, secret, r) = app.integration_login().await;
    app.revoke(revoke_request(&market, "", &anonymous))
        .await
        .expect("revoke");
    app.revoke(revoke_request(&id, &secret, &r.refresh_token))
        .await
        .expect("revoke");
    app.stop().await;
    let again = app.sibling().await;
    assert_inactive(&again.introspect(&anonymous).await);
    assert_inactive(&again.introspect(&r.access_token).await);
    assert_inactive(&again.introspect(&r.refresh_token).await);
}

#[tokio::test]
async fn a_revocation_on_one_instance_is_seen_by_another_within_a_second() {
    let first = TestApp::spawn().await;
    let second = first.sibling().await;
    let market = first.marketplace_client().await;
    let anonymous = first.anonymous_token(&market).await;
    let (id, secret, r) = first.integration_login().await;
    assert!(second.introspect(&anonymous).await.active);
    assert!(second.introspect(&r.access_token).await.active);
    first
        .revoke(revoke_request(&market, "", &anonymous))
        .await
        .expect("revoke");
    first
        .revoke(revoke_request(&id, &secret, &r.access_token))
        .await
        .expect("revoke");
    // The revoking instance sees it from the next call on.
    assert_inactive(&first.introspect(&anonymous).await);
    assert_inactive(&first.introspect(&r.access_token).await);
    second.assert_inactive_within_a_second(&anonymous).await;
    second
        .assert_inactive_within_a_second(&r.access_token)
        .await;
    assert_inactive(&second.introspect(&r.refresh_token).await);
}
