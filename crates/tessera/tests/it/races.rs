//! Races that a token service must win every time: a refresh racing a revocation of the same
//! session, and logins racing revocations on SQLite across two instances (two writers on one
//! file) without `database is locked` ever reaching a caller.
use std::sync::Arc;

use tokio::task::JoinSet;
use tonic::Code;

use crate::common::{
    TestApp, assert_inactive, client_credentials, reason_of, refresh_grant, revoke_request,
};

/// Rounds of the refresh-versus-revoke race; `TESSERA_RACE_ROUNDS` overrides.
fn rounds() -> usize {
    std::env::var("TESSERA_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whenever_revoke_returns_ok_no_token_of_the_session_is_active_afterwards_even_racing_a_refresh()
 {
    let app = TestApp::spawn().await;
    let (id, secret) = app.integration_client().await;
    let mut refresh_also_ok = 0;
    for round in 0..rounds() {
        let login = app
            .issue(client_credentials(&id, &secret))
            .await
            .expect("login");
        // Revoke by the refresh token on even rounds, by the access token on odd ones.
        let revoked_by = if round % 2 == 0 {
            &login.refresh_token
        } else {
            &login.access_token
        };
        let (mut a, mut b) = (app.client().await, app.client().await);
        let (refreshed, revoked) = tokio::join!(
            a.issue_token(refresh_grant(&id, &secret, &login.refresh_token)),
            b.revoke_token(revoke_request(&id, &secret, revoked_by)),
        );
        let revoked = revoked.expect("revocation of one's own token always succeeds");
        drop(revoked);
        let mut tokens = vec![login.access_token.clone(), login.refresh_token.clone()];
        match refreshed {
            Ok(r) => {
                refresh_also_ok += 1;
                let r = r.into_inner();
                tokens.push(r.access_token);
                tokens.push(r.refresh_token);
            }
            Err(status) => assert_eq!(
                (status.code(), reason_of(&status).as_str()),
                (Code::Unauthenticated, "invalid_grant"),
                "a refresh that lost the race: {status:?}"
            ),
        }
        for token in &tokens {
            assert_inactive(&app.introspect(token).await);
        }
    }
    eprintln!(
        "{} rounds: the refresh also succeeded (before the revocation) in {refresh_also_ok}",
        rounds()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_and_revocations_on_two_instances_of_one_database_never_see_database_is_locked() {
    let app = Arc::new(TestApp::spawn().await);
    let other = Arc::new(app.sibling().await);
    let market = app.marketplace_client().await;
    let (integ, secret) = app.integration_client().await;
    let mut usernames = Vec::new();
    for i in 0..4 {
        let username = format!("racer{i}@example.com");
        app.user(&username, "correct horse battery staple").await;
        usernames.push(username);
    }
    let mut tasks = JoinSet::new();
    for worker in 0..8 {
        let instance = if worker % 2 == 0 {
            app.clone()
        } else {
            other.clone()
        };
        let (market, integ, secret) = (market.clone(), integ.clone(), secret.clone());
        let username = usernames[worker % usernames.len()].clone();
        tasks.spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..6 {
                let session = if worker < 4 {
                    instance
                        .login(&market, &username, "correct horse battery staple")
                        .await
                } else {
                    instance.issue(client_credentials(&integ, &secret)).await
                };
                let session = match session {
                    Ok(session) => session,
                    // The hashing pool turning a login away is the designed answer to load.
                    Err(status) if status.code() == Code::ResourceExhausted => continue,
                    Err(status) => {
                        failures.push(status);
                        continue;
                    }
                };
                let (client, client_secret) = if worker < 4 {
                    (market.as_str(), "")
                } else {
                    (integ.as_str(), secret.as_str())
                };
                if let Err(status) = instance
                    .revoke(revoke_request(
                        client,
                        client_secret,
                        &session.refresh_token,
                    ))
                    .await
                {
                    failures.push(status);
                }
            }
            failures
        });
    }
    let mut failures = Vec::new();
    while let Some(result) = tasks.join_next().await {
        failures.extend(result.expect("task"));
    }
    assert!(failures.is_empty(), "callers saw errors: {failures:?}");
}
