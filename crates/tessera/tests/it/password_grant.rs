//! The password grant: users, sessions, argon2id, and no way to tell an unknown user from a
//! wrong password.
use std::time::Duration;
use tessera_testkit::prelude::*;

use tessera::domain::{
    hashing::{HashCost, HashingPool},
    users,
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::{
    TestApp, assert_inactive, assert_invalid_grant, assert_invalid_request, assert_invalid_scope,
    assert_success, assert_unauthorized_client,
};

#[tokio::test]
async fn a_user_logs_in_and_gets_a_user_token_with_a_refresh_token_and_a_session() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let user_id = app.user("alice@example.com", "correct horse battery").await;
    let r = app
        .login(&client, "alice@example.com", "correct horse battery")
        .await
        .expect("login");
    assert_eq!(r.scope, "user");
    assert_eq!(r.refresh_token.len(), 64);
    let info = app.introspect(&r.access_token).await;
    assert!(info.active);
    assert_eq!(info.sub, user_id);
    assert_eq!(info.client_id, client);
    assert!(!info.sid.is_empty());
    let refresh = app.introspect(&r.refresh_token).await;
    assert!(refresh.active);
    assert_eq!(
        (
            refresh.sub.as_str(),
            refresh.sid.as_str(),
            refresh.scope.as_str()
        ),
        (user_id.as_str(), info.sid.as_str(), "user")
    );
}

#[tokio::test]
async fn usernames_are_matched_case_insensitively_after_trimming_and_are_unique() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    app.user("  Bob@Example.com ", "password-of-bob").await;
    app.login(&client, "bob@example.COM", "password-of-bob")
        .await
        .expect("login");
    app.login(&client, "  BOB@example.com  ", "password-of-bob")
        .await
        .expect("login");
    let hasher = HashingPool::new(HashCost::OWASP, 1, Duration::from_secs(30)).expect("hasher");
    let taken = users::create_user(
        &app.store,
        &hasher,
        "BOB@EXAMPLE.COM",
        "another-password".to_owned().into(),
    )
    .await;
    assert!(
        taken.is_err(),
        "the same username in other letters is taken"
    );
}

#[tokio::test]
async fn unknown_user_wrong_password_and_disabled_user_give_the_same_answer_and_the_same_work() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    app.user("carol@example.com", "carols-password").await;
    app.user("dave@example.com", "daves-password").await;
    app.disable_user("dave@example.com").await;
    // The first unknown user makes the dummy hash; from then on each attempt costs exactly one
    // argon2 verification, whoever it is for.
    let _ = app.login(&client, "warm-up@example.com", "x").await;
    let mut answers = Vec::new();
    for (username, password) in [
        ("nobody@example.com", "whatever-password"),
        ("carol@example.com", "wrong-password"),
        ("dave@example.com", "daves-password"),
    ] {
        let before = app.tokens.hasher().completed();
        let status = assert_invalid_grant(app.login(&client, username, password).await);
        assert_eq!(
            app.tokens.hasher().completed(),
            before + 1,
            "one argon2 verification for {username}"
        );
        answers.push((status.code(), status.message().to_owned()));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert!(
        !answers[0].1.contains("carol") && !answers[0].1.to_lowercase().contains("user"),
        "{answers:?}"
    );
}

#[tokio::test]
async fn an_integration_client_may_not_use_the_password_grant() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.integration_client().await;
    app.user("erin@example.com", "erins-password").await;
    let mut request = crate::common::password_grant(&id, "erin@example.com", "erins-password");
    request.client_secret = secret;
    assert_unauthorized_client(app.issue(request).await);
}

#[tokio::test]
async fn the_password_grant_cannot_be_asked_for_a_wider_scope() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    app.user("faye@example.com", "fayes-password").await;
    let mut request = crate::common::password_grant(&client, "faye@example.com", "fayes-password");
    request.scope = "user trusted:user".into();
    assert_invalid_scope(app.issue(request).await);
}

