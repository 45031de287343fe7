//! IssueToken: the four grants of SPEC §2.
use std::time::Duration;

use super::*;
use crate::domain::{hashing::HashCost, scope};

#[tokio::test]
async fn an_anonymous_client_gets_a_public_read_token_without_a_session() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let issued = world
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("anonymous token");
    assert_eq!(issued.scope, scope::PUBLIC_READ);
    assert!(issued.refresh_token.is_none());
    assert_eq!(issued.expires_in_secs, 600);
    let active = world
        .introspect(&issued.access_token)
        .await
        .expect("active");
    assert_eq!(active.sub, client);
    assert_eq!(active.sid, None);
}

#[tokio::test]
async fn an_issued_token_shows_no_token_in_its_debug_form() {
    let world = World::new().await;
    let (_, _, issued) = world.integration_login().await;
    let text = format!("{issued:?}");
    assert!(!text.contains(&issued.access_token), "{text}");
    let refresh = issued.refresh_token.as_deref().expect("refresh token");
    assert!(!text.contains(refresh), "{text}");
}

#[tokio::test]
async fn an_integration_client_gets_an_integ_token_and_a_refresh_token() {
    let world = World::new().await;
    let (client, secret) = world.integration_client().await;
    let issued = world
        .issue(&client, Some(&secret), Grant::ClientCredentials)
        .await
        .expect("integ token");
    assert_eq!(issued.scope, scope::INTEG);
    let refresh = issued.refresh_token.expect("refresh token");
    let active = world
        .introspect(&refresh)
        .await
        .expect("refresh token active");
    assert_eq!(active.client_id, client);
}

#[tokio::test]
async fn an_integration_client_with_a_wrong_secret_is_refused() {
    let world = World::new().await;
    let (client, _) = world.integration_client().await;
    assert_reason(
        world
            .issue(&client, Some("not-the-secret"), Grant::ClientCredentials)
            .await,
        "invalid_client",
    );
    assert_reason(
        world.issue(&client, None, Grant::ClientCredentials).await,
        "invalid_client",
    );
}

#[tokio::test]
async fn a_scope_wider_than_the_grant_allows_is_refused() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let mut wide = request(&client, None, Grant::ClientCredentials);
    wide.scope = scope::USER.to_owned();
    assert_reason(world.tokens.issue(wide).await, "invalid_scope");
}

#[tokio::test]
async fn a_user_logs_in_with_the_right_password() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let user_id = world.user("alice@example.com").await;
    let issued = world
        .login(&client, "Alice@Example.com", PASSWORD)
        .await
        .expect("login");
    assert_eq!(issued.scope, scope::USER);
    let active = world
        .introspect(&issued.access_token)
        .await
        .expect("active");
    assert_eq!(active.sub, user_id);
    assert!(active.sid.is_some());
}

#[tokio::test]
async fn wrong_password_unknown_user_and_disabled_user_get_the_same_answer() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    world.user("bob@example.com").await;
    world.user("carol@example.com").await;
    users::disable_user(&*world.repo, "carol@example.com", world.kept_for())
        .await
        .expect("disable");
    for (username, password) in [
        ("bob@example.com", "wrong password!"),
        ("nobody@example.com", PASSWORD),
        ("carol@example.com", PASSWORD),
    ] {
        assert_reason(
            world.login(&client, username, password).await,
            "invalid_grant",
        );
    }
}

#[tokio::test]
async fn an_integration_client_cannot_use_the_password_grant() {
    let world = World::new().await;
    let (client, secret) = world.integration_client().await;
    world.user("dan@example.com").await;
    assert_reason(
        world
            .issue(
                &client,
                Some(&secret),
                password_grant("dan@example.com", PASSWORD),
            )
            .await,
        "unauthorized_client",
    );
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_username_until_the_window_ends() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    world.user("erin@example.com").await;
    for _ in 0..5 {
        assert_reason(
            world
                .login(&client, "erin@example.com", "wrong password!")
                .await,
            "invalid_grant",
        );
    }
    let locked = world.login(&client, "erin@example.com", PASSWORD).await;
    assert!(
        matches!(locked, Err(DomainError::SlowDown { .. })),
        "{locked:?}"
    );
    world.advance(Duration::from_secs(15 * 60 + 1)).await;
    world
        .login(&client, "erin@example.com", PASSWORD)
        .await
        .expect("unlocked once the window is over");
}

