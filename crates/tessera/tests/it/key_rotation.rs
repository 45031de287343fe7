//! Key rotation: a new key signs at once, older keys verify until their tokens have expired,
//! then retire; restarts invalidate nothing.
use std::{process::Command, time::Duration};

use secrecy::ExposeSecret;
use tessera::{domain::keyring, grpc::pb, server::resolve_master_key};

use crate::common::{TestApp, assert_inactive, assert_success, client_credentials};

fn kid_of(token: &str) -> String {
    use base64::Engine;
    let footer = token.rsplit('.').next().expect("footer");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(footer)
        .expect("base64");
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json footer");
    v["kid"].as_str().expect("kid").to_owned()
}

fn rotate_cli(app: &TestApp, master_key: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args(["keys", "rotate", "--json"])
        .env("TESSERA_DATABASE_URL", &app.db.url)
        .env_remove("TESSERA_MASTER_KEY");
    if let Some(key) = master_key.or(app.config.master_key.as_ref().map(|k| k.expose_secret())) {
        cmd.env("TESSERA_MASTER_KEY", key);
    }
    cmd.output().expect("run tessera keys rotate")
}

async fn key_set(app: &TestApp) -> Vec<pb::PublicKey> {
    app.client()
        .await
        .get_key_set(pb::GetKeySetRequest {})
        .await
        .expect("key set")
        .into_inner()
        .keys
}

/// Rotates with the old key retired at once (standing in for "every token it signed has
/// expired") and waits until the server signs with the new key; the old key's kid.
async fn rotate_retiring_at_once(app: &TestApp, client: &str, old_token: &str) -> String {
    let master =
        resolve_master_key(app.config.master_key.as_ref(), &app.db.url).expect("master key");
    keyring::rotate(
        &app.store,
        &master,
        Duration::ZERO,
        tessera::domain::clock::now_ms(),
    )
    .await
    .expect("rotate");
    let old_kid = kid_of(old_token);
    assert!(
        eventually(|| async { kid_of(&app.anonymous_token(client).await) != old_kid }).await,
        "the new key signs"
    );
    old_kid
}

/// Polls `check` for up to five seconds: instances follow a rotation within a second.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_rotated_key_signs_at_once_and_older_tokens_keep_verifying() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let before = app.anonymous_token(&client).await;
    let old_kid = kid_of(&before);

    let out = rotate_cli(&app, None);
    assert_success(&out);
    let new: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let new_kid = new["kid"].as_str().expect("kid").to_owned();
    assert_ne!(new_kid, old_kid);

    let signs_with_new_key =
        eventually(|| async { kid_of(&app.anonymous_token(&client).await) == new_kid }).await;
    assert!(
        signs_with_new_key,
        "the server signs with the new key within a second or so"
    );
    assert!(
        app.introspect(&before).await.active,
        "tokens of the old key still verify"
    );

    let keys = key_set(&app).await;
    assert_eq!(keys.len(), 2);
    let (newest, older) = (&keys[0], &keys[1]);
    assert_eq!(
        (newest.kid.as_str(), newest.signing),
        (new_kid.as_str(), true)
    );
    assert_eq!(
        (older.kid.as_str(), older.signing),
        (old_kid.as_str(), false)
    );
    let retire = older
        .retire_time
        .expect("the old key has a retire time")
        .seconds;
    let issued_exp = app
        .introspect(&before)
        .await
        .expire_time
        .expect("exp")
        .seconds;
    assert!(
        retire >= issued_exp,
        "the old key outlives every token it signed"
    );
    assert!(newest.retire_time.is_none());
}

#[tokio::test]
async fn a_retired_key_leaves_the_key_set_and_its_tokens_stop_verifying() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let old = app.anonymous_token(&client).await;
    rotate_retiring_at_once(&app, &client, &old).await;
    // The caller's own token must come from the new key too: the old one no longer verifies.
    let bearer = app.introspection_bearer().await;
    assert_inactive(&app.introspect_as(Some(&bearer), &old).await.expect("ok"));
    let keys = key_set(&app).await;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].signing);
    let fresh = app.anonymous_token(&client).await;
    assert!(app.introspect(&fresh).await.active);
}

#[tokio::test]
async fn a_wrong_master_key_cannot_rotate() {
    let app = TestApp::spawn().await;
    let wrong = tessera::domain::master_key::MasterKey::generate().1;
    let out = rotate_cli(&app, Some(&wrong));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not open"), "{stderr}");
    assert_eq!(key_set(&app).await.len(), 1, "nothing was written");
}

