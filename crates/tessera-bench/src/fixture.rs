//! What the load needs: clients, users, the introspection bearer and tokens.
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, anyhow, bail};
use secrecy::ExposeSecret;
use tessera::{
    domain::clients::{ClientKind, create_client},
    store::Store,
};
use tessera_testkit::describe;
use tokio::task::JoinSet;
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

use crate::requests::Caller;

/// The two clients the load uses.
#[derive(Clone)]
pub struct Clients {
    /// A marketplace (public) client: anonymous tokens, user logins.
    pub market_id: String,
    /// An integration (confidential) client: the introspection caller.
    pub integ_id: String,
    pub integ_secret: String,
}

impl Clients {
    /// Registers both, through the library, under names made of `run_id`.
    pub async fn register(store: &Store, run_id: &str) -> anyhow::Result<Self> {
        let market_id = create_client(
            store,
            &format!("tessera-bench-{run_id}-web"),
            ClientKind::Marketplace,
            false,
        )
        .await
        .context("cannot register the marketplace client")?
        .client_id;
        let integ = create_client(
            store,
            &format!("tessera-bench-{run_id}-backend"),
            ClientKind::Integration,
            false,
        )
        .await
        .context("cannot register the integration client")?;
        let integ_secret = integ
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned())
            .ok_or_else(|| anyhow!("the integration client came without a secret"))?;
        Ok(Self {
            market_id,
            integ_id: integ.client_id,
            integ_secret,
        })
    }

    /// A new introspection bearer and hot token, checked once.
    pub async fn credentials(&self, channel: &Channel) -> anyhow::Result<Credentials> {
        let mut caller = Caller::new(channel.clone());
        let integ = caller
            .issue(&self.integ_id, &self.integ_secret)
            .await
            .map_err(|s| {
                anyhow!(
                    "cannot get an integ token for the introspection caller: {}",
                    describe(&s)
                )
            })?;
        let bearer = format!("Bearer {}", integ.access_token)
            .parse()
            .context("the integ access token is not a valid header value")?;
        let hot_token = caller
            .issue(&self.market_id, "")
            .await
            .map_err(|s| anyhow!("cannot get an anonymous token: {}", describe(&s)))?
            .access_token;
        let answer = caller
            .introspect(&bearer, &hot_token)
            .await
            .map_err(|s| anyhow!("the hot token does not introspect: {}", describe(&s)))?;
        if !answer.active {
            bail!("a token just issued introspects as inactive");
        }
        Ok(Credentials { bearer, hot_token })
    }

    /// Issues `total` anonymous tokens from `slots` tasks over every connection at once;
    /// returns them and their lifetime.
    pub async fn issue_distinct(
        &self,
        channels: &[Channel],
        slots: usize,
        total: usize,
    ) -> anyhow::Result<(Vec<String>, Duration)> {
        let next = Arc::new(AtomicUsize::new(0));
        let market_id = Arc::new(self.market_id.clone());
        let mut tasks = JoinSet::new();
        for slot in 0..slots.min(total) {
            let mut caller = Caller::new(channels[slot % channels.len()].clone());
            let (next, market_id) = (next.clone(), market_id.clone());
            tasks.spawn(async move {
                let mut mine = Vec::new();
                let mut ttl = Duration::MAX;
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let mut attempt = 0;
                    let response = loop {
                        match caller.issue(&market_id, "").await {
                            Ok(r) => break r,
                            Err(_) if attempt < 5 => {
                                attempt += 1;
                                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                            }
                            Err(s) => {
                                return Err(anyhow!(
                                    "cannot issue an anonymous token: {}",
                                    describe(&s)
                                ));
                            }
                        }
                    };
                    ttl = ttl.min(Duration::from_secs(
                        response.expires_in.max(0).unsigned_abs(),
                    ));
                    mine.push(response.access_token);
                }
                Ok((mine, ttl))
            });
        }
        let mut tokens = Vec::with_capacity(total);
        let mut ttl = Duration::MAX;
        while let Some(joined) = tasks.join_next().await {
            let (mine, their_ttl) = joined.context("token issuing task failed")??;
            tokens.extend(mine);
            ttl = ttl.min(their_ttl);
        }
        Ok((tokens, ttl))
    }
}

/// The introspection bearer (`Bearer <integ access token>`) and the hot token.
pub struct Credentials {
    pub bearer: MetadataValue<Ascii>,
    pub hot_token: String,
}

/// Everything the load of a run starts from.
pub struct Fixture {
    pub clients: Clients,
    pub password: String,
    pub credentials: Credentials,
    /// The run's id, in the names of its clients and users.
    pub run_id: String,
}

impl Fixture {
    /// Registers the clients and gets the first credentials.
    pub async fn set_up(store: &Store, channel: &Channel) -> anyhow::Result<Self> {
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let clients = Clients::register(store, &run_id).await?;
        let credentials = clients.credentials(channel).await?;
        Ok(Self {
            clients,
            password: format!("bench-password-{run_id}"),
            credentials,
            run_id,
        })
    }

    /// Fresh credentials, so that long runs never outlive them.
    pub async fn renew(&mut self, channel: &Channel) -> anyhow::Result<()> {
        self.credentials = self.clients.credentials(channel).await?;
        Ok(())
    }
}
