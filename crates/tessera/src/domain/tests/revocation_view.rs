//! The revocation view: what this instance knows was revoked, read from the commit-ordered
//! log, and the feed `WatchRevocations` streams are served from.
use std::{sync::Arc, time::Duration};

use super::*;
use crate::domain::{
    repository::{RevocationEvent, RevocationKind, SessionRepository},
    revocation_view::StreamStart,
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
        Duration::from_secs(60),
        Arc::new(world.clock.clone()),
    )
    .await
    .expect("view")
}

/// Logs a token revocation as another instance (or the CLI) would, stamped `stamped_at` and
/// kept ten minutes from the clock's present.
async fn revoke_elsewhere(world: &World, jti: &str, stamped_at: i64) -> u64 {
    use crate::domain::clock::Clock;
    world
        .repo
        .revoke_token(jti, stamped_at, world.clock.now_ms() + 600_000)
        .await
        .expect("log")
        .expect("a new event")
}

fn sequences(events: &[Arc<RevocationEvent>]) -> Vec<u64> {
    events.iter().map(|e| e.sequence).collect()
}

#[tokio::test]
async fn a_revocation_logged_elsewhere_is_seen_at_the_next_poll() {
    let world = World::new().await;
    let view = view(&world).await;
    let token = claims(world.start, "jti-1", Some("sid-1"), "client");
    assert!(!view.covers(&token));
    revoke_elsewhere(&world, "jti-1", world.start).await;
    assert!(!view.covers(&token), "not before the poll");
    view.refresh().await.expect("poll");
    assert!(view.covers(&token));
}

#[tokio::test]
async fn a_revocation_stamped_by_a_clock_an_hour_behind_is_seen_all_the_same() {
    let world = World::new().await;
    let view = view(&world).await;
    world.advance(Duration::from_secs(60)).await;
    revoke_elsewhere(&world, "late", world.start - 3_600_000).await;
    view.refresh().await.expect("poll");
    assert!(view.covers(&claims(world.start, "late", None, "client")));
}

#[tokio::test]
async fn a_session_end_covers_every_token_of_the_session() {
    let world = World::new().await;
    let view = view(&world).await;
    view.apply(RevocationEvent {
        sequence: 1,
        kind: RevocationKind::Session,
        subject: "sid-2".into(),
        revoked_at: world.start,
        expires_at: world.start + 600_000,
    });
    assert!(view.covers(&claims(world.start, "a", Some("sid-2"), "client")));
    assert!(view.covers(&claims(world.start, "b", Some("sid-2"), "client")));
    assert!(!view.covers(&claims(world.start, "c", Some("sid-3"), "client")));
    assert!(!view.covers(&claims(world.start, "d", None, "client")));
}

#[tokio::test]
async fn a_view_loaded_later_still_knows_revocations_that_matter() {
    let world = World::new().await;
    revoke_elsewhere(&world, "jti-4", world.start).await;
    world.advance(Duration::from_secs(60)).await;
    let view = view(&world).await;
    assert!(view.covers(&claims(world.start, "jti-4", None, "client")));
    assert_eq!(view.sequence(), 1);
}

#[tokio::test]
async fn revocations_are_forgotten_once_no_token_they_cover_can_be_active() {
    let world = World::new().await;
    let view = view(&world).await;
    revoke_elsewhere(&world, "jti-5", world.start).await;
    view.refresh().await.expect("poll");
    assert_eq!(view.held(), 1);
    world.advance(Duration::from_secs(601)).await;
    view.refresh().await.expect("poll");
    assert_eq!(view.held(), 0);
    assert!(!view.covers(&claims(world.start, "jti-5", None, "client")));
}