#[tokio::test]
async fn a_password_of_128_characters_counts_in_full() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let password = format!("{}é", "p".repeat(127));
    app.user("gus@example.com", &password).await;
    assert_invalid_grant(
        app.login(&client, "gus@example.com", &password[..127])
            .await,
    );
    app.login(&client, "gus@example.com", &password)
        .await
        .expect("the whole 128 characters");
    let long = "p".repeat(129);
    let before = app.tokens.hasher().completed();
    assert_invalid_request(app.login(&client, "gus@example.com", &long).await);
    assert_eq!(
        app.tokens.hasher().completed(),
        before,
        "refused before any hashing"
    );
}

#[tokio::test]
async fn a_weaker_stored_hash_is_rehashed_on_the_next_successful_login() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let weak_cost = HashCost {
        memory_kib: 8 * 1024,
        iterations: 1,
        parallelism: 1,
    };
    let weak = HashingPool::new(weak_cost, 1, Duration::from_secs(30)).expect("weak pool");
    users::create_user(
        &app.store,
        &weak,
        "hana@example.com",
        "hanas-password".to_owned().into(),
    )
    .await
    .expect("user");
    let stored = |app: &TestApp| {
        let store = app.store.clone();
        async move {
            store
                .find_user_by_username("hana@example.com")
                .await
                .expect("query")
                .expect("user")
                .password_hash
        }
    };
    assert!(stored(&app).await.contains("m=8192,t=1,p=1"));
    let _ = app.login(&client, "warm-up@example.com", "x").await; // makes the dummy hash
    let before = app.tokens.hasher().completed();
    let _ = app
        .login(&client, "hana@example.com", "wrong-password")
        .await;
    assert_eq!(
        app.tokens.hasher().completed(),
        before + 2,
        "a weak hash is verified and the full-cost dummy too, so the account does not show by timing"
    );
    assert!(
        stored(&app).await.contains("m=8192,t=1,p=1"),
        "a failed login changes nothing"
    );
    app.login(&client, "hana@example.com", "hanas-password")
        .await
        .expect("login");
    // Re-hashed off the caller's path: wait for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !stored(&app).await.contains("m=19456,t=2,p=1") {
        assert!(tokio::time::Instant::now() < deadline, "never re-hashed");
        tokio::task::yield_now().await;
    }
    app.login(&client, "hana@example.com", "hanas-password")
        .await
        .expect("the new hash verifies");
}

#[tokio::test]
async fn disabling_a_user_or_changing_the_password_ends_the_users_sessions() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let first = app
        .user_login(&client, "ivy@example.com", "ivys-password")
        .await;
    app.set_password("ivy@example.com", "ivys-new-password")
        .await;
    app.assert_inactive_within_a_second(&first.access_token)
        .await;
    assert_inactive(&app.introspect(&first.refresh_token).await);
    assert_invalid_grant(app.login(&client, "ivy@example.com", "ivys-password").await);
    let second = app
        .login(&client, "ivy@example.com", "ivys-new-password")
        .await
        .expect("new password");
    assert!(
        app.introspect(&second.access_token).await.active,
        "a token issued right after the change is active"
    );
    app.disable_user("ivy@example.com").await;
    app.assert_inactive_within_a_second(&second.access_token)
        .await;
    assert_invalid_grant(
        app.login(&client, "ivy@example.com", "ivys-new-password")
            .await,
    );
}

