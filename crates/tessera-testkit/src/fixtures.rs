//! Clients and users registered through the library, behind a server's back.
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use tessera::{
    domain::{
        clients::{self, ClientKind},
        hashing::{HashCost, HashingPool},
        users,
    },
    store::{self, Store},
};
use tokio::task::JoinSet;

use crate::{TestDb, test_config};

/// What a test registers behind a `tessera serve` process's back, through the library.
pub struct Fixture {
    pub integration: (String, String),
    pub marketplace: String,
    pub usernames: Vec<String>,
}

pub const PASSWORD: &str = "correct horse battery staple";

/// Registers an integration client, a marketplace client and `users_wanted` users with
/// [`PASSWORD`].
pub async fn register(db: &TestDb, users_wanted: usize) -> Fixture {
    let store = Store::new(store::connect(&db.url).await.expect("connect"));
    let hasher = HashingPool::new(HashCost::OWASP, 2, Duration::from_secs(30)).expect("hasher");
    let integ = clients::create_client(&store, "jobs", ClientKind::Integration, false)
        .await
        .expect("integration client");
    let market = clients::create_client(&store, "web", ClientKind::Marketplace, false)
        .await
        .expect("marketplace client");
    let usernames = create_users(&store, &hasher, "user", users_wanted, PASSWORD)
        .await
        .expect("users");
    Fixture {
        integration: (
            integ.client_id,
            integ
                .client_secret
                .expect("secret")
                .expose_secret()
                .to_owned(),
        ),
        marketplace: market.client_id,
        usernames,
    }
}

/// The master key a `tessera serve` process on this database needs (empty: the SQLite dev key).
pub fn master_key(db: &TestDb) -> String {
    test_config(db)
        .master_key
        .map(|k| k.expose_secret().to_owned())
        .unwrap_or_default()
}

/// Registers `count` users named `<prefix>-<i>@example.com` with `password`, in parallel.
pub async fn create_users(
    store: &Store,
    hasher: &HashingPool,
    prefix: &str,
    count: usize,
    password: &str,
) -> anyhow::Result<Vec<String>> {
    let usernames: Vec<String> = (0..count)
        .map(|i| format!("{prefix}-{i}@example.com"))
        .collect();
    let mut creating = JoinSet::new();
    for username in usernames.clone() {
        let (store, hasher) = (store.clone(), hasher.clone());
        let password = password.to_owned();
        creating.spawn(async move {
            users::create_user(&store, &hasher, &username, password.into()).await
        });
    }
    while let Some(created) = creating.join_next().await {
        created
            .context("user creation task failed")?
            .context("cannot register a user")?;
    }
    Ok(usernames)
}