#[tokio::test]
async fn disabled_clients_stay_disabled_after_their_revocation_expires() {
    let world = World::new().await;
    let view = view(&world).await;
    let client = world.marketplace_client().await;
    assert!(!view.is_client_disabled(&client));
    clients::disable_client(&*world.repo, &client, Duration::from_secs(60))
        .await
        .expect("disable");
    view.refresh().await.expect("poll");
    assert!(view.is_client_disabled(&client));
    world.advance(Duration::from_secs(120)).await;
    view.refresh().await.expect("poll");
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

#[tokio::test]
async fn a_stream_gets_a_snapshot_then_each_revocation_in_sequence_order() {
    let world = World::new().await;
    revoke_elsewhere(&world, "before", world.start).await;
    let view = view(&world).await;
    let mut subscription = view.subscribe(0);
    let StreamStart::Snapshot { sequence, events } = &subscription.start else {
        panic!("a cursor of 0 gets a snapshot: {:?}", subscription.start);
    };
    assert_eq!((*sequence, sequences(events)), (1, vec![1]));
    // Sequence 3 is applied here before 2 (committed elsewhere) is read: the feed waits.
    revoke_elsewhere(&world, "second", world.start).await;
    let third = revoke_elsewhere(&world, "third", world.start).await;
    view.apply(RevocationEvent {
        sequence: third,
        kind: RevocationKind::Token,
        subject: "third".into(),
        revoked_at: world.start,
        expires_at: world.start + 600_000,
    });
    assert!(
        view.covers(&claims(world.start, "third", None, "c")),
        "at once here"
    );
    assert!(subscription.feed.try_recv().is_err(), "3 waits for 2");
    view.refresh().await.expect("poll");
    let got: Vec<u64> = std::iter::from_fn(|| subscription.feed.try_recv().ok())
        .map(|e| e.sequence)
        .collect();
    assert_eq!(got, vec![2, 3]);
}

#[tokio::test]
async fn a_stream_resumed_with_its_last_sequence_gets_what_came_after_and_nothing_twice() {
    let world = World::new().await;
    let view = view(&world).await;
    for jti in ["a", "b", "c"] {
        revoke_elsewhere(&world, jti, world.start).await;
    }
    view.refresh().await.expect("poll");
    let subscription = view.subscribe(1);
    let StreamStart::Replay(events) = &subscription.start else {
        panic!("a recent cursor resumes: {:?}", subscription.start);
    };
    assert_eq!(sequences(events), vec![2, 3]);
    let StreamStart::Replay(events) = &view.subscribe(3).start else {
        panic!("resumes");
    };
    assert!(events.is_empty());
    // A cursor ahead of this instance (from another one, or from before the log went back)
    // cannot be resumed from here without risk of a gap: it gets a snapshot.
    assert!(matches!(
        view.subscribe(99).start,
        StreamStart::Snapshot { sequence: 3, .. }
    ));
}

#[tokio::test]
async fn a_cursor_older_than_what_the_view_holds_gets_a_snapshot() {
    let world = World::new().await;
    let view = view(&world).await;
    revoke_elsewhere(&world, "old", world.start).await;
    view.refresh().await.expect("poll");
    world.advance(Duration::from_secs(601)).await;
    revoke_elsewhere(&world, "new", world.start + 601_000).await;
    view.refresh().await.expect("poll");
    let subscription = view.subscribe(0);
    let StreamStart::Snapshot { sequence, events } = &subscription.start else {
        panic!("snapshot");
    };
    assert_eq!((*sequence, sequences(events)), (2, vec![2]));
    assert!(matches!(view.subscribe(1).start, StreamStart::Replay(_)));
    let old = view.subscribe(0);
    assert!(matches!(old.start, StreamStart::Snapshot { .. }));
}

#[tokio::test]
async fn a_log_that_goes_back_makes_the_view_again_and_ends_its_streams() {
    let world = World::new().await;
    let view = view(&world).await;
    for jti in ["a", "b", "c"] {
        revoke_elsewhere(&world, jti, world.start).await;
    }
    view.refresh().await.expect("poll");
    let mut subscription = view.subscribe(3);
    // The database comes back from a backup that lost the last two commits; a new revocation
    // gets sequence 2 again.
    world.repo.roll_back_log(1);
    revoke_elsewhere(&world, "d", world.start).await;
    view.refresh().await.expect("poll");
    assert!(view.covers(&claims(world.start, "d", None, "client")));
    assert!(
        view.covers(&claims(world.start, "c", None, "client")),
        "still known"
    );
    assert!(matches!(
        subscription.feed.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Closed)
    ));
    assert!(matches!(
        view.subscribe(3).start,
        StreamStart::Snapshot { sequence: 2, .. }
    ));
}

#[tokio::test]
async fn ending_the_streams_closes_their_feed_and_new_ones_start_afresh() {
    let world = World::new().await;
    let view = view(&world).await;
    let mut subscription = view.subscribe(0);
    view.end_streams();
    assert!(matches!(
        subscription.feed.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Closed)
    ));
    let mut next = view.subscribe(0);
    revoke_elsewhere(&world, "after", world.start).await;
    view.refresh().await.expect("poll");
    assert_eq!(next.feed.try_recv().expect("an event").subject, "after");
}