#[tokio::test]
async fn a_password_change_between_check_and_session_start_starts_no_session() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let user_id = world.user("fay@example.com").await;
    let before = world
        .login(&client, "fay@example.com", PASSWORD)
        .await
        .expect("login");
    users::set_password(
        &*world.repo,
        &world.hasher,
        "fay@example.com",
        "a new password!!".to_owned().into(),
        world.kept_for(),
    )
    .await
    .expect("change");
    world.tokens.revocations().refresh().await.expect("refresh");
    assert_eq!(world.introspect(&before.access_token).await, None);
    assert_reason(
        world.login(&client, "fay@example.com", PASSWORD).await,
        "invalid_grant",
    );
    let after = world
        .login(&client, "fay@example.com", "a new password!!")
        .await
        .expect("new password works");
    assert_eq!(
        world
            .introspect(&after.access_token)
            .await
            .expect("active")
            .sub,
        user_id
    );
}

#[tokio::test]
async fn a_change_that_lands_between_the_password_check_and_the_session_start_starts_no_session() {
    use crate::domain::memory_repository::UserChange;
    for change in [UserChange::PasswordChanged, UserChange::Disabled] {
        let world = World::new().await;
        let client = world.marketplace_client().await;
        let user_id = world.user("gil@example.com").await;
        world
            .repo
            .change_before_next_session_start(&user_id, change);
        assert_reason(
            world.login(&client, "gil@example.com", PASSWORD).await,
            "invalid_grant",
        );
    }
}

#[tokio::test]
async fn a_weak_stored_hash_is_upgraded_at_the_next_login() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let weaker = HashCost {
        memory_kib: 8 * 1024,
        iterations: 1,
        parallelism: 1,
    };
    let weak = HashingPool::new(weaker, 1, Duration::from_secs(30)).expect("pool");
    users::create_user(
        &*world.repo,
        &weak,
        "gus@example.com",
        PASSWORD.to_owned().into(),
    )
    .await
    .expect("user");
    async fn stored(repo: &MemoryRepository) -> String {
        use crate::domain::repository::UserRepository;
        repo.find_user_by_username("gus@example.com")
            .await
            .expect("find")
            .expect("user")
            .password_hash
    }
    let before = stored(&world.repo).await;
    assert!(world.hasher.needs_rehash(&before));
    let gate = world.repo.hold_password_upgrades();
    world
        .login(&client, "gus@example.com", PASSWORD)
        .await
        .expect("the login answers while the re-hash is held: it is off the caller's path");
    assert_eq!(stored(&world.repo).await, before, "not yet");
    gate.notify_one();
    let after = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let now = stored(&world.repo).await;
            if now != before {
                return now;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("re-hashed once let through");
    assert!(!world.hasher.needs_rehash(&after));
}

#[tokio::test]
async fn token_exchange_trades_a_user_token_for_a_trusted_one_of_the_same_session() {
    let world = World::new().await;
    let (client, secret) = world.marketplace_client_with_secret().await;
    world.user("hal@example.com").await;
    let login = world
        .login(&client, "hal@example.com", PASSWORD)
        .await
        .expect("login");
    let user_token = world.introspect(&login.access_token).await.expect("active");
    let trusted = world
        .issue(&client, Some(&secret), exchange_grant(&login.access_token))
        .await
        .expect("exchange");
    assert_eq!(trusted.scope, scope::TRUSTED_USER);
    assert!(trusted.refresh_token.is_none());
    assert_eq!(trusted.expires_in_secs, 300);
    let active = world
        .introspect(&trusted.access_token)
        .await
        .expect("active");
    assert_eq!(active.sid, user_token.sid);
    assert_eq!(active.sub, user_token.sub);
}