#[tokio::test]
async fn restarting_the_server_invalidates_no_token_or_session() {
    let mut app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let anonymous = app.anonymous_token(&client).await;
    let (id, secret, integ) = app.integration_login().await;
    let bearer = app.introspection_bearer().await;
    app.stop().await;

    let again = app.sibling().await;
    for token in [&anonymous, &integ.access_token, &integ.refresh_token] {
        assert!(
            again
                .introspect_as(Some(&bearer), token)
                .await
                .expect("ok")
                .active
        );
    }
    again
        .refresh(&id, &secret, &integ.refresh_token)
        .await
        .expect("the session lives on");
    again
        .issue(client_credentials(&client, ""))
        .await
        .expect("the same key signs");
}

#[tokio::test]
async fn a_server_with_longer_token_lifetimes_keeps_older_keys_verifying_long_enough() {
    let app = TestApp::spawn_with(|c| c.policy.access_token_ttl = Duration::from_secs(3600)).await;
    let client = app.marketplace_client().await;
    let before = app.anonymous_token(&client).await;
    let master =
        resolve_master_key(app.config.master_key.as_ref(), &app.db.url).expect("master key");
    // As if `keys rotate` ran with a 10-minute token lifetime in its environment.
    keyring::rotate(
        &app.store,
        &master,
        Duration::from_secs(600),
        tessera::domain::clock::now_ms(),
    )
    .await
    .expect("rotate");
    let token_expiry = app
        .introspect(&before)
        .await
        .expire_time
        .expect("exp")
        .seconds;
    let extended = eventually(|| async {
        let keys = key_set(&app).await;
        keys.iter()
            .any(|k| !k.signing && k.retire_time.is_some_and(|t| t.seconds >= token_expiry))
    })
    .await;
    assert!(
        extended,
        "the server extends the old key's retirement past its own tokens' expiry"
    );
    assert!(app.introspect(&before).await.active);
}

/// A key pair, its row as someone with write access to the database but without the master
/// key would write it (generation `generation`), and an `integ` token it signs.
fn forged_key(generation: i64) -> (tessera::domain::repository::SigningKeyRecord, String) {
    use pasetors::keys::{AsymmetricKeyPair, Generate};
    use tessera::domain::{master_key::MasterKey, token};
    let pair = AsymmetricKeyPair::<pasetors::version4::V4>::generate().expect("key pair");
    let kid = keyring::paserk_pid(&pair.public);
    let theirs = MasterKey::generate().0;
    let now = tessera::domain::clock::now_ms();
    let row = tessera::domain::repository::SigningKeyRecord {
        kid: kid.clone(),
        generation,
        public_key: pair.public.as_bytes().to_vec(),
        sealed_secret_key: theirs
            .seal(pair.secret.as_bytes(), kid.as_bytes())
            .expect("seal"),
        created_at: now,
        superseded_at: None,
        retire_at: None,
        row_mac: Some(theirs.mac(b"anything").expect("mac")),
    };
    let claims = token::AccessClaims {
        iss: "tessera".to_owned(),
        sub: "anyone".to_owned(),
        client_id: "anyone".to_owned(),
        scope: "integ".to_owned(),
        jti: uuid::Uuid::new_v4().to_string(),
        issued_at: now,
        not_before: now - now.rem_euclid(1000),
        expires_at: now + 60_000,
        sid: None,
    };
    let forged = token::sign(&claims, &kid, &pair.secret).expect("sign");
    (row, forged)
}

#[tokio::test]
async fn a_key_row_forged_in_the_database_signs_nothing_verifies_nothing_and_is_not_published() {
    use tessera_testkit::prelude::*;
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let kid = kid_of(&app.anonymous_token(&client).await);
    let (row, forged) = forged_key(2);
    app.store.insert_signing_key(row).await.expect("insert");
    // Past the key follower's poll: the instance has read the row and left it out.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(kid_of(&app.anonymous_token(&client).await), kid);
    assert_inactive(&app.introspect(&forged).await);
    let keys = key_set(&app).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid, kid);
    // A restart trusts it no more.
    let again = app.sibling().await;
    assert_inactive(&again.introspect(&forged).await);
}

#[tokio::test]
async fn a_retired_key_brought_back_by_editing_its_row_stays_retired() {
    use sea_orm::{ConnectionTrait, Statement};
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let old = app.anonymous_token(&client).await;
    let old_kid = rotate_retiring_at_once(&app, &client, &old).await;
    let conn = app.store.connection();
    conn.execute_raw(Statement::from_sql_and_values(
        conn.get_database_backend(),
        "UPDATE signing_keys SET retire_at = NULL, superseded_at = NULL WHERE kid = $1",
        [old_kid.clone().into()],
    ))
    .await
    .expect("un-retire");
    let again = app.sibling().await;
    let bearer = again.introspection_bearer().await;
    assert_inactive(&again.introspect_as(Some(&bearer), &old).await.expect("ok"));
    assert_eq!(key_set(&again).await.len(), 1);
}
