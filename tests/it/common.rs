//! The one test helper: the real server on 127.0.0.1:0 with a fresh database (a temp SQLite
//! file, or a fresh PostgreSQL database when TESSERA_TEST_DATABASE_URL is set), typed clients,
//! and assertions on statuses.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, Database};
use secrecy::ExposeSecret;
use tessera::{
    config::{Config, IntrospectionAuth},
    domain::{
        TokenService,
        clients::{self, ClientKind},
        hashing::{HashCost, HashingPool},
        master_key::MasterKey,
        policy::TokenPolicy,
        users,
    },
    grpc::pb::{self, auth_service_client::AuthServiceClient},
    server::Application,
    store::{self, Store},
};
use tokio::sync::oneshot;
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt;

/// A database of its own for one test; dropped (PostgreSQL) or deleted (SQLite) afterwards.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match std::env::var("TESSERA_TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let name = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(&admin_url)
                    .await
                    .expect("connect to TESSERA_TEST_DATABASE_URL");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                let url = tessera::store::with_database_name(&admin_url, &name);
                Self {
                    url,
                    dir,
                    postgres: Some((admin_url, name)),
                }
            }
            _ => {
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("tessera.db").display()
                );
                Self {
                    url,
                    dir,
                    postgres: None,
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// Drops the PostgreSQL database now, with the server still connected to it.
    pub async fn drop_now(&self) {
        if let Some((admin_url, name)) = &self.postgres {
            drop_database(admin_url, name).await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            // Drop cannot await: a short-lived runtime on its own thread does the work.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(drop_database(&admin_url, &name));
            })
            .join();
        }
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(admin) = Database::connect(admin_url).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        admin.close().await.ok();
    }
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub tokens: Arc<TokenService>,
    pub store: Store,
    pub db: Arc<TestDb>,
    pub config: Config,
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
        database_url: db.url.clone(),
        // SQLite runs on the dev-key default (a file beside the database); PostgreSQL needs one.
        master_key: db.is_postgres().then(|| MasterKey::generate().1.into()),
        policy: TokenPolicy::default(),
        introspection_auth: IntrospectionAuth::Bearer,
        hash_cost: HashCost::OWASP,
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

    /// Another instance on the same database and master key.
    pub async fn sibling(&self) -> Self {
        Self::spawn_on(self.db.clone(), self.config.clone()).await
    }

    pub async fn spawn_on(db: Arc<TestDb>, config: Config) -> Self {
        let app = Application::build(config.clone())
            .await
            .expect("application builds");
        let addr = app.local_addr();
        let tokens = app.tokens();
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
            tokens,
            store,
            db,
            config,
            hasher,
            channel,
            bearer: tokio::sync::OnceCell::new(),
            stop: Some(stop),
            server: Some(server),
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

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub async fn client(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel())
    }

    /// Registers a marketplace client without a secret; returns its id.
    pub async fn marketplace_client(&self) -> String {
        clients::create_client(
            &self.store,
            &self.hasher,
            "web",
            ClientKind::Marketplace,
            false,
        )
        .await
        .expect("create marketplace client")
        .client_id
    }

    /// Registers a marketplace client with a secret; returns id and secret.
    pub async fn marketplace_client_with_secret(&self) -> (String, String) {
        let c = clients::create_client(
            &self.store,
            &self.hasher,
            "web+secret",
            ClientKind::Marketplace,
            true,
        )
        .await
        .expect("create marketplace client");
        (
            c.client_id,
            c.client_secret.expect("secret").expose_secret().to_owned(),
        )
    }

    /// Registers an integration client; returns id and secret.
    pub async fn integration_client(&self) -> (String, String) {
        let c = clients::create_client(
            &self.store,
            &self.hasher,
            "backend",
            ClientKind::Integration,
            false,
        )
        .await
        .expect("create integration client");
        (
            c.client_id,
            c.client_secret.expect("secret").expose_secret().to_owned(),
        )
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

pub fn password_grant(client_id: &str, username: &str, password: &str) -> pb::IssueTokenRequest {
    pb::IssueTokenRequest {
        client_id: client_id.to_owned(),
        grant: Some(pb::issue_token_request::Grant::Password(
            pb::PasswordGrant {
                username: username.to_owned(),
                password: password.to_owned(),
            },
        )),
        ..Default::default()
    }
}

pub fn refresh_grant(client_id: &str, secret: &str, refresh_token: &str) -> pb::IssueTokenRequest {
    pb::IssueTokenRequest {
        client_id: client_id.to_owned(),
        client_secret: secret.to_owned(),
        grant: Some(pb::issue_token_request::Grant::RefreshToken(
            pb::RefreshTokenGrant {
                refresh_token: refresh_token.to_owned(),
            },
        )),
        ..Default::default()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn client_credentials(client_id: &str, secret: &str) -> pb::IssueTokenRequest {
    pb::IssueTokenRequest {
        client_id: client_id.to_owned(),
        client_secret: secret.to_owned(),
        scope: String::new(),
        grant: Some(pb::issue_token_request::Grant::ClientCredentials(
            pb::ClientCredentialsGrant {},
        )),
    }
}

/// Asserts a status's code, its ErrorInfo reason and domain.
pub fn assert_error(
    result: Result<impl std::fmt::Debug, Status>,
    code: Code,
    reason: &str,
) -> Status {
    let status = result.expect_err("expected an error status");
    assert_eq!(status.code(), code, "status: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "status: {status:?}");
    assert_eq!(info.domain, "tessera.auth");
    status
}

/// Asserts an introspection answer is exactly `active: false` with nothing else.
pub fn assert_inactive(response: &pb::IntrospectTokenResponse) {
    assert_eq!(
        response,
        &pb::IntrospectTokenResponse::default(),
        "expected active: false and nothing else"
    );
}

/// A real `tessera serve` process on port 0, logging JSON to a file in the test's directory.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub addr: String,
    log_path: std::path::PathBuf,
}

impl ServeProcess {
    /// Starts `tessera serve` and reads the bound address from its own log line.
    pub fn start(db: &TestDb, master_key: &str, rust_log: &str) -> Self {
        use std::process::{Command, Stdio};
        let log_path = db
            .dir
            .path()
            .join(format!("serve-{}.log", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.arg("serve")
            .env("TESSERA_DATABASE_URL", &db.url)
            .env("TESSERA_LISTEN", "127.0.0.1:0")
            .env("TESSERA_LOG_FORMAT", "json")
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(log);
        if !master_key.is_empty() {
            cmd.env("TESSERA_MASTER_KEY", master_key);
        }
        let mut server = Self {
            child: cmd.spawn().expect("spawn tessera"),
            addr: String::new(),
            log_path,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = server.log();
            if let Some(line) = text
                .lines()
                .find(|l| l.contains("serving tessera.auth.v1.AuthService"))
            {
                let v: serde_json::Value = serde_json::from_str(line).expect("json log line");
                server.addr = v["fields"]["addr"].as_str().expect("addr field").to_owned();
                return server;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A channel to the process.
    pub fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect_lazy()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a test registers behind a `tessera serve` process's back, through the library.
pub struct Fixture {
    pub integration: (String, String),
    pub marketplace: String,
    pub usernames: Vec<String>,
}

pub const PASSWORD: &str = "correct horse battery staple";

pub async fn register(db: &TestDb, users_wanted: usize) -> Fixture {
    let store = Store::new(store::connect(&db.url).await.expect("connect"));
    let hasher = HashingPool::new(HashCost::OWASP, 2, Duration::from_secs(30)).expect("hasher");
    let integ = clients::create_client(&store, &hasher, "jobs", ClientKind::Integration, false)
        .await
        .expect("integration client");
    let market = clients::create_client(&store, &hasher, "web", ClientKind::Marketplace, false)
        .await
        .expect("marketplace client");
    let mut usernames = Vec::new();
    for i in 0..users_wanted {
        let username = format!("user{i}@example.com");
        users::create_user(&store, &hasher, &username, PASSWORD.to_owned().into())
            .await
            .expect("user");
        usernames.push(username);
    }
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

/// The ErrorInfo reason of a status, or "" when it has none.
pub fn reason_of(status: &Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// IntrospectToken on any channel, as the holder of `bearer` (or as nobody).
pub async fn introspect_on(
    channel: &Channel,
    bearer: Option<&str>,
    token: &str,
) -> Result<pb::IntrospectTokenResponse, Status> {
    let mut request = Request::new(pb::IntrospectTokenRequest {
        token: token.to_owned(),
        token_type_hint: 0,
    });
    if let Some(bearer) = bearer {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {bearer}").parse().expect("header"),
        );
    }
    AuthServiceClient::new(channel.clone())
        .introspect_token(request)
        .await
        .map(|r| r.into_inner())
}

/// A RevokeToken request.
pub fn revoke_request(client_id: &str, secret: &str, token: &str) -> pb::RevokeTokenRequest {
    pb::RevokeTokenRequest {
        token: token.into(),
        token_type_hint: 0,
        client_id: client_id.into(),
        client_secret: secret.into(),
    }
}
