//! The background clean-up: rows past their time go, live ones stay and keep working.
use std::time::Duration;
use tessera_testkit::prelude::*;

use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Statement};
use tessera::{
    config::IntrospectionAuth,
    domain::repository::Cutoffs,
    domain::{cleanup, clock::now_ms, policy::TokenPolicy, random::refresh_token_key},
    store::entity::{login_throttles, refresh_tokens, sessions},
};
use tonic_types::StatusExt;

use crate::common::{TestApp, assert_inactive, assert_invalid_grant, assert_slow_down};

const HOUR_MS: i64 = 60 * 60 * 1000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Runs one clean-up as the background job would at `now`.
async fn clean_up_at(app: &TestApp, now: i64) -> tessera::domain::repository::Deleted {
    cleanup::delete_expired(&app.store, app.tokens.policy(), now)
        .await
        .expect("clean-up runs")
}

async fn insert_session(app: &TestApp, client_id: &str, sid: &str, created_at: i64) {
    sessions::ActiveModel::from(sessions::Model {
        sid: sid.to_owned(),
        client_id: client_id.to_owned(),
        user_id: None,
        scope: "integ".into(),
        created_at,
        expires_at: created_at + 180 * DAY_MS,
        ended_at: None,
        end_reason: None,
    })
    .insert(app.store.connection())
    .await
    .expect("insert session");
}

async fn end_session_at(app: &TestApp, sid: &str, ended_at: i64) {
    let db = app.store.connection();
    let sql = format!(
        "UPDATE sessions SET ended_at = {ended_at}, end_reason = 'revoked' WHERE sid = '{sid}'"
    );
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("end session");
}

async fn insert_refresh_token(
    app: &TestApp,
    client_id: &str,
    sid: &str,
    hash: &str,
    expires_at: i64,
) {
    refresh_tokens::ActiveModel::from(refresh_tokens::Model {
        token_hash: hash.to_owned(),
        sid: sid.to_owned(),
        client_id: client_id.to_owned(),
        created_at: expires_at - DAY_MS,
        expires_at,
        spent_at: None,
        successor_hash: None,
        access_jti: None,
        access_expires_at: None,
        replaced_at: None,
    })
    .insert(app.store.connection())
    .await
    .expect("insert refresh token");
}

async fn refresh_token_exists(app: &TestApp, hash: &str) -> bool {
    app.store
        .find_refresh_token(hash)
        .await
        .expect("read refresh token")
        .is_some()
}

async fn session_exists(app: &TestApp, sid: &str) -> bool {
    app.store
        .find_session(sid)
        .await
        .expect("read session")
        .is_some()
}

/// Logs the revocation of token `subject`, made at `at` for a token that lived ten minutes.
async fn insert_revocation_event(app: &TestApp, subject: &str, at: i64) {
    app.store
        .revoke_token(subject, at, at + 10 * 60_000)
        .await
        .expect("log a revocation")
        .expect("a new event");
}

async fn revocation_events_about(app: &TestApp, subject: &str) -> usize {
    app.store
        .revocations_after(0, 100_000)
        .await
        .expect("read revocation events")
        .events
        .into_iter()
        .filter(|e| e.subject == subject)
        .count()
}

async fn throttle_keys(app: &TestApp) -> Vec<String> {
    let mut keys: Vec<String> = login_throttles::Entity::find()
        .all(app.store.connection())
        .await
        .expect("read throttles")
        .into_iter()
        .map(|t| t.throttle_key)
        .collect();
    keys.sort();
    keys
}

fn retry_after(status: &tonic::Status) -> Duration {
    status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo with a delay")
}

