//! IntrospectToken (SPEC §3): active tokens say what they are; anything else is just inactive.
use std::time::Duration;

use super::*;
use crate::domain::{scope, service::TokenKind};

#[tokio::test]
async fn an_access_token_is_active_until_it_expires_plus_the_leeway() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let issued = world
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("token");
    let active = world
        .introspect(&issued.access_token)
        .await
        .expect("active");
    assert_eq!(active.kind, TokenKind::Access);
    assert_eq!(active.scope, scope::PUBLIC_READ);
    assert_eq!(active.issued_at, world.start);
    assert_eq!(active.expires_at, world.start + 600_000);
    world.advance(Duration::from_secs(600 + 4)).await;
    world.tokens.revocations().refresh().await.expect("poll");
    assert!(
        world.introspect(&issued.access_token).await.is_some(),
        "within the leeway"
    );
    world.advance(Duration::from_secs(2)).await;
    world.tokens.revocations().refresh().await.expect("poll");
    assert_eq!(world.introspect(&issued.access_token).await, None);
}

#[tokio::test]
async fn a_refresh_token_introspects_with_its_session_scope() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let user_id = world.user("olga@example.com").await;
    let login = world
        .login(&client, "olga@example.com", PASSWORD)
        .await
        .expect("login");
    let refresh = login.refresh_token.expect("refresh token");
    let active = world.introspect(&refresh).await.expect("active");
    assert_eq!(active.kind, TokenKind::Refresh);
    assert_eq!(active.scope, scope::USER);
    assert_eq!(active.sub, user_id);
    assert_eq!(active.jti, None);
}

#[tokio::test]
async fn garbage_foreign_and_tampered_tokens_are_inactive() {
    let world = World::new().await;
    let other = World::new().await;
    let client = other.marketplace_client().await;
    let foreign = other
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("token")
        .access_token;
    let mut tampered = foreign.clone();
    tampered.pop();
    tampered.push('A');
    for token in [
        "",
        "garbage",
        "v4.public.",
        foreign.as_str(),
        tampered.as_str(),
    ] {
        assert_eq!(world.introspect(token).await, None, "{token}");
    }
}

#[tokio::test]
async fn introspection_answers_unavailable_when_the_revocation_view_is_stale() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let token = world
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("token")
        .access_token;
    world.repo.set_unavailable(true);
    world.clock.advance(Duration::from_secs(2));
    assert!(world.tokens.revocations().refresh().await.is_err());
    assert_reason(
        world.tokens.introspect(&token).await,
        "temporarily_unavailable",
    );
    world.repo.set_unavailable(false);
    world.tokens.revocations().refresh().await.expect("poll");
    assert!(world.introspect(&token).await.is_some());
}

#[tokio::test]
async fn only_an_active_integ_token_may_introspect() {
    let world = World::new().await;
    let (integ, secret) = world.integration_client().await;
    let market = world.marketplace_client().await;
    let bearer = world
        .issue(&integ, Some(&secret), Grant::ClientCredentials)
        .await
        .expect("integ token")
        .access_token;
    let anonymous = world
        .issue(&market, None, Grant::ClientCredentials)
        .await
        .expect("anonymous")
        .access_token;
    assert_eq!(
        world
            .tokens
            .authorize_introspection(Some(&bearer))
            .await
            .expect("allowed"),
        integ
    );
    assert_reason(
        world.tokens.authorize_introspection(None).await,
        "invalid_client",
    );
    assert_reason(
        world.tokens.authorize_introspection(Some(&anonymous)).await,
        "unauthorized_client",
    );
    assert_reason(
        world.tokens.authorize_introspection(Some("garbage")).await,
        "unauthorized_client",
    );
}
