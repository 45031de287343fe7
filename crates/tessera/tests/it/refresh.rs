//! The refresh grant: rotation, exactly one winner under concurrency, reuse detection, and
//! the lifetimes of refresh tokens and sessions.
use std::{sync::Arc, time::Duration};

use tessera::grpc::pb;
use tonic::Code;

use crate::common::{
    TestApp, assert_inactive, assert_invalid_client, assert_invalid_grant, assert_invalid_scope,
    refresh_grant, revoke_request,
};

/// A user's login on a new marketplace client: the client and the login.
async fn user_session(app: &TestApp) -> (String, pb::IssueTokenResponse) {
    let client = app.marketplace_client().await;
    let login = app
        .user_login(&client, "lee@example.com", "lees-password")
        .await;
    (client, login)
}

/// A user's session refreshed once: the client, the login and what the refresh returned.
async fn refreshed_user_session(
    app: &TestApp,
) -> (String, pb::IssueTokenResponse, pb::IssueTokenResponse) {
    let (client, first) = user_session(app).await;
    let second = app
        .refresh(&client, "", &first.refresh_token)
        .await
        .expect("refresh");
    (client, first, second)
}

#[tokio::test]
async fn a_refresh_rotates_the_token_and_spends_the_old_one() {
    let app = TestApp::spawn().await;
    let (client, first, second) = refreshed_user_session(&app).await;
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.scope, "user");
    let (a, b) = (
        app.introspect(&first.access_token).await,
        app.introspect(&second.access_token).await,
    );
    assert_eq!(a.sid, b.sid, "the same session");
    assert_eq!(a.sub, b.sub);
    assert_inactive(&app.introspect(&first.refresh_token).await);
    assert!(app.introspect(&second.refresh_token).await.active);
    app.refresh(&client, "", &second.refresh_token)
        .await
        .expect("the successor refreshes");
}