#[tokio::test]
async fn refresh_tokens_and_sessions_past_their_time_go_and_a_live_session_still_refreshes() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let first = app
        .user_login(&client, "ada@example.com", "adas-password")
        .await;
    let second = app
        .refresh(&client, "", &first.refresh_token)
        .await
        .expect("refresh");
    let live_sid = app.introspect(&second.access_token).await.sid;
    let now = now_ms();

    // An expired token of the live session, and two sessions long over with their tokens
    // (one still unexpired), and one that ended a moment ago.
    insert_refresh_token(&app, &client, &live_sid, &"a".repeat(64), now - DAY_MS).await;
    insert_session(&app, &client, "ended-long-ago", now - 2 * DAY_MS).await;
    end_session_at(&app, "ended-long-ago", now - DAY_MS).await;
    insert_refresh_token(
        &app,
        &client,
        "ended-long-ago",
        &"b".repeat(64),
        now + DAY_MS,
    )
    .await;
    insert_session(&app, &client, "expired-long-ago", now - 200 * DAY_MS).await;
    insert_refresh_token(
        &app,
        &client,
        "expired-long-ago",
        &"c".repeat(64),
        now - DAY_MS,
    )
    .await;
    insert_session(&app, &client, "ended-just-now", now - HOUR_MS).await;
    end_session_at(&app, "ended-just-now", now).await;
    insert_refresh_token(
        &app,
        &client,
        "ended-just-now",
        &"d".repeat(64),
        now + DAY_MS,
    )
    .await;

    let deleted = clean_up_at(&app, now_ms()).await;

    assert_eq!(deleted.refresh_tokens, 3, "{deleted:?}");
    assert_eq!(deleted.sessions, 2, "{deleted:?}");
    for hash in ["a", "b", "c"] {
        assert!(!refresh_token_exists(&app, &hash.repeat(64)).await);
    }
    assert!(!session_exists(&app, "ended-long-ago").await);
    assert!(!session_exists(&app, "expired-long-ago").await);
    // Its access tokens may still live: it can still be revoked, so it stays.
    assert!(session_exists(&app, "ended-just-now").await);
    assert!(refresh_token_exists(&app, &"d".repeat(64)).await);

    assert!(session_exists(&app, &live_sid).await);
    let third = app
        .refresh(&client, "", &second.refresh_token)
        .await
        .expect("the live session still refreshes");
    assert!(app.introspect(&third.access_token).await.active);
    // Spent tokens are kept until they expire: reuse detection needs them.
    assert!(refresh_token_exists(&app, &refresh_token_key(&first.refresh_token)).await);
}

#[tokio::test]
async fn a_revoked_token_stays_inactive_after_its_revocation_rows_are_cleaned_up() {
    // An hour behind, so that what expires on this clock has expired by the database's too.
    let app = TestApp::spawn_with_manual_clock_behind(Duration::from_secs(3_600), |config| {
        config.policy = TokenPolicy {
            access_token_ttl: Duration::from_secs(1),
            trusted_token_ttl: Duration::from_secs(1),
            clock_leeway: Duration::ZERO,
            ..TokenPolicy::default()
        };
        config.introspection_auth = IntrospectionAuth::None;
    })
    .await;
    let client = app.marketplace_client().await;
    let token = app.anonymous_token(&client).await;
    let claims = app.introspect_as(None, &token).await.expect("introspect");
    assert!(claims.active);
    app.revoke(tessera::grpc::pb::RevokeTokenRequest {
        token: token.clone(),
        client_id: client.clone(),
        ..Default::default()
    })
    .await
    .expect("revoke");
    assert_eq!(revocation_events_about(&app, &claims.jti).await, 1);

    // Once the token has expired, and the view's look-back has passed, its event goes.
    app.advance(Duration::from_millis(1_200)).await;
    let later = app.now_ms() + 60_000;
    let deleted = clean_up_at(&app, later).await;
    assert!(deleted.revocation_events >= 1, "{deleted:?}");
    assert_eq!(revocation_events_about(&app, &claims.jti).await, 0);

    assert_inactive(&app.introspect_as(None, &token).await.expect("introspect"));
    let sibling = app.sibling().await;
    assert_inactive(
        &sibling
            .introspect_as(None, &token)
            .await
            .expect("introspect"),
    );
}

#[tokio::test]
async fn revocation_rows_stay_while_the_tokens_they_cover_may_live() {
    let app = TestApp::spawn().await;
    let now = now_ms();
    insert_revocation_event(&app, "old-event", now - DAY_MS).await;
    insert_revocation_event(&app, "recent-event", now - 60_000).await;

    let deleted = clean_up_at(&app, now_ms()).await;

    assert_eq!(deleted.revocation_events, 1, "{deleted:?}");
    assert_eq!(revocation_events_about(&app, "old-event").await, 0);
    assert_eq!(revocation_events_about(&app, "recent-event").await, 1);
}

