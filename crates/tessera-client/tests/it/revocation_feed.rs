//! Revocations through the WatchRevocations feed: a logout enforced within a second without
//! IntrospectToken, failing closed when Tessera goes away, resuming when it comes back, and the
//! introspection fallback.
use std::time::Duration;

use tessera_client::{VerifyError, WhenStale};
use tessera_testkit::TestApp;
use tonic::Code;

use crate::harness::{
    Calls, ListingsClient, Proxy, listing, logout, serve_listings, start_verifier, user_login,
    within,
};

/// What SPEC §7 promises: a revocation reaches the feed's readers within a second.
const WITHIN_A_SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_logout_is_enforced_by_the_service_within_a_second_without_introspection() {
    let app = TestApp::spawn().await;
    let calls = Calls::default();
    let verifier = start_verifier(&app, app.channel(), &calls, |b| b).await;
    let mut listings = ListingsClient::new(serve_listings(verifier).await);
    let (client, login) = user_login(&app, "ann@example.com").await;
    let token = login.access_token.as_str();
    listings
        .get_listing(listing(Some(token)))
        .await
        .expect("logged in");

    logout(&app, &client, "", &login.refresh_token).await;
    let enforced = within(WITHIN_A_SECOND, || {
        let mut listings = listings.clone();
        async move {
            match listings.get_listing(listing(Some(token))).await {
                Err(status) => status.code() == Code::Unauthenticated,
                Ok(_) => false,
            }
        }
    })
    .await;
    assert!(enforced, "the logout is enforced within a second");
    assert_eq!(calls.count("IntrospectToken"), 0);
}

#[tokio::test]
async fn with_tessera_gone_it_fails_closed_once_heartbeats_are_missed_and_resumes_on_its_return() {
    let mut first = TestApp::spawn().await;
    let proxy = Proxy::start(first.addr).await;
    let calls = Calls::default();
    let verifier = start_verifier(&first, proxy.channel(), &calls, |b| b).await;
    let mut listings = ListingsClient::new(serve_listings(verifier.clone()).await);
    let (_, ann) = user_login(&first, "ann@example.com").await;
    let (bea_client, bea) = user_login(&first, "bea@example.com").await;
    verifier.verify(&ann.access_token).await.expect("valid");

    // Tessera stops: the cached keys and the revocations known serve until the rule trips.
    proxy.cut();
    verifier
        .verify(&ann.access_token)
        .await
        .expect("still verified on what the verifier holds");
    first.stop().await;
    let closed = within(Duration::from_secs(5), || async {
        matches!(
            verifier.verify(&ann.access_token).await,
            Err(VerifyError::Stale)
        )
    })
    .await;
    assert!(closed, "fails closed once the heartbeats are missed");
    let refused = listings.get_listing(listing(Some(&ann.access_token))).await;
    assert_eq!(refused.expect_err("refused").code(), Code::Unavailable);

    // Tessera is back (another instance on the same database), with a logout made while the
    // verifier could not hear of it.
    let second = first.sibling().await;
    logout(&second, &bea_client, "", &bea.refresh_token).await;
    proxy.restore_to(second.addr);
    let resumed = within(Duration::from_secs(5), || async {
        verifier.verify(&ann.access_token).await.is_ok()
    })
    .await;
    assert!(resumed, "verification works again once the feed resumes");
    assert!(
        matches!(
            verifier.verify(&bea.access_token).await,
            Err(VerifyError::Revoked)
        ),
        "the logout made while away is known"
    );
    assert_eq!(calls.count("IntrospectToken"), 0);
}

#[tokio::test]
async fn a_silent_feed_falls_back_to_introspection_when_so_configured() {
    let app = TestApp::spawn().await;
    let calls = Calls::default();
    let verifier = start_verifier(&app, app.channel(), &calls, |b| {
        b.when_stale(WhenStale::Introspect)
    })
    .await;
    let (client, login) = user_login(&app, "ann@example.com").await;
    calls.refuse_feed();
    let stale = within(Duration::from_secs(5), || async { !verifier.is_fresh() }).await;
    assert!(stale, "the feed goes stale");

    let claims = verifier
        .verify(&login.access_token)
        .await
        .expect("introspected");
    assert_eq!(claims.client_id(), client);
    assert!(calls.count("IntrospectToken") >= 1);
    logout(&app, &client, "", &login.refresh_token).await;
    assert!(matches!(
        verifier.verify(&login.access_token).await,
        Err(VerifyError::Revoked)
    ));
}
