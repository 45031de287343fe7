//! The key ring: signing, rotation, following a rotation made elsewhere, retirement.
use std::{sync::Arc, time::Duration};

use super::*;
use crate::domain::{
    keyring,
    repository::{KeyRepository, KeyUpdate, SigningKeyRecord},
    token::{self, AccessClaims},
};

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

/// A key pair made by someone who can write to the database but does not hold the master key,
/// its row as they would write it, and a token it signs for `client`.
fn forged_key(world: &World, generation: i64, client: &str) -> (SigningKeyRecord, String) {
    use pasetors::keys::{AsymmetricKeyPair, Generate};
    let pair = AsymmetricKeyPair::<pasetors::version4::V4>::generate().expect("key pair");
    let kid = keyring::paserk_pid(&pair.public);
    let theirs = MasterKey::generate().0;
    let row = SigningKeyRecord {
        kid: kid.clone(),
        generation,
        public_key: pair.public.as_bytes().to_vec(),
        sealed_secret_key: theirs
            .seal(pair.secret.as_bytes(), kid.as_bytes())
            .expect("seal"),
        created_at: world.start,
        superseded_at: None,
        retire_at: None,
        row_mac: Some(theirs.mac(b"anything").expect("mac")),
    };
    let claims = AccessClaims {
        iss: world.tokens.policy().issuer.clone(),
        sub: client.to_owned(),
        client_id: client.to_owned(),
        scope: "integ".to_owned(),
        jti: "forged".to_owned(),
        issued_at: world.start,
        not_before: world.start - world.start.rem_euclid(1000),
        expires_at: world.start + 60_000,
        sid: None,
    };
    let token = token::sign(&claims, &kid, &pair.secret).expect("sign");
    (row, token)
}

#[tokio::test]
async fn a_key_row_written_without_the_master_key_never_signs_verifies_or_is_published() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let kid = world.tokens.keys().signing_kid();
    let (row, forged) = forged_key(&world, 2, &client);
    world.repo.insert_signing_key(row).await.expect("insert");
    // The instance sees a newer generation, reloads, and leaves the row out.
    assert!(world.tokens.keys().follow_rotation().await.expect("follow"));
    assert_eq!(world.tokens.keys().signing_kid(), kid);
    world.advance(Duration::from_secs(2)).await;
    world.tokens.revocations().refresh().await.expect("poll");
    assert_eq!(world.introspect(&forged).await, None);
    let published = world.tokens.key_set().await.expect("key set");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].kid, kid);
    // Once seen, the row costs no reload on every poll.
    assert!(!world.tokens.keys().follow_rotation().await.expect("follow"));
    // A new instance starts on the real key; a rotation numbers past the forged row.
    assert_eq!(world.sibling().await.keys().signing_kid(), kid);
    let window = world.tokens.policy().key_verification_window();
    let rotated = keyring::rotate(&*world.repo, &world.master(), window, world.start)
        .await
        .expect("rotate");
    assert!(world.tokens.keys().follow_rotation().await.expect("follow"));
    assert_eq!(world.tokens.keys().signing_kid(), rotated.kid);
}