#[tokio::test]
async fn a_disabled_clients_tokens_stay_inactive_on_a_new_instance_after_a_clean_up() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let token = app.anonymous_token(&client).await;
    assert!(app.disable_client(&client).await);
    // Logged once, for the feed; instances also reread disabled clients from their table.
    assert_eq!(revocation_events_about(&app, &client).await, 1);
    app.assert_inactive_within_a_second(&token).await;

    clean_up_at(&app, now_ms() + DAY_MS).await;

    let sibling = app.sibling().await;
    assert_inactive(&sibling.introspect(&token).await);
    assert_inactive(&app.introspect(&token).await);
}

#[tokio::test]
async fn throttling_still_locks_after_old_counters_are_cleaned_up() {
    let app = TestApp::spawn_with_manual_clock(|_| {}).await;
    let client = app.marketplace_client().await;
    app.user("mia@example.com", "mias-password").await;
    let fail = |times: usize| {
        let (app, client) = (&app, &client);
        async move {
            for _ in 0..times {
                assert_invalid_grant(app.login(client, "mia@example.com", "wrong-password").await);
            }
        }
    };

    // Locked once, then quiet for two days: the counters (the username's, and the caller's
    // address's) go, and start over.
    fail(5).await;
    assert_slow_down(app.login(&client, "mia@example.com", "mias-password").await);
    assert_eq!(clean_up_at(&app, app.now_ms()).await.login_throttles, 0);
    app.advance(Duration::from_millis(2 * DAY_MS as u64)).await;
    assert_eq!(clean_up_at(&app, app.now_ms()).await.login_throttles, 2);
    assert!(throttle_keys(&app).await.is_empty());

    fail(5).await;
    let first_lock = assert_slow_down(app.login(&client, "mia@example.com", "mias-password").await);
    assert!(retry_after(&first_lock) <= Duration::from_secs(15 * 60));

    // Locked again an hour later: the earlier lockout still counts, so the counter stays
    // through a clean-up and the next lock is longer.
    app.advance(Duration::from_millis(HOUR_MS as u64)).await;
    assert_eq!(clean_up_at(&app, app.now_ms()).await.login_throttles, 0);
    assert_eq!(
        throttle_keys(&app).await,
        ["addr:127.0.0.1", "user:mia@example.com"]
    );
    fail(5).await;
    let second_lock =
        assert_slow_down(app.login(&client, "mia@example.com", "mias-password").await);
    assert!(retry_after(&second_lock) > Duration::from_secs(20 * 60));
}

#[tokio::test]
async fn deletes_go_in_batches_until_nothing_is_left() {
    let app = TestApp::spawn().await;
    let now = now_ms();
    for i in 0..20 {
        insert_revocation_event(&app, &format!("jti-{i}"), now - HOUR_MS).await;
    }
    let all = Cutoffs {
        refresh_tokens_expired: i64::MIN,
        sessions_over: i64::MIN,
        revocations_expired: now,
        revocations_made_before: now,
        throttles_idle_since: i64::MIN,
        throttle_windows_started: i64::MIN,
        throttle_locks_ended: i64::MIN,
    };
    let deleted = app.store.delete_expired(&all, 7).await.expect("clean-up");
    assert_eq!(deleted.revocation_events, 20);
    assert_eq!(deleted.total(), 20);
    assert_eq!(
        app.store
            .table_sizes()
            .await
            .expect("sizes")
            .revocation_events,
        0
    );
}

#[tokio::test]
async fn the_background_job_deletes_expired_rows_on_its_own() {
    let app = TestApp::spawn_with(|config| {
        config.cleanup_interval = Duration::from_millis(50);
    })
    .await;
    insert_revocation_event(&app, "old-event", now_ms() - DAY_MS).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while revocation_events_about(&app, "old-event").await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the expired row is still there 10 s later"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
