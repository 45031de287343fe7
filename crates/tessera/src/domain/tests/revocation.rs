//! RevokeToken (SPEC §4, RFC 7009).
use super::*;

#[tokio::test]
async fn revoking_a_user_access_token_ends_its_session_everywhere() {
    let world = World::new().await;
    let sibling = world.sibling().await;
    let client = world.marketplace_client().await;
    world.user("pia@example.com").await;
    let login = world
        .login(&client, "pia@example.com", PASSWORD)
        .await
        .expect("login");
    world
        .tokens
        .revoke(&client, None, &login.access_token)
        .await
        .expect("revoke");
    assert_eq!(
        world.introspect(&login.access_token).await,
        None,
        "at once here"
    );
    let refresh = login.refresh_token.expect("refresh token");
    assert_eq!(world.introspect(&refresh).await, None);
    // The other instance learns of it at its next poll of the revocation log.
    sibling.revocations().refresh().await.expect("poll");
    assert_eq!(
        sibling
            .introspect(&login.access_token)
            .await
            .expect("answers"),
        None
    );
}

#[tokio::test]
async fn revoking_an_anonymous_token_revokes_it_alone() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let first = world
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("token")
        .access_token;
    let second = world
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("token")
        .access_token;
    world
        .tokens
        .revoke(&client, None, &first)
        .await
        .expect("revoke");
    assert_eq!(world.introspect(&first).await, None);
    assert!(world.introspect(&second).await.is_some());
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_session() {
    let world = World::new().await;
    let (client, secret, issued) = world.integration_login().await;
    let refresh = issued.refresh_token.expect("refresh token");
    world
        .tokens
        .revoke(&client, Some(&secret.into()), &refresh)
        .await
        .expect("revoke");
    assert_eq!(world.introspect(&refresh).await, None);
    assert_eq!(world.introspect(&issued.access_token).await, None);
}

#[tokio::test]
async fn another_clients_token_is_refused_and_left_alone() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let other = world.marketplace_client().await;
    let token = world
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("token")
        .access_token;
    assert_reason(
        world.tokens.revoke(&other, None, &token).await,
        "unauthorized_client",
    );
    assert!(world.introspect(&token).await.is_some());
}

#[tokio::test]
async fn unknown_and_invalid_tokens_are_accepted_silently() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    for token in ["", "garbage", "v4.public.nothing", &"x".repeat(43)] {
        world
            .tokens
            .revoke(&client, None, token)
            .await
            .expect("accepted");
    }
}

#[tokio::test]
async fn a_disabled_client_gets_nothing_and_its_tokens_turn_inactive() {
    let world = World::new().await;
    let (client, secret, issued) = world.integration_login().await;
    assert!(
        clients::disable_client(&*world.repo, &client, world.kept_for())
            .await
            .expect("disable")
    );
    world.tokens.revocations().refresh().await.expect("poll");
    assert_eq!(world.introspect(&issued.access_token).await, None);
    assert_reason(
        world
            .issue(&client, Some(&secret), Grant::ClientCredentials)
            .await,
        "invalid_client",
    );
}
