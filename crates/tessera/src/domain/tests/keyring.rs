//! The key ring: signing, rotation, following a rotation made elsewhere, retirement.
use std::{sync::Arc, time::Duration};

use super::*;
use crate::domain::keyring;

#[tokio::test]
async fn the_first_instance_makes_a_key_and_the_next_one_uses_it() {
    let world = World::new().await;
    let sibling = world.sibling().await;
    assert_eq!(
        world.tokens.keys().signing_kid(),
        sibling.keys().signing_kid()
    );
    let published = world.tokens.key_set().await.expect("key set");
    assert_eq!(published.len(), 1);
    assert!(published[0].signing);
}

#[tokio::test]
async fn after_a_rotation_old_tokens_verify_until_the_old_key_retires() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let old = world
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("token")
        .access_token;
    let old_kid = world.tokens.keys().signing_kid();
    let window = world.tokens.policy().key_verification_window();
    keyring::rotate(&*world.repo, &world.master(), window, world.start)
        .await
        .expect("rotate");
    assert!(world.tokens.keys().follow_rotation().await.expect("follow"));
    assert_ne!(world.tokens.keys().signing_kid(), old_kid);
    let new = world
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("token")
        .access_token;
    assert!(
        world.introspect(&old).await.is_some(),
        "old key still verifies"
    );
    assert!(world.introspect(&new).await.is_some());
    let published = world.tokens.key_set().await.expect("key set");
    assert_eq!(published.len(), 2);
    world.advance(window + Duration::from_secs(1)).await;
    world.tokens.revocations().refresh().await.expect("poll");
    let published = world.tokens.key_set().await.expect("key set");
    assert_eq!(published.len(), 1, "the old key retired");
}

#[tokio::test]
async fn a_token_signed_by_a_key_made_elsewhere_verifies_after_a_reload() {
    let world = World::new().await;
    let sibling = world.sibling().await;
    let window = world.tokens.policy().key_verification_window();
    keyring::rotate(&*world.repo, &world.master(), window, world.start)
        .await
        .expect("rotate");
    assert!(sibling.keys().follow_rotation().await.expect("follow"));
    let client = world.marketplace_client().await;
    let request = request(&client, None, Grant::ClientCredentials);
    let token = sibling.issue(request).await.expect("token").access_token;
    // This instance has not followed yet: an unknown kid makes it reload once a second.
    world.advance(Duration::from_secs(2)).await;
    world.tokens.revocations().refresh().await.expect("poll");
    assert!(world.introspect(&token).await.is_some());
}

#[tokio::test]
async fn a_wrong_master_key_cannot_open_the_signing_keys() {
    let world = World::new().await;
    let shared: SharedRepository = world.repo.clone();
    let wrong = MasterKey::generate().0;
    let opened = KeyRing::open(
        shared,
        wrong,
        world.tokens.policy().key_verification_window(),
        Arc::new(world.clock.clone()),
    )
    .await;
    assert!(opened.is_err());
}