#[tokio::test]
async fn a_retired_key_brought_back_by_editing_its_row_stays_retired() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let old = world
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("token")
        .access_token;
    let old_kid = world.tokens.keys().signing_kid();
    keyring::rotate(&*world.repo, &world.master(), Duration::ZERO, world.start)
        .await
        .expect("rotate");
    assert!(world.tokens.keys().follow_rotation().await.expect("follow"));
    world.advance(Duration::from_secs(2)).await;
    assert_eq!(world.introspect(&old).await, None, "retired");
    // Someone with write access to the database un-retires the old key, MAC untouched.
    let mut row = world
        .repo
        .list_signing_keys()
        .await
        .expect("keys")
        .into_iter()
        .find(|row| row.kid == old_kid)
        .expect("the old row");
    let expected_mac = row.row_mac.clone();
    row.superseded_at = None;
    row.retire_at = None;
    assert!(
        world
            .repo
            .update_signing_key(KeyUpdate {
                key: row,
                expected_mac,
            })
            .await
            .expect("update")
    );
    // Neither a running instance reloading nor a new one trusts the edited row.
    world.advance(Duration::from_secs(2)).await;
    world.tokens.keys().reload_if_stale().await.expect("reload");
    assert_eq!(world.introspect(&old).await, None, "still retired");
    let sibling = world.sibling().await;
    assert_ne!(sibling.keys().signing_kid(), old_kid);
    assert_eq!(sibling.introspect(&old).await.expect("introspect"), None);
    assert_eq!(sibling.key_set().await.expect("key set").len(), 1);
}

#[tokio::test]
async fn signing_keys_of_an_earlier_release_are_adopted_once_and_keep_their_tokens() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let token = world
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("token")
        .access_token;
    // The row as an earlier release wrote it: sealed with no context, no MAC.
    let master = world.master();
    let mut row = world.repo.list_signing_keys().await.expect("keys")[0].clone();
    let secret = master
        .open(&row.sealed_secret_key, row.kid.as_bytes())
        .expect("open");
    let expected_mac = row.row_mac.take();
    row.sealed_secret_key = master.seal_unbound(&secret).expect("seal");
    let legacy = KeyUpdate {
        key: row.clone(),
        expected_mac,
    };
    assert!(world.repo.update_signing_key(legacy).await.expect("update"));
    // The next instance to start adopts it: its MAC set, its tokens still verifying.
    let sibling = world.sibling().await;
    assert_eq!(sibling.keys().signing_kid(), row.kid);
    let adopted = world.repo.list_signing_keys().await.expect("keys")[0].clone();
    assert!(adopted.row_mac.is_some());
    assert!(
        master
            .open(&adopted.sealed_secret_key, adopted.kid.as_bytes())
            .is_ok()
    );
    assert!(
        sibling
            .introspect(&token)
            .await
            .expect("introspect")
            .is_some(),
        "tokens signed before the adoption verify"
    );
    // Adoption happens once: a row without a MAC written later is not adopted.
    let (mut forged, _) = forged_key(&world, 2, &client);
    forged.row_mac = None;
    world.repo.insert_signing_key(forged).await.expect("insert");
    let later = world.sibling().await;
    assert_eq!(later.keys().signing_kid(), row.kid);
    assert_eq!(later.key_set().await.expect("keys").len(), 1);
}

#[tokio::test]
async fn an_old_copy_of_a_key_row_from_when_it_signed_does_not_bring_it_back() {
    let world = World::new().await;
    let client = world.marketplace_client().await;
    let old = world
        .issue(&client, None, Grant::ClientCredentials)
        .await
        .expect("token")
        .access_token;
    // Copied (MAC and all) while the key still signed: no supersession, no retirement.
    let copy = world.repo.list_signing_keys().await.expect("keys")[0].clone();
    let window = world.tokens.policy().key_verification_window();
    keyring::rotate(&*world.repo, &world.master(), window, world.start)
        .await
        .expect("rotate");
    world.advance(window + Duration::from_secs(60)).await;
    let current = world
        .repo
        .list_signing_keys()
        .await
        .expect("keys")
        .into_iter()
        .find(|row| row.kid == copy.kid)
        .expect("the old row");
    assert!(
        world
            .repo
            .update_signing_key(KeyUpdate {
                key: copy.clone(),
                expected_mac: current.row_mac,
            })
            .await
            .expect("put the copy back")
    );
    let sibling = world.sibling().await;
    assert_ne!(sibling.keys().signing_kid(), copy.kid);
    assert_eq!(sibling.introspect(&old).await.expect("introspect"), None);
    assert_eq!(sibling.key_set().await.expect("key set").len(), 1);
}
