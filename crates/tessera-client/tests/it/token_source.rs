//! The TokenSource of an integration client, and a job calling the listings service with it.
use tessera_client::{TokenSource, TokenSourceError};
use tessera_testkit::TestApp;
use tokio::task::JoinSet;
use tonic::{Code, service::interceptor::InterceptedService};

use crate::harness::{Calls, ListingsClient, listing, logout, serve_listings, start_verifier};

#[tokio::test]
async fn a_hundred_concurrent_callers_cause_one_refresh() {
    let app = TestApp::spawn().await;
    let (id, secret, login) = app.integration_login().await;
    let calls = Calls::default();
    let tokens = TokenSource::builder(calls.transport(app.channel()), &id, &secret)
        .refresh_token(login.refresh_token)
        .build();
    let mut callers = JoinSet::new();
    for _ in 0..100 {
        let tokens = tokens.clone();
        callers.spawn(async move { tokens.token().await.map(|t| t.secret().to_owned()) });
    }
    let mut seen = Vec::new();
    while let Some(token) = callers.join_next().await {
        seen.push(token.expect("task").expect("a token"));
    }
    assert_eq!(calls.count("IssueToken"), 1, "one refresh for all");
    assert!(seen.iter().all(|t| *t == seen[0]));
    let refreshed = app.introspect(&seen[0]).await;
    assert!(refreshed.active);
    assert_eq!(
        refreshed.sid,
        app.introspect(&login.access_token).await.sid,
        "the same session, refreshed: no new login"
    );
}

#[tokio::test]
async fn a_gone_session_means_a_new_login_and_a_rotated_secret_a_clear_error() {
    let app = TestApp::spawn().await;
    let (id, secret, login) = app.integration_login().await;
    logout(&app, &id, &secret, &login.refresh_token).await;
    let tokens = TokenSource::builder(app.channel(), &id, &secret)
        .refresh_token(login.refresh_token.clone())
        .build();
    let fresh = tokens.token().await.expect("a new login");
    let introspected = app.introspect(fresh.secret()).await;
    assert!(introspected.active);
    assert_ne!(
        introspected.sid,
        app.introspect(&login.access_token).await.sid
    );

    // The secret is rotated behind the job's back: the next renewal says so.
    let new_secret = app.rotate_secret(&id).await;
    let rotated = TokenSource::builder(app.channel(), &id, &secret).build();
    let error = rotated
        .token()
        .await
        .expect_err("the old secret is refused");
    assert!(
        matches!(&error, TokenSourceError::ClientRejected { client_id } if *client_id == id),
        "{error:?}"
    );
    assert!(error.to_string().contains("secret was rotated"), "{error}");
    rotated.set_client_secret(new_secret);
    rotated
        .token()
        .await
        .expect("works again with the new secret");
}

#[tokio::test]
async fn a_job_calls_the_service_with_its_token_source_and_may_not_do_privileged_things() {
    let app = TestApp::spawn().await;
    let verifier = start_verifier(&app, app.channel(), &Calls::default(), |b| b).await;
    let channel = serve_listings(verifier).await;
    let (id, secret) = app.integration_client().await;
    let tokens = TokenSource::builder(app.channel(), &id, &secret).build();

    let mut job = ListingsClient::new(InterceptedService::new(channel, tokens.interceptor()));
    let not_yet = job.export_listings().await.expect_err("no token yet");
    assert_eq!(not_yet.code(), Code::Unauthenticated);

    tokens.token().await.expect("logs in");
    let export = job
        .export_listings()
        .await
        .expect("an integ job may export");
    assert_eq!(export.exported_by, id);
    let close = job
        .close_listing(listing(None))
        .await
        .expect_err("privileged");
    assert_eq!(close.code(), Code::PermissionDenied);
}
