//! Login throttling per username and per forwarded end-user address, in the database.
use std::{sync::Arc, time::Duration};

use tonic::{Code, Request};
use tonic_types::StatusExt;

use crate::common::{TestApp, assert_invalid_grant, assert_slow_down, password_grant};

/// An app on a manual clock (time passes when a test says so), a client and a user.
async fn setup() -> (TestApp, String) {
    let app = TestApp::spawn_with_manual_clock(|_| {}).await;
    let client = app.marketplace_client().await;
    app.user("mia@example.com", "mias-password").await;
    (app, client)
}

fn retry_after(status: &tonic::Status) -> Duration {
    status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo with a delay")
}

async fn fail(app: &TestApp, client: &str, username: &str, times: usize) {
    for _ in 0..times {
        assert_invalid_grant(app.login(client, username, "wrong-password").await);
    }
}

#[tokio::test]
async fn five_failures_lock_a_username_and_the_right_password_is_refused_too() {
    let (app, client) = setup().await;
    fail(&app, &client, "mia@example.com", 5).await;
    let status = assert_slow_down(app.login(&client, "mia@example.com", "mias-password").await);
    assert!(retry_after(&status) >= Duration::from_secs(1));
    let again = assert_slow_down(app.login(&client, "MIA@example.com", "mias-password").await);
    assert!(retry_after(&again) >= Duration::from_secs(1));
}

#[tokio::test]
async fn an_unknown_username_locks_exactly_like_an_existing_one() {
    let (app, client) = setup().await;
    fail(&app, &client, "nobody@example.com", 5).await;
    let unknown = assert_slow_down(app.login(&client, "nobody@example.com", "x-password").await);
    fail(&app, &client, "mia@example.com", 5).await;
    let known = assert_slow_down(app.login(&client, "mia@example.com", "x-password").await);
    assert_eq!(unknown.message(), known.message());
    assert_eq!(retry_after(&unknown), retry_after(&known));
}

#[tokio::test]
async fn a_successful_login_resets_the_counter() {
    let (app, client) = setup().await;
    fail(&app, &client, "mia@example.com", 4).await;
    app.login(&client, "mia@example.com", "mias-password")
        .await
        .expect("login");
    fail(&app, &client, "mia@example.com", 4).await;
    app.login(&client, "mia@example.com", "mias-password")
        .await
        .expect("still not locked");
}

#[tokio::test]
async fn a_lock_lasts_the_window_and_the_next_lock_is_longer() {
    let (app, client) = setup().await;
    fail(&app, &client, "mia@example.com", 5).await;
    let first = assert_slow_down(app.login(&client, "mia@example.com", "x").await);
    assert!(
        retry_after(&first) > Duration::from_secs(14 * 60),
        "locked to the end of the window: {:?}",
        retry_after(&first)
    );
    // Still locked a few minutes on, for the right password too.
    app.advance(Duration::from_secs(5 * 60)).await;
    assert_slow_down(app.login(&client, "mia@example.com", "mias-password").await);
    // Once the lock is over the window is too: five fresh attempts, then a longer lock.
    app.advance(retry_after(&first) + Duration::from_secs(1))
        .await;
    fail(&app, &client, "mia@example.com", 5).await;
    let second = assert_slow_down(app.login(&client, "mia@example.com", "x").await);
    assert!(
        retry_after(&second) > retry_after(&first),
        "{:?} then {:?}",
        retry_after(&first),
        retry_after(&second)
    );
}

#[tokio::test]
async fn the_counter_starts_over_after_the_fifteen_minute_window() {
    let (app, client) = setup().await;
    fail(&app, &client, "mia@example.com", 4).await;
    app.advance(Duration::from_millis(15 * 60 * 1000 + 1)).await;
    fail(&app, &client, "mia@example.com", 4).await;
    app.login(&client, "mia@example.com", "mias-password")
        .await
        .expect("not locked: the old failures expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_attempts_cannot_get_more_than_five_guesses() {
    let (app, client) = setup().await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let (app, client) = (app.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            app.login(&client, "mia@example.com", "wrong-password")
                .await
        }));
    }
    let mut guesses = 0;
    for task in tasks {
        let status = task.await.expect("task").expect_err("all wrong");
        match status.code() {
            Code::Unauthenticated => guesses += 1,
            Code::ResourceExhausted => {}
            other => panic!("unexpected {other:?}: {status:?}"),
        }
    }
    assert!(guesses <= 5, "{guesses} guesses got through");
}

#[tokio::test]
async fn a_forwarded_end_user_address_is_throttled_across_usernames() {
    // The caller (this test, on 127.0.0.1) and the proxy it names (10.0.0.1) are trusted.
    let app = TestApp::spawn_with_manual_clock(|config| {
        config.trusted_proxies =
            tessera::config::trusted_proxies("127.0.0.1, 10.0.0.0/8").expect("proxies");
    })
    .await;
    let client = app.marketplace_client().await;
    let login_from = |username: String, address: &'static str| {
        let mut request = Request::new(password_grant(&client, &username, "wrong-password"));
        request
            .metadata_mut()
            .insert("x-forwarded-for", address.parse().expect("header"));
        let app = &app;
        async move { app.client().await.issue_token(request).await }
    };
    for i in 0..100 {
        let status = login_from(format!("user{i}@example.com"), "203.0.113.7, 10.0.0.1")
            .await
            .expect_err("wrong");
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "attempt {i}: {status:?}"
        );
    }
    let locked = login_from("fresh@example.com".into(), "203.0.113.7").await;
    assert_slow_down(locked);
    let other_address = login_from("fresh@example.com".into(), "198.51.100.1").await;
    assert_invalid_grant(other_address);
}

#[tokio::test]
async fn a_caller_that_is_no_trusted_proxy_cannot_lock_out_the_address_it_names() {
    use tessera_testkit::prelude::*;
    let app = TestApp::spawn_with_manual_clock(|config| {
        config.trusted_proxies = tessera::config::trusted_proxies("10.0.0.0/8").expect("proxies");
    })
    .await;
    let client = app.marketplace_client().await;
    for i in 0..3 {
        let mut request = Request::new(password_grant(
            &client,
            &format!("someone{i}@example.com"),
            "wrong-password",
        ));
        request
            .metadata_mut()
            .insert("x-forwarded-for", "203.0.113.7".parse().expect("header"));
        assert_invalid_grant(app.client().await.issue_token(request).await);
    }
    let victim = app
        .store
        .read_counter("addr:203.0.113.7")
        .await
        .expect("read");
    assert_eq!(victim, None, "the named address was not charged");
    let caller = app
        .store
        .read_counter("addr:127.0.0.1")
        .await
        .expect("read");
    assert_eq!(caller.map(|c| c.failures), Some(3), "the caller itself was");
}