#[tokio::test]
async fn token_exchange_needs_the_secret_and_a_user_token_of_the_same_client() {
    let world = World::new().await;
    let (client, secret) = world.marketplace_client_with_secret().await;
    let other = world.marketplace_client().await;
    world.user("ida@example.com").await;
    let mine = world
        .login(&client, "ida@example.com", PASSWORD)
        .await
        .expect("login");
    let theirs = world
        .login(&other, "ida@example.com", PASSWORD)
        .await
        .expect("login");
    let anonymous = world
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("anonymous");
    assert_reason(
        world
            .issue(&client, None, exchange_grant(&mine.access_token))
            .await,
        "invalid_client",
    );
    for subject in [
        &theirs.access_token,
        &anonymous.access_token,
        &"garbage".to_owned(),
    ] {
        assert_reason(
            world
                .issue(&client, Some(&secret), exchange_grant(subject))
                .await,
            "invalid_grant",
        );
    }
}

#[tokio::test]
async fn a_trusted_token_never_outlives_the_token_it_came_from() {
    let world = World::new().await;
    let (client, secret) = world.marketplace_client_with_secret().await;
    world.user("jay@example.com").await;
    let login = world
        .login(&client, "jay@example.com", PASSWORD)
        .await
        .expect("login");
    world.advance(Duration::from_secs(500)).await;
    let trusted = world
        .issue(&client, Some(&secret), exchange_grant(&login.access_token))
        .await
        .expect("exchange");
    let subject = world.introspect(&login.access_token).await.expect("active");
    let active = world
        .introspect(&trusted.access_token)
        .await
        .expect("active");
    assert_eq!(active.expires_at, subject.expires_at);
}

#[tokio::test]
async fn a_refresh_spends_the_token_and_issues_its_successor() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    world.user("kim@example.com").await;
    let login = world
        .login(&client, "kim@example.com", PASSWORD)
        .await
        .expect("login");
    let first = login.refresh_token.expect("refresh token");
    let next = world
        .issue(&client, None, refresh_grant(&first))
        .await
        .expect("refresh");
    assert_eq!(next.scope, scope::USER);
    let second = next.refresh_token.expect("successor");
    assert_ne!(first, second);
    assert_eq!(world.introspect(&first).await, None, "spent");
    assert!(world.introspect(&second).await.is_some());
}

/// A user's session refreshed once: the client, the spent refresh token and the refresh's
/// answer.
async fn refreshed_once(world: &World, username: &str) -> (String, String, IssuedToken) {
    let (client, login) = world.user_login(username).await;
    let first = login.refresh_token.expect("refresh token");
    let next = world
        .issue(&client, None, refresh_grant(&first))
        .await
        .expect("refresh");
    (client, first, next)
}

#[tokio::test]
async fn a_spent_refresh_token_presented_again_at_once_is_concurrent_and_just_fails() {
    let world = World::new().await;
    let (client, first, next) = refreshed_once(&world, "lee@example.com").await;
    world.advance(Duration::from_millis(500)).await;
    assert_reason(
        world.issue(&client, None, refresh_grant(&first)).await,
        "invalid_grant",
    );
    let second = next.refresh_token.expect("successor");
    assert!(world.introspect(&next.access_token).await.is_some());
    assert!(
        world.introspect(&second).await.is_some(),
        "session still alive"
    );
}

