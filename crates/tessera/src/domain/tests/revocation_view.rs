//! The revocation view: what this instance knows was revoked, read from the log.
use std::{sync::Arc, time::Duration};

use super::*;
use crate::domain::{
    repository::{RevocationKind, SessionRepository},
    token::AccessClaims,
};

fn claims(at: i64, jti: &str, sid: Option<&str>, client_id: &str) -> AccessClaims {
    AccessClaims {
        iss: "tessera".into(),
        sub: "someone".into(),
        client_id: client_id.into(),
        scope: "user".into(),
        jti: jti.into(),
        issued_at: at,
        not_before: at,
        expires_at: at + 600_000,
        sid: sid.map(Into::into),
    }
}

async fn view(world: &World) -> RevocationView {
    let shared: SharedRepository = world.repo.clone();
    RevocationView::load(
        shared,
        Duration::from_secs(605),
        Arc::new(world.clock.clone()),
    )
    .await
    .expect("view")
}

#[tokio::test]
async fn a_revocation_logged_elsewhere_is_seen_at_the_next_poll() {
    let world = World::new().await;
    let view = view(&world).await;
    let token = claims(world.start, "jti-1", Some("sid-1"), "client");
    assert!(!view.covers(&token));
    world
        .repo
        .revoke_token("jti-1", world.start)
        .await
        .expect("log");
    assert!(!view.covers(&token), "not before the poll");
    view.refresh().await.expect("poll");
    assert!(view.covers(&token));
}

#[tokio::test]
async fn a_session_end_covers_every_token_of_the_session() {
    let world = World::new().await;
    let view = view(&world).await;
    view.apply(RevocationKind::Session, "sid-2", world.start);
    assert!(view.covers(&claims(world.start, "a", Some("sid-2"), "client")));
    assert!(view.covers(&claims(world.start, "b", Some("sid-2"), "client")));
    assert!(!view.covers(&claims(world.start, "c", Some("sid-3"), "client")));
    assert!(!view.covers(&claims(world.start, "d", None, "client")));
}

#[tokio::test]
async fn a_view_loaded_later_still_knows_recent_revocations() {
    let world = World::new().await;
    world
        .repo
        .revoke_token("jti-4", world.start)
        .await
        .expect("log");
    world.advance(Duration::from_secs(60)).await;
    let view = view(&world).await;
    assert!(view.covers(&claims(world.start, "jti-4", None, "client")));
}

#[tokio::test]
async fn revocations_are_forgotten_once_no_token_they_cover_can_be_active() {
    let world = World::new().await;
    let view = view(&world).await;
    view.apply(RevocationKind::Token, "jti-5", world.start);
    world.advance(Duration::from_secs(620)).await;
    view.refresh().await.expect("poll");
    assert!(!view.covers(&claims(world.start, "jti-5", None, "client")));
}

#[tokio::test]
async fn disabled_clients_are_reread_at_every_poll() {
    let world = World::new().await;
    let view = view(&world).await;
    let client = world.marketplace_client().await;
    assert!(!view.is_client_disabled(&client));
    clients::disable_client(&*world.repo, &client)
        .await
        .expect("disable");
    view.refresh().await.expect("poll");
    assert!(view.is_client_disabled(&client));
    assert!(view.covers(&claims(world.start, "any", None, &client)));
}

#[tokio::test]
async fn the_view_turns_stale_when_the_log_cannot_be_read() {
    let world = World::new().await;
    let view = view(&world).await;
    assert!(!view.is_stale(world.start));
    world.repo.set_unavailable(true);
    world.clock.advance(Duration::from_secs(2));
    assert!(view.refresh().await.is_err());
    assert!(view.is_stale(world.start + 2_000));
}
