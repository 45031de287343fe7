//! The real server on 127.0.0.1:0 over a [`TestDb`], and typed calls to it.
use std::{
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use secrecy::ExposeSecret;
use tessera::{
    config::{Config, IntrospectionAuth},
    domain::{
        TokenService,
        clients::{self, ClientKind},
        clock::{ManualClock, SharedClock, SystemClock, now_ms},
        hashing::{HashCost, HashingPool},
        master_key::MasterKey,
        policy::TokenPolicy,
    },
    server::Application,
    store::Store,
};
use tessera_proto::pb::{self, auth_service_client::AuthServiceClient};
use tokio::sync::oneshot;
use tonic::{Status, transport::Channel};

use crate::{
    TestDb,
    requests::{client_credentials, introspect_on, password_grant, refresh_grant},
};

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// The HTTP listener's address (port 0 in tests), unless the test turned it off.
    pub http_addr: Option<std::net::SocketAddr>,
    /// The metrics listener's address (port 0 in tests), unless the test turned it off.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub tokens: Arc<TokenService>,
    pub store: Store,
    pub db: Arc<TestDb>,
    pub config: Config,
    /// The clock the server reads, when the test moves it ([`TestApp::spawn_with_manual_clock`]);
    /// `None`: the system clock.
    pub clock: Option<ManualClock>,
    /// Every instance on this manual clock (this one and its siblings), so that moving the clock
    /// can bring each one's revocation view up to date.
    on_clock: Arc<Mutex<Vec<Weak<TokenService>>>>,
    hasher: HashingPool,
    channel: Channel,
    bearer: tokio::sync::OnceCell<String>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// The configuration every test starts from.
pub fn test_config(db: &TestDb) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        http_listen: Some("127.0.0.1:0".parse().expect("addr")),
        metrics_listen: Some("127.0.0.1:0".parse().expect("addr")),
        cors_origins: Default::default(),
        database_url: db.url.clone(),
        // SQLite runs on the dev-key default (a file beside the database); PostgreSQL needs one.
        master_key: db.is_postgres().then(|| MasterKey::generate().1.into()),
        policy: TokenPolicy::default(),
        introspection_auth: IntrospectionAuth::Bearer,
        hash_cost: HashCost::OWASP,
        max_watch_streams: tessera::grpc::watch::DEFAULT_MAX_STREAMS,
        trusted_proxies: Vec::new(),
        limits: Default::default(),
        tls: None,
        cleanup_interval: tessera::domain::cleanup::DEFAULT_INTERVAL,
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new().await;
        let mut config = test_config(&db);
        tweak(&mut config);
        Self::spawn_on(Arc::new(db), config).await
    }

    /// A server whose clock moves only when the test says so ([`TestApp::advance`]). It starts
    /// at the real time, so that rows the admin functions stamp with the system clock (clients,
    /// users) agree with it until the test moves it.
    pub async fn spawn_with_manual_clock(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_with_manual_clock_behind(Duration::ZERO, tweak).await
    }

    /// [`TestApp::spawn_with_manual_clock`], its clock starting `behind` the real time: what
    /// it expires, the database's clock sees expired too (the log's clean-up asks both).
    pub async fn spawn_with_manual_clock_behind(
        behind: Duration,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let db = TestDb::new().await;
        let mut config = test_config(&db);
        tweak(&mut config);
        let start = now_ms() - i64::try_from(behind.as_millis()).unwrap_or(i64::MAX);
        let clock = ManualClock::starting_at(start);
        Self::spawn_on_clock(Arc::new(db), config, Some(clock), Arc::default()).await
    }

    /// Another instance on the same database, master key and clock.
    pub async fn sibling(&self) -> Self {
        Self::spawn_on_clock(
            self.db.clone(),
            self.config.clone(),
            self.clock.clone(),
            self.on_clock.clone(),
        )
        .await
    }

    pub async fn spawn_on(db: Arc<TestDb>, config: Config) -> Self {
        Self::spawn_on_clock(db, config, None, Arc::default()).await
    }

    async fn spawn_on_clock(
        db: Arc<TestDb>,
        config: Config,
        clock: Option<ManualClock>,
        on_clock: Arc<Mutex<Vec<Weak<TokenService>>>>,
    ) -> Self {
        let shared: SharedClock = match &clock {
            Some(clock) => Arc::new(clock.clone()),
            None => SystemClock::shared(),
        };
        let app = Application::build_with_clock(config.clone(), shared)
            .await
            .expect("application builds");
        let addr = app.local_addr();
        let http_addr = app.http_addr();
        let metrics_addr = app.metrics_addr();
        let tokens = app.tokens();
        on_clock.lock().expect("lock").push(Arc::downgrade(&tokens));
        let store = app.store();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let hasher = HashingPool::new(HashCost::OWASP, 2, Duration::from_secs(30)).expect("hasher");
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_lazy();
        Self {
            addr,
            http_addr,
            metrics_addr,
            tokens,
            store,
            db,
            config,
            clock,
            on_clock,
            hasher,
            channel,
            bearer: tokio::sync::OnceCell::new(),
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// The time the server reads, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        use tessera::domain::clock::Clock as _;
        self.clock.as_ref().map_or_else(now_ms, ManualClock::now_ms)
    }

    /// Moves the manual clock forward by `by`, as if that much time had passed, and brings the
    /// revocation view of every instance on the clock up to date, as their followers would have
    /// (a view more than 1.5 s behind the clock counts as stale; a follower's read that began
    /// before the move cannot make it stale again: a view's last read never goes backwards).
    pub async fn advance(&self, by: Duration) {
        let clock = self
            .clock
            .as_ref()
            .expect("advance needs TestApp::spawn_with_manual_clock");
        clock.advance(by);
        let instances: Vec<_> = self
            .on_clock
            .lock()
            .expect("lock")
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for tokens in instances {
            tokens
                .revocations()
                .refresh()
                .await
                .expect("the revocation view reads the log");
        }
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server exits cleanly");
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<HTTP listener>`: the `baseUrl` a Sharetribe SDK would be given.
    pub fn http_url(&self) -> String {
        let addr = self
            .http_addr
            .expect("the HTTP listener is on (TESSERA_HTTP_LISTEN)");
        format!("http://{addr}")
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub async fn client(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel())
    }

    /// Registers a client as the admin CLI would; returns its id and secret, if it has one.
    async fn register_client(
        &self,
        name: &str,
        kind: ClientKind,
        with_secret: bool,
    ) -> (String, Option<String>) {
        let created = clients::create_client(&self.store, name, kind, with_secret)
            .await
            .expect("create client");
        let secret = created
            .client_secret
            .map(|secret| secret.expose_secret().to_owned());
        (created.client_id, secret)
    }

    /// Registers a marketplace client without a secret; returns its id.
    pub async fn marketplace_client(&self) -> String {
        self.register_client("web", ClientKind::Marketplace, false)
            .await
            .0
    }

    /// Registers a marketplace client with a secret; returns id and secret.
    pub async fn marketplace_client_with_secret(&self) -> (String, String) {
        let (id, secret) = self
            .register_client("web+secret", ClientKind::Marketplace, true)
            .await;
        (id, secret.expect("secret"))
    }

    /// Registers an integration client; returns id and secret.
    pub async fn integration_client(&self) -> (String, String) {
        let (id, secret) = self
            .register_client("backend", ClientKind::Integration, false)
            .await;
        (id, secret.expect("secret"))
    }

    /// Disables a client behind the server's back, as `tessera client disable` does; `true`
    /// when it was enabled.
    pub async fn disable_client(&self, client_id: &str) -> bool {
        clients::disable_client(
            &self.store,
            client_id,
            self.config.policy.key_verification_window(),
        )
        .await
        .expect("disable client")
    }

    /// Gives a client a new secret, as `tessera client rotate-secret` does; returns it.
    pub async fn rotate_secret(&self, client_id: &str) -> String {
        clients::rotate_secret(&self.store, client_id)
            .await
            .expect("rotate secret")
            .expect("the client exists")
            .expose_secret()
            .to_owned()
    }

    pub async fn issue(
        &self,
        request: pb::IssueTokenRequest,
    ) -> Result<pb::IssueTokenResponse, Status> {
        self.client()
            .await
            .issue_token(request)
            .await
            .map(|r| r.into_inner())
    }

    /// RevokeToken.
    pub async fn revoke(
        &self,
        request: pb::RevokeTokenRequest,
    ) -> Result<pb::RevokeTokenResponse, Status> {
        AuthServiceClient::new(self.channel())
            .revoke_token(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// An anonymous `public-read` token for a new marketplace client.
    pub async fn anonymous_token(&self, client_id: &str) -> String {
        self.issue(client_credentials(client_id, ""))
            .await
            .expect("anonymous token")
            .access_token
    }

    /// A fresh integration client and its `integ` token response.
    pub async fn integration_login(&self) -> (String, String, pb::IssueTokenResponse) {
        let (id, secret) = self.integration_client().await;
        let response = self
            .issue(client_credentials(&id, &secret))
            .await
            .expect("integ token");
        (id, secret, response)
    }

    /// An `authorization` value for IntrospectToken: a new integration client's token.
    pub async fn introspection_bearer(&self) -> String {
        self.integration_login().await.2.access_token
    }

    pub async fn introspect_as(
        &self,
        bearer: Option<&str>,
        token: &str,
    ) -> Result<pb::IntrospectTokenResponse, Status> {
        introspect_on(&self.channel, bearer, token).await
    }

    /// Introspects as this app's integration caller (made on first use).
    pub async fn introspect(&self, token: &str) -> pb::IntrospectTokenResponse {
        let bearer = self
            .bearer
            .get_or_init(|| self.introspection_bearer())
            .await;
        self.introspect_as(Some(bearer), token)
            .await
            .expect("introspection answers OK")
    }
}

impl TestApp {
    /// Asserts that a token turns inactive within one second: what SPEC §4 promises for a
    /// revocation made anywhere else (another instance, or the CLI).
    pub async fn assert_inactive_within_a_second(&self, token: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let response = self.introspect(token).await;
            if response == pb::IntrospectTokenResponse::default() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still active a second later: {response:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Registers an end user; returns the user id.
    pub async fn user(&self, username: &str, password: &str) -> String {
        tessera::domain::users::create_user(
            &self.store,
            &self.hasher,
            username,
            password.to_owned().into(),
        )
        .await
        .expect("create user")
    }

    /// Registers an end user and logs in with the password grant: the user's login.
    pub async fn user_login(
        &self,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> pb::IssueTokenResponse {
        self.user(username, password).await;
        self.login(client_id, username, password)
            .await
            .expect("login")
    }

    /// Disables an end user, as `tessera user disable` does; `true` when it was enabled.
    pub async fn disable_user(&self, username: &str) -> bool {
        tessera::domain::users::disable_user(
            &self.store,
            username,
            self.config.policy.key_verification_window(),
        )
        .await
        .expect("disable user")
    }

    /// Sets an end user's password, as `tessera user set-password` does.
    pub async fn set_password(&self, username: &str, password: &str) {
        tessera::domain::users::set_password(
            &self.store,
            &self.hasher,
            username,
            password.to_owned().into(),
            self.config.policy.key_verification_window(),
        )
        .await
        .expect("set password");
    }

    /// A password grant request.
    pub async fn login(
        &self,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Result<pb::IssueTokenResponse, Status> {
        self.issue(password_grant(client_id, username, password))
            .await
    }

    /// A refresh grant request.
    pub async fn refresh(
        &self,
        client_id: &str,
        secret: &str,
        refresh_token: &str,
    ) -> Result<pb::IssueTokenResponse, Status> {
        self.issue(refresh_grant(client_id, secret, refresh_token))
            .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