#[tokio::test]
async fn an_integration_session_refreshes_only_with_the_client_secret() {
    let app = TestApp::spawn().await;
    let (id, secret, first) = app.integration_login().await;
    assert_invalid_client(app.refresh(&id, "", &first.refresh_token).await);
    let second = app
        .refresh(&id, &secret, &first.refresh_token)
        .await
        .expect("refresh");
    assert_eq!(second.scope, "integ");
    assert_eq!(app.introspect(&second.access_token).await.sub, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_a_hundred_concurrent_refreshes_of_one_token_exactly_one_succeeds() {
    let app = Arc::new(TestApp::spawn().await);
    let (client, first) = user_session(&app).await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (app, client, token) = (app.clone(), client.clone(), first.refresh_token.clone());
        tasks.push(tokio::spawn(async move {
            app.refresh(&client, "", &token).await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(r) => winners.push(r),
            Err(status) => {
                assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
                assert_invalid_grant(Err::<(), _>(status));
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh wins");
    let next = app
        .refresh(&client, "", &winners[0].refresh_token)
        .await
        .expect("the winner's token works");
    assert!(app.introspect(&next.access_token).await.active);
}

#[tokio::test]
async fn a_spent_token_presented_again_at_once_is_concurrent_with_its_use_and_just_fails() {
    let app = TestApp::spawn().await;
    let (client, first, second) = refreshed_user_session(&app).await;
    assert_invalid_grant(app.refresh(&client, "", &first.refresh_token).await);
    assert!(
        app.introspect(&second.access_token).await.active,
        "the session lives on"
    );
    app.refresh(&client, "", &second.refresh_token)
        .await
        .expect("the successor still works");
}

#[tokio::test]
async fn a_refresh_retried_after_a_lost_answer_gets_a_fresh_pair_and_the_lost_pair_stops_working() {
    let app = TestApp::spawn_with_manual_clock(|_| {}).await;
    let (client, first, lost) = refreshed_user_session(&app).await;
    // The answer was lost (the call ran past the caller's deadline); the caller retries.
    app.advance(Duration::from_secs(2)).await;
    let retried = app
        .refresh(&client, "", &first.refresh_token)
        .await
        .expect("a fresh pair within the grace");
    assert_ne!(retried.refresh_token, lost.refresh_token);
    assert_inactive(&app.introspect(&lost.access_token).await);
    assert_inactive(&app.introspect(&lost.refresh_token).await);
    let fresh = app.introspect(&retried.access_token).await;
    assert!(fresh.active);
    assert_eq!(fresh.sid, app.introspect(&first.access_token).await.sid);
    let next = app
        .refresh(&client, "", &retried.refresh_token)
        .await
        .expect("the fresh pair refreshes");
    // The lost refresh token never reached the client: whoever presents it, even within the
    // grace, stole it, and the session ends.
    assert_invalid_grant(app.refresh(&client, "", &lost.refresh_token).await);
    assert_inactive(&app.introspect(&next.access_token).await);
}

#[tokio::test]
async fn a_spent_token_presented_after_the_grace_window_ends_the_whole_session() {
    let app = TestApp::spawn_with_manual_clock(|c| {
        c.policy.refresh_reuse_grace = Duration::from_millis(200);
    })
    .await;
    let (client, first, second) = refreshed_user_session(&app).await;
    app.advance(Duration::from_millis(300)).await;
    assert_invalid_grant(app.refresh(&client, "", &first.refresh_token).await);
    assert_inactive(&app.introspect(&second.access_token).await);
    assert_inactive(&app.introspect(&second.refresh_token).await);
    assert_invalid_grant(app.refresh(&client, "", &second.refresh_token).await);
}

#[tokio::test]
async fn another_clients_refresh_token_is_invalid_grant_and_stays_usable() {
    let app = TestApp::spawn().await;
    let (client, first) = user_session(&app).await;
    let other = app.marketplace_client().await;
    assert_invalid_grant(app.refresh(&other, "", &first.refresh_token).await);
    app.refresh(&client, "", &first.refresh_token)
        .await
        .expect("still the owner's");
}

#[tokio::test]
async fn an_access_token_is_not_a_refresh_token() {
    let app = TestApp::spawn().await;
    let (client, first) = user_session(&app).await;
    assert_invalid_grant(app.refresh(&client, "", &first.access_token).await);
    assert_invalid_grant(app.refresh(&client, "", "garbage").await);
}

#[tokio::test]
async fn a_refresh_token_past_its_lifetime_is_invalid_grant() {
    let app =
        TestApp::spawn_with_manual_clock(|c| c.policy.refresh_token_ttl = Duration::from_secs(1))
            .await;
    let (client, first) = user_session(&app).await;
    app.advance(Duration::from_millis(1_100)).await;
    assert_inactive(&app.introspect(&first.refresh_token).await);
    assert_invalid_grant(app.refresh(&client, "", &first.refresh_token).await);
}

#[tokio::test]
async fn no_refresh_outlives_the_sessions_maximum_lifetime() {
    let app =
        TestApp::spawn_with_manual_clock(|c| c.policy.session_max_ttl = Duration::from_secs(1))
            .await;
    let (client, first) = user_session(&app).await;
    let refresh = app.introspect(&first.refresh_token).await;
    let issued = refresh.issue_time.expect("issue time").seconds;
    assert!(
        refresh.expire_time.expect("expiry").seconds <= issued + 2,
        "capped by the session"
    );
    app.advance(Duration::from_millis(1_100)).await;
    assert_invalid_grant(app.refresh(&client, "", &first.refresh_token).await);
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_but_not_widen_it() {
    let app = TestApp::spawn().await;
    let (id, secret, first) = app.integration_login().await;
    let mut wider = refresh_grant(&id, &secret, &first.refresh_token);
    wider.scope = "integ user".into();
    assert_invalid_scope(app.issue(wider).await);
    let mut same = refresh_grant(&id, &secret, &first.refresh_token);
    same.scope = "integ".into();
    assert_eq!(app.issue(same).await.expect("refresh").scope, "integ");
}

#[tokio::test]
async fn a_revoked_session_cannot_be_refreshed() {
    let app = TestApp::spawn().await;
    let (id, secret, first) = app.integration_login().await;
    app.revoke(revoke_request(&id, &secret, &first.access_token))
        .await
        .expect("revoke");
    assert_invalid_grant(app.refresh(&id, &secret, &first.refresh_token).await);
}

/// A session of an integration client as a release before time-ordered refresh tokens left it:
/// its refresh token is 43 characters (256 random bits) stored under its SHA-256.
async fn session_of_an_earlier_release(app: &TestApp, client_id: &str) -> String {
    use tessera::domain::repository::{
        NewSession, RefreshTokenRecord, SessionRecord, SessionRepository,
    };
    let token = tessera::domain::random::new_secret();
    let now = tessera::domain::clock::now_ms();
    let sid = uuid::Uuid::new_v4().to_string();
    let started = app
        .store
        .start_session(NewSession {
            session: SessionRecord {
                sid: sid.clone(),
                client_id: client_id.to_owned(),
                user_id: None,
                scope: "integ".into(),
                created_at: now,
                expires_at: now + 3_600_000,
                ended_at: None,
                end_reason: None,
            },
            refresh_token: RefreshTokenRecord {
                token_hash: tessera::domain::random::sha256_hex(&token),
                sid,
                client_id: client_id.to_owned(),
                created_at: now,
                expires_at: now + 3_600_000,
                spent_at: None,
                successor_hash: None,
                issued_with: None,
                replaced_at: None,
            },
            user_version: None,
        })
        .await
        .expect("query");
    assert!(started);
    token
}

#[tokio::test]
async fn a_refresh_token_of_an_earlier_release_introspects_refreshes_once_and_is_then_spent() {
    let app = TestApp::spawn().await;
    let (client, secret) = app.integration_client().await;
    let earlier = session_of_an_earlier_release(&app, &client).await;
    assert_eq!(earlier.len(), 43);

    let seen = app.introspect(&earlier).await;
    assert!(seen.active);
    assert_eq!(seen.token_type, pb::TokenType::RefreshToken as i32);

    let next = app
        .refresh(&client, &secret, &earlier)
        .await
        .expect("an earlier release's refresh token still refreshes");
    assert_eq!(
        next.refresh_token.len(),
        64,
        "its successor has today's shape"
    );
    assert!(app.introspect(&next.access_token).await.active);
    assert_inactive(&app.introspect(&earlier).await);
    assert!(app.introspect(&next.refresh_token).await.active);
    // Spent: presented again (at once, so as a concurrent refresh would), it is refused.
    assert_invalid_grant(app.refresh(&client, &secret, &earlier).await);
}

#[tokio::test]
async fn revoking_a_refresh_token_of_an_earlier_release_ends_its_session() {
    let app = TestApp::spawn().await;
    let (client, secret) = app.integration_client().await;
    let earlier = session_of_an_earlier_release(&app, &client).await;
    app.revoke(revoke_request(&client, &secret, &earlier))
        .await
        .expect("revoke");
    assert_inactive(&app.introspect(&earlier).await);
    assert_invalid_grant(app.refresh(&client, &secret, &earlier).await);
}