#[tokio::test]
async fn a_retried_refresh_within_the_grace_gets_a_fresh_pair_and_the_first_pair_stops_working() {
    let world = World::new().await;
    let (client, first, lost) = refreshed_once(&world, "ray@example.com").await;
    // The first answer never reached the client, which retries after its deadline.
    world.advance(Duration::from_secs(2)).await;
    let retried = world
        .issue(&client, None, refresh_grant(&first))
        .await
        .expect("a fresh pair");
    let lost_refresh = lost.refresh_token.expect("successor");
    let fresh_refresh = retried.refresh_token.clone().expect("successor");
    assert_ne!(fresh_refresh, lost_refresh);
    assert_eq!(world.introspect(&lost.access_token).await, None);
    assert_eq!(world.introspect(&lost_refresh).await, None);
    let active = world
        .introspect(&retried.access_token)
        .await
        .expect("the fresh access token works");
    assert_eq!(active.scope, scope::USER);
    // Retried again (a second lost answer): the second pair gives way in turn.
    world.advance(Duration::from_secs(2)).await;
    let again = world
        .issue(&client, None, refresh_grant(&first))
        .await
        .expect("another fresh pair");
    assert_eq!(world.introspect(&retried.access_token).await, None);
    let last = again.refresh_token.expect("successor");
    world
        .issue(&client, None, refresh_grant(&last))
        .await
        .expect("the last pair refreshes");
    // The replaced refresh token never reached the client: presented at all, even within the
    // grace, it was stolen, and the session ends.
    assert_reason(
        world
            .issue(&client, None, refresh_grant(&lost_refresh))
            .await,
        "invalid_grant",
    );
    assert_eq!(world.introspect(&again.access_token).await, None);
}

#[tokio::test]
async fn a_retried_refresh_gets_nothing_once_the_first_answer_was_used() {
    let world = World::new().await;
    let (client, first, next) = refreshed_once(&world, "sam@example.com").await;
    let second = next.refresh_token.expect("successor");
    let third = world
        .issue(&client, None, refresh_grant(&second))
        .await
        .expect("the answer arrived and was used");
    world.advance(Duration::from_secs(2)).await;
    assert_reason(
        world.issue(&client, None, refresh_grant(&first)).await,
        "invalid_grant",
    );
    assert!(world.introspect(&third.access_token).await.is_some());
}

#[tokio::test]
async fn a_refresh_token_spent_by_one_client_is_not_reissued_to_another() {
    let world = World::new().await;
    let (_, first, next) = refreshed_once(&world, "ola@example.com").await;
    let other = world.marketplace_client().await;
    world.advance(Duration::from_secs(2)).await;
    assert_reason(
        world.issue(&other, None, refresh_grant(&first)).await,
        "invalid_grant",
    );
    assert!(world.introspect(&next.access_token).await.is_some());
}

#[tokio::test]
async fn a_spent_refresh_token_presented_after_the_grace_window_ends_the_session() {
    let world = World::new().await;
    let (client, first, next) = refreshed_once(&world, "max@example.com").await;
    world.advance(Duration::from_secs(11)).await;
    assert_reason(
        world.issue(&client, None, refresh_grant(&first)).await,
        "invalid_grant",
    );
    assert_eq!(world.introspect(&next.access_token).await, None);
    let second = next.refresh_token.expect("successor");
    assert_eq!(world.introspect(&second).await, None);
    assert_reason(
        world.issue(&client, None, refresh_grant(&second)).await,
        "invalid_grant",
    );
}

#[tokio::test]
async fn a_refresh_token_is_refused_to_another_client_and_after_it_expires() {
    let world = World::with_policy(TokenPolicy {
        refresh_token_ttl: Duration::from_secs(60),
        ..TokenPolicy::default()
    })
    .await;
    let client = world.marketplace_client().await;
    let other = world.marketplace_client().await;
    world.user("ned@example.com").await;
    let login = world
        .login(&client, "ned@example.com", PASSWORD)
        .await
        .expect("login");
    let token = login.refresh_token.expect("refresh token");
    assert_reason(
        world.issue(&other, None, refresh_grant(&token)).await,
        "invalid_grant",
    );
    world.advance(Duration::from_secs(61)).await;
    assert_reason(
        world.issue(&client, None, refresh_grant(&token)).await,
        "invalid_grant",
    );
}

