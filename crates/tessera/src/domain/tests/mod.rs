//! The domain's unit tests: every grant, introspection, revocation, the key ring and the
//! revocation view, on the in-memory repository and a manual clock. No database, no socket,
//! no sleep: time passes when a test moves the clock.
mod grants;
mod introspection;
mod keyring;
mod revocation;
mod revocation_view;

use std::{sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};

use super::{
    DomainError, TokenService,
    clients::{self, ClientKind},
    clock::ManualClock,
    hashing::{HashCost, HashingPool},
    keyring::KeyRing,
    master_key::MasterKey,
    memory_repository::MemoryRepository,
    policy::TokenPolicy,
    repository::SharedRepository,
    revocation_view::RevocationView,
    service::{ActiveToken, Grant, IssueRequest, IssuedToken},
    users,
};

const PASSWORD: &str = "correct horse battery staple";

/// One instance's domain over an in-memory database.
struct World {
    repo: Arc<MemoryRepository>,
    /// Starts at the system time (what the CLI-side functions, such as disabling a user,
    /// stamp their changes with), then moves only when a test moves it.
    clock: ManualClock,
    /// The clock's first reading.
    start: i64,
    hasher: HashingPool,
    /// The master key, as `TESSERA_MASTER_KEY` would hold it.
    master_key: String,
    tokens: TokenService,
}

impl World {
    async fn new() -> Self {
        Self::with_policy(TokenPolicy::default()).await
    }

    async fn with_policy(policy: TokenPolicy) -> Self {
        let repo = Arc::new(MemoryRepository::default());
        let start = super::clock::now_ms();
        let clock = ManualClock::starting_at(start);
        let master_key = MasterKey::generate().1;
        let hasher = HashingPool::new(HashCost::OWASP, 2, Duration::from_secs(30))
            .expect("argon2 parameters");
        let tokens = Self::instance(&repo, &clock, &hasher, &master_key, policy).await;
        Self {
            repo,
            clock,
            start,
            hasher,
            master_key,
            tokens,
        }
    }

    /// Another instance on the same database and clock (what a second server would be).
    async fn sibling(&self) -> TokenService {
        Self::instance(
            &self.repo,
            &self.clock,
            &self.hasher,
            &self.master_key,
            self.tokens.policy().clone(),
        )
        .await
    }

    async fn instance(
        repo: &Arc<MemoryRepository>,
        clock: &ManualClock,
        hasher: &HashingPool,
        master_key: &str,
        policy: TokenPolicy,
    ) -> TokenService {
        let master = MasterKey::from_base64(master_key).expect("master key");
        let shared: SharedRepository = repo.clone();
        let clock = Arc::new(clock.clone());
        let window = policy.key_verification_window();
        let keys = KeyRing::open(shared.clone(), master, window, clock.clone())
            .await
            .expect("key ring");
        let revoked = RevocationView::load(shared.clone(), window, clock.clone())
            .await
            .expect("revocation view");
        TokenService::new(shared, keys, hasher.clone(), policy, revoked, clock)
    }

    /// How long revocations are kept: the longest a token lives, plus the leeway.
    fn kept_for(&self) -> Duration {
        self.tokens.policy().key_verification_window()
    }

    fn master(&self) -> MasterKey {
        MasterKey::from_base64(&self.master_key).expect("master key")
    }

    /// Moves the clock, then polls the revocation log as the follower job would at that
    /// moment (a failed poll leaves the view to turn stale, which some tests want).
    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        let _ = self.tokens.revocations().refresh().await;
    }

    async fn marketplace_client(&self) -> String {
        clients::create_client(&*self.repo, "web", ClientKind::Marketplace, false)
            .await
            .expect("marketplace client")
            .client_id
    }

    async fn marketplace_client_with_secret(&self) -> (String, String) {
        let created = clients::create_client(&*self.repo, "ssr", ClientKind::Marketplace, true)
            .await
            .expect("marketplace client");
        let secret = created.client_secret.expect("secret");
        (created.client_id, secret.expose_secret().to_owned())
    }

    async fn integration_client(&self) -> (String, String) {
        let created = clients::create_client(&*self.repo, "jobs", ClientKind::Integration, false)
            .await
            .expect("integration client");
        let secret = created.client_secret.expect("secret");
        (created.client_id, secret.expose_secret().to_owned())
    }

    async fn user(&self, username: &str) -> String {
        users::create_user(
            &*self.repo,
            &self.hasher,
            username,
            PASSWORD.to_owned().into(),
        )
        .await
        .expect("user")
    }

    /// A new integration client and its `integ` token response.
    async fn integration_login(&self) -> (String, String, IssuedToken) {
        let (client, secret) = self.integration_client().await;
        let issued = self
            .issue(&client, Some(&secret), Grant::ClientCredentials)
            .await
            .expect("integ token");
        (client, secret, issued)
    }

    /// A new marketplace client whose user `username` logged in once, and that login.
    async fn user_login(&self, username: &str) -> (String, IssuedToken) {
        let client = self.marketplace_client().await;
        self.user(username).await;
        let login = self
            .login(&client, username, PASSWORD)
            .await
            .expect("login");
        (client, login)
    }

    async fn issue(
        &self,
        client_id: &str,
        secret: Option<&str>,
        grant: Grant,
    ) -> Result<IssuedToken, DomainError> {
        self.tokens.issue(request(client_id, secret, grant)).await
    }

    async fn login(
        &self,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Result<IssuedToken, DomainError> {
        self.issue(client_id, None, password_grant(username, password))
            .await
    }

    async fn introspect(&self, token: &str) -> Option<ActiveToken> {
        self.tokens
            .introspect(token)
            .await
            .expect("introspection answers")
    }
}

fn request(client_id: &str, secret: Option<&str>, grant: Grant) -> IssueRequest {
    IssueRequest {
        client_id: client_id.to_owned(),
        client_secret: secret.map(|s| SecretString::from(s.to_owned())),
        scope: String::new(),
        grant,
        end_user_address: None,
    }
}

fn password_grant(username: &str, password: &str) -> Grant {
    Grant::Password {
        username: username.to_owned(),
        password: password.to_owned().into(),
    }
}

fn refresh_grant(refresh_token: &str) -> Grant {
    Grant::RefreshToken {
        refresh_token: refresh_token.to_owned().into(),
    }
}

fn exchange_grant(subject_token: &str) -> Grant {
    Grant::TokenExchange {
        subject_token: subject_token.to_owned().into(),
        subject_token_type: super::service::ACCESS_TOKEN_TYPE.to_owned(),
    }
}

fn assert_reason<T: std::fmt::Debug>(result: Result<T, DomainError>, reason: &str) {
    let err = result.expect_err("an error");
    assert_eq!(err.reason(), reason, "{err:?}");
}