#[tokio::test]
async fn the_cli_reads_the_password_from_stdin_never_from_arguments() {
    use std::io::Write;
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let run = |args: &[&str], stdin: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .env("TESSERA_DATABASE_URL", &app.db.url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write");
        child.wait_with_output().expect("output")
    };
    let out = run(
        &["user", "create", "--username", "Jo@Example.com", "--json"],
        "jos-password\n",
    );
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let user_id = v["user_id"].as_str().expect("user_id").to_owned();
    let r = app
        .login(&client, "jo@example.com", "jos-password")
        .await
        .expect("login");
    assert_eq!(app.introspect(&r.access_token).await.sub, user_id);

    let out = run(
        &["user", "set-password", "jo@example.com"],
        "jos-new-password\n",
    );
    assert_success(&out);
    app.login(&client, "jo@example.com", "jos-new-password")
        .await
        .expect("new password");
    let out = run(&["user", "disable", "JO@example.com"], "");
    assert_success(&out);
    assert_invalid_grant(
        app.login(&client, "jo@example.com", "jos-new-password")
            .await,
    );

    let short = run(
        &["user", "create", "--username", "kim@example.com"],
        "short\n",
    );
    assert!(!short.status.success());
    let out = run(&["user", "disable", "nobody@example.com"], "");
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_gets_slow_down_and_does_not_starve_introspection() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let client = app.marketplace_client().await;
    let anonymous = app.anonymous_token(&client).await;
    app.introspect(&anonymous).await; // makes the caller token before the flood
    let mut logins = Vec::new();
    for i in 0..200 {
        let (app, client) = (app.clone(), client.clone());
        logins.push(tokio::spawn(async move {
            app.login(&client, &format!("flood{i}@example.com"), "guess-password")
                .await
        }));
    }
    for _ in 0..20 {
        assert!(
            app.introspect(&anonymous).await.active,
            "introspection answers during the flood"
        );
    }
    let mut slowed = 0;
    for login in logins {
        let status = login.await.expect("task").expect_err("no such users");
        match status.get_details_error_info().map(|i| i.reason).as_deref() {
            Some("invalid_grant") => {}
            Some("slow_down") => {
                assert_eq!(status.code(), Code::ResourceExhausted);
                assert!(
                    status.get_details_retry_info().is_some(),
                    "slow_down carries RetryInfo"
                );
                slowed += 1;
            }
            other => panic!("unexpected {other:?}: {status:?}"),
        }
    }
    // 200 hashes of ~15 ms on a pool sized to the machine cannot all start within the short
    // wait for a permit: the excess is told to slow down instead of queueing.
    assert!(slowed > 0, "the hashing capacity is bounded");
}

#[tokio::test]
async fn a_login_that_overlaps_a_password_change_starts_no_session() {
    use tessera::domain::repository::{NewSession, RefreshTokenRecord, SessionRecord};
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    app.user("otto@example.com", "ottos-password").await;
    // What the login read before checking the password...
    let read = app
        .store
        .find_user_by_username("otto@example.com")
        .await
        .expect("query")
        .expect("user");
    // ...then a password change commits...
    app.set_password("otto@example.com", "ottos-new-password")
        .await;
    // ...and the login's session, guarded by what it read, does not start.
    let now = tessera::domain::clock::now_ms();
    let sid = uuid::Uuid::new_v4().to_string();
    let started = app
        .store
        .start_session(NewSession {
            session: SessionRecord {
                sid: sid.clone(),
                client_id: client.clone(),
                user_id: Some(read.user_id.clone()),
                scope: "user".into(),
                created_at: now,
                expires_at: now + 60_000,
                ended_at: None,
                end_reason: None,
            },
            refresh_token: RefreshTokenRecord {
                token_hash: tessera::domain::random::sha256_hex("never-issued"),
                sid: sid.clone(),
                client_id: client.clone(),
                created_at: now,
                expires_at: now + 60_000,
                spent_at: None,
                successor_hash: None,
                issued_with: None,
                replaced_at: None,
            },
            user_version: Some(read.version),
        })
        .await
        .expect("query");
    assert!(!started, "a session guarded by a stale read must not start");
    assert!(app.store.find_session(&sid).await.expect("query").is_none());
}

#[tokio::test]
async fn usernames_with_control_characters_are_invalid_request_on_every_database() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    for username in ["a\u{0}b@example.com", "\u{7}@x", "bob\n@example.com"] {
        assert_invalid_request(app.login(&client, username, "some-password").await);
    }
}

#[tokio::test]
async fn logins_turned_away_for_lack_of_hashing_capacity_do_not_lock_the_user() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    app.user("busy@example.com", "busy-users-password").await;
    let _ = app.login(&client, "warm-up@example.com", "x").await; // makes the dummy hash
    let full = app.tokens.hasher().occupy_all().await.expect("occupy");
    // While the pool is full, the real user keeps trying with the right password.
    for _ in 0..12 {
        let status = app
            .login(&client, "busy@example.com", "busy-users-password")
            .await
            .expect_err("no capacity");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        let retry = status
            .get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .expect("RetryInfo");
        assert!(
            retry <= Duration::from_secs(1),
            "turned away for capacity, never locked: {retry:?}"
        );
    }
    drop(full);
    app.login(&client, "busy@example.com", "busy-users-password")
        .await
        .expect("not locked");
}