#[tokio::test]
async fn every_call_answers_unavailable_while_the_database_is_unusable() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    world.tokens.set_database_usable(false);
    assert_reason(
        world.issue(&client, None, Grant::ClientCredentials).await,
        "temporarily_unavailable",
    );
    assert_reason(
        world.tokens.introspect("anything").await,
        "temporarily_unavailable",
    );
    world.tokens.set_database_usable(true);
    world
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("back");
}

#[tokio::test]
async fn a_locked_username_is_refused_from_memory_without_a_query() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    world.user("hal@example.com").await;
    for _ in 0..5 {
        assert_reason(
            world
                .login(&client, "hal@example.com", "wrong password!")
                .await,
            "invalid_grant",
        );
    }
    assert_reason(
        world.login(&client, "hal@example.com", PASSWORD).await,
        "slow_down",
    );
    let queries = world.repo.throttle_queries();
    for _ in 0..20 {
        assert_reason(
            world.login(&client, "hal@example.com", PASSWORD).await,
            "slow_down",
        );
    }
    assert_eq!(
        world.repo.throttle_queries(),
        queries,
        "no query for a locked key"
    );
    // Nor a place in the hashing queue: with every hashing place taken, a locked username
    // is still told of its lock, at once, not of a full queue.
    let _all = world.hasher.occupy_all().await.expect("occupy");
    let refused = world
        .login(&client, "hal@example.com", PASSWORD)
        .await
        .expect_err("locked");
    match refused {
        DomainError::SlowDown { retry_after } => {
            assert!(
                retry_after > Duration::from_secs(600),
                "until the lock ends: {retry_after:?}"
            );
        }
        other => panic!("expected the lock, got {other:?}"),
    }
}

#[tokio::test]
async fn an_attempt_refused_for_its_address_counts_not_against_the_username() {
    use crate::domain::{clock::Clock, repository::ThrottleRepository};
    let world = World::new().await;
    let client = world.marketplace_client().await;
    world.user("ivy@example.com").await;
    let now = world.clock.now_ms();
    world
        .repo
        .count_attempt("addr:203.0.113.9", now, 900_000)
        .await
        .expect("count");
    world
        .repo
        .lock_key("addr:203.0.113.9", now, now + 600_000)
        .await
        .expect("lock");
    let mut request = request(&client, None, password_grant("ivy@example.com", PASSWORD));
    request.end_user_address = Some("203.0.113.9".into());
    assert_reason(world.tokens.issue(request).await, "slow_down");
    assert_eq!(
        world
            .repo
            .read_counter("user:ivy@example.com")
            .await
            .expect("read"),
        None,
        "the username was not charged"
    );
}

#[tokio::test]
async fn wrong_secrets_for_a_legacy_client_run_one_argon2_at_a_time_and_never_queue() {
    use crate::domain::{clock::Clock, repository::ClientRepository};
    let world = Arc::new(World::new().await);
    let (client, secret) = world.integration_client().await;
    let legacy = world
        .hasher
        .hash(secret.clone().into())
        .await
        .expect("argon2id");
    world
        .repo
        .set_client_secret(&client, legacy, world.clock.now_ms())
        .await
        .expect("store the legacy hash");
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (world, client) = (world.clone(), client.clone());
        calls.spawn(async move {
            world
                .issue(&client, Some("a-wrong-secret"), Grant::ClientCredentials)
                .await
        });
    }
    let mut reasons = Vec::new();
    while let Some(call) = calls.join_next().await {
        reasons.push(call.expect("call").expect_err("wrong").reason());
    }
    assert!(
        reasons
            .iter()
            .all(|r| *r == "invalid_client" || *r == "slow_down"),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"slow_down"),
        "turned away, not queued: {reasons:?}"
    );
}
