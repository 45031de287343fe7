//! What every fuzz target shares: one Tessera instance built in-process over a migrated SQLite
//! database in a temp directory (no port bound), a few clients, users and tokens made through
//! the library, and the checks every answer must pass (SPEC §4: no INTERNAL or UNKNOWN, every
//! error with an `ErrorInfo` of domain `tessera.auth`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    future::Future,
    sync::{Arc, OnceLock},
    time::Duration,
};

use arbitrary::Arbitrary;
use pasetors::{keys::AsymmetricSecretKey, version4::V4};
use secrecy::ExposeSecret;
use tessera::{
    config::{Config, IntrospectionAuth},
    domain::{
        TokenService,
        clients::{self, ClientKind},
        clock::SystemClock,
        hashing::HashCost,
        master_key::MasterKey,
        policy::TokenPolicy,
        users,
    },
    grpc::{
        auth_service::AuthServiceImpl,
        pb::{self, auth_service_server::AuthService},
    },
    server::build_token_service,
    store::Store,
};
use tessera::domain::repository::KeyRepository as _;
use tonic::{Code, Request, Status, metadata::MetadataValue};
use tonic_types::StatusExt;

/// The instance under test and the known-good values inputs can refer to.
pub struct Harness {
    pub runtime: tokio::runtime::Runtime,
    pub service: AuthServiceImpl,
    pub tokens: Arc<TokenService>,
    pub store: Store,
    /// The secret half of the signing key, to sign arbitrary payloads the way the ring does.
    pub signing_key: AsymmetricSecretKey<V4>,
    pub signing_kid: String,
    /// The master key, for targets that rotate the signing key.
    pub master_key: String,
    /// Client ids, secrets, usernames, passwords and tokens, indexed by [`Text::Known`].
    pub known: Vec<String>,
    _dir: tempfile::TempDir,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

/// The one harness of this process, built on first use.
pub fn harness() -> &'static Harness {
    HARNESS.get_or_init(Harness::build)
}

impl Harness {
    fn build() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let (master, master_text) = MasterKey::generate();
        let master_key = master_text.clone();
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            http_listen: None,
            metrics_listen: None,
            cors_origins: Default::default(),
            database_url: format!("sqlite://{}?mode=rwc", dir.path().join("fuzz.db").display()),
            master_key: Some(master_text.into()),
            // Long enough that the fixture tokens outlive a fuzz run; argon2 keeps its real cost.
            policy: TokenPolicy {
                access_token_ttl: Duration::from_secs(86_400),
                trusted_token_ttl: Duration::from_secs(86_400),
                ..TokenPolicy::default()
            },
            introspection_auth: IntrospectionAuth::Bearer,
            hash_cost: HashCost::OWASP,
            max_watch_streams: tessera::grpc::watch::DEFAULT_MAX_STREAMS,
            trusted_proxies: Vec::new(),
            limits: Default::default(),
            tls: None,
            // The harness keeps its fixtures for the whole run.
            cleanup_interval: Duration::ZERO,
        };
        let (store, tokens) = runtime
            .block_on(build_token_service(&config, SystemClock::shared()))
            .expect("token service");
        // What `serve` does in the background: keep the revocation view fresh, or introspection
        // rightly answers UNAVAILABLE after two seconds (making the fixtures may take longer).
        let follower = tokens.clone();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = follower.revocations().refresh().await;
            }
        });
        let known = runtime.block_on(fixtures(&store, &tokens));
        let (signing_key, signing_kid) = runtime.block_on(async {
            let row = store
                .list_signing_keys()
                .await
                .expect("keys")
                .into_iter()
                .next()
                .expect("a signing key");
            let opened = master
                .open(&row.sealed_secret_key, row.kid.as_bytes())
                .expect("open key");
            (
                AsymmetricSecretKey::<V4>::from(&opened).expect("secret key"),
                row.kid,
            )
        });
        let service = AuthServiceImpl::new(tokens.clone(), IntrospectionAuth::Bearer);
        Self {
            runtime,
            service,
            tokens,
            store,
            signing_key,
            signing_kid,
            master_key,
            known,
            _dir: dir,
        }
    }

    /// Runs a future to completion on the harness's runtime, failing on a hang.
    pub fn run<F: Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), work)
                .await
                .expect("the call hung for 20 s")
        })
    }

    pub fn known(&self, index: u8) -> &str {
        &self.known[usize::from(index) % self.known.len()]
    }
}

/// Clients, users and tokens made through the library, as a real deployment has them.
async fn fixtures(store: &Store, tokens: &Arc<TokenService>) -> Vec<String> {
    let hasher = tokens.hasher();
    let create = |name: &'static str, kind, with_secret| async move {
        let c = clients::create_client(store, name, kind, with_secret)
            .await
            .expect("client");
        (
            c.client_id,
            c.client_secret.map(|s| s.expose_secret().to_owned()),
        )
    };
    let (web, _) = create("web", ClientKind::Marketplace, false).await;
    let (web_s, web_secret) = create("web+secret", ClientKind::Marketplace, true).await;
    let web_secret = web_secret.expect("secret");
    let (integ, integ_secret) = create("backend", ClientKind::Integration, false).await;
    let integ_secret = integ_secret.expect("secret");
    let (gone, gone_secret) = create("disabled", ClientKind::Integration, false).await;
    let gone_secret = gone_secret.expect("secret");
    let password = "correct horse battery staple".to_owned();
    users::create_user(store, hasher, "alice@example.com", password.clone().into())
        .await
        .expect("user");
    users::create_user(store, hasher, "bob@example.com", password.clone().into())
        .await
        .expect("user");

    let service = AuthServiceImpl::new(tokens.clone(), IntrospectionAuth::Bearer);
    let issue = |req: pb::IssueTokenRequest| {
        let service = service.clone();
        async move {
            service
                .issue_token(Request::new(req))
                .await
                .expect("fixture token")
                .into_inner()
        }
    };
    let cc = |id: &str, secret: &str| pb::IssueTokenRequest {
        client_id: id.to_owned(),
        client_secret: secret.to_owned(),
        scope: String::new(),
        grant: Some(pb::issue_token_request::Grant::ClientCredentials(
            pb::ClientCredentialsGrant {},
        )),
    };
    let login = |id: &str, secret: &str, username: &str| pb::IssueTokenRequest {
        client_id: id.to_owned(),
        client_secret: secret.to_owned(),
        scope: String::new(),
        grant: Some(pb::issue_token_request::Grant::Password(
            pb::PasswordGrant {
                username: username.to_owned(),
                password: password.clone(),
            },
        )),
    };
    let anonymous = issue(cc(&web, "")).await;
    let integ_login = issue(cc(&integ, &integ_secret)).await;
    let gone_login = issue(cc(&gone, &gone_secret)).await;
    let alice = issue(login(&web_s, "", "alice@example.com")).await;
    let bob = issue(login(&web, "", "BOB@example.com ")).await;
    let trusted = issue(pb::IssueTokenRequest {
        client_id: web_s.clone(),
        client_secret: web_secret.clone(),
        scope: String::new(),
        grant: Some(pb::issue_token_request::Grant::TokenExchange(
            pb::TokenExchangeGrant {
                subject_token: alice.access_token.clone(),
                subject_token_type: tessera::grpc::request::ACCESS_TOKEN_TYPE.to_owned(),
            },
        )),
    })
    .await;
    let kept_for = tokens.policy().key_verification_window();
    clients::disable_client(store, &gone, kept_for)
        .await
        .expect("disable");
    users::disable_user(store, "bob@example.com", kept_for)
        .await
        .expect("disable");

    vec![
        web.clone(),                                      // 0
        web_s.clone(),                                    // 1
        web_secret,                                       // 2
        integ.clone(),                                    // 3
        integ_secret,                                     // 4
        gone,                                             // 5
        "alice@example.com".into(),                       // 6
        password,                                         // 7
        alice.access_token,                               // 8
        alice.refresh_token,                              // 9
        integ_login.access_token,                         // 10
        integ_login.refresh_token,                        // 11
        anonymous.access_token,                           // 12
        trusted.access_token,                             // 13
        tessera::grpc::request::ACCESS_TOKEN_TYPE.into(), // 14
        "user".into(),                                    // 15
        "integ".into(),                                   // 16
        "public-read".into(),                             // 17
        "trusted:user".into(),                            // 18
        bob.access_token,                                 // 19 (user disabled since)
        bob.refresh_token,                                // 20
        gone_login.access_token,                          // 21 (client disabled since)
        "bob@example.com".into(),                         // 22
        "v4.public.".into(),                              // 23
        uuid_like(),                                      // 24: unknown client id
    ]
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".into()
}

/// A string field as a fuzz input picks it: raw text, or one of the harness's known values,
/// possibly damaged or stretched past the size limits.
#[derive(Arbitrary, Debug, Clone)]
pub enum Text {
    Raw(String),
    Known(u8),
    /// A known value with one byte replaced (kept only when the result is still UTF-8).
    Damaged {
        known: u8,
        at: u16,
        byte: u8,
    },
    /// A known value with raw text appended.
    Extended {
        known: u8,
        tail: String,
    },
    /// A known value repeated, to cross the length limits.
    Repeated {
        known: u8,
        times: u8,
    },
}

impl Text {
    pub fn resolve(&self, h: &Harness) -> String {
        match self {
            Text::Raw(s) => s.clone(),
            Text::Known(i) => h.known(*i).to_owned(),
            Text::Damaged { known, at, byte } => {
                let mut bytes = h.known(*known).as_bytes().to_vec();
                if !bytes.is_empty() {
                    let at = usize::from(*at) % bytes.len();
                    bytes[at] = *byte;
                }
                String::from_utf8(bytes).unwrap_or_else(|_| h.known(*known).to_owned())
            }
            Text::Extended { known, tail } => format!("{}{tail}", h.known(*known)),
            Text::Repeated { known, times } => h.known(*known).repeat(usize::from(*times) * 8),
        }
    }
}

/// Request metadata: `authorization` and `x-forwarded-for`, as text or raw header bytes.
#[derive(Arbitrary, Debug, Clone)]
pub struct Metadata {
    pub authorization: Option<Header>,
    pub forwarded_for: Option<Header>,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Header {
    /// `<scheme> <token>`, scheme one of Bearer, bearer, BEARER, Basic, or none.
    Bearer {
        scheme: u8,
        token: Text,
    },
    Text(Text),
    Bytes(Vec<u8>),
}

impl Header {
    fn value(&self, h: &Harness) -> Vec<u8> {
        match self {
            Header::Bearer { scheme, token } => {
                let scheme = ["Bearer ", "bearer ", "BEARER  ", "Basic ", "", "Bearer\t"]
                    [usize::from(*scheme) % 6];
                format!("{scheme}{}", token.resolve(h)).into_bytes()
            }
            Header::Text(t) => t.resolve(h).into_bytes(),
            Header::Bytes(b) => b.clone(),
        }
    }
}

impl Metadata {
    /// Adds the headers to `req`; a value that is no valid header value is left out, as the
    /// HTTP/2 layer would have refused it before any handler ran.
    pub fn apply<T>(&self, h: &Harness, req: &mut Request<T>) {
        for (name, header) in [
            ("authorization", &self.authorization),
            ("x-forwarded-for", &self.forwarded_for),
        ] {
            if let Some(header) = header
                && let Ok(value) = MetadataValue::try_from(header.value(h).as_slice())
            {
                req.metadata_mut().insert(name, value);
            }
        }
    }
}

/// A request message as a fuzz input gives it: wire bytes decoded as the real server would,
/// or fields built from [`Text`]s.
#[derive(Arbitrary, Debug, Clone)]
pub enum Message<F> {
    Wire(Vec<u8>),
    Fields(F),
}

impl<F> Message<F> {
    /// The message, or `None` when the bytes are no valid encoding (tonic refuses those
    /// before any handler runs).
    pub fn decode<M: prost::Message + Default>(&self, fields: impl FnOnce(&F) -> M) -> Option<M> {
        match self {
            Message::Wire(bytes) if bytes.len() <= tessera::server::MAX_REQUEST_BYTES => {
                M::decode(bytes.as_slice()).ok()
            }
            Message::Wire(_) => None,
            Message::Fields(f) => Some(fields(f)),
        }
    }
}

/// One RPC's fuzz input: its message and the caller's metadata.
#[derive(Arbitrary, Debug, Clone)]
pub struct Input<F> {
    pub message: Message<F>,
    pub metadata: Metadata,
}

impl<F> Input<F> {
    /// The request the handler would get, or `None` when tonic would refuse the message
    /// before any handler runs.
    pub fn request<M: prost::Message + Default>(
        &self,
        h: &Harness,
        fields: impl FnOnce(&F) -> M,
    ) -> Option<Request<M>> {
        let mut request = Request::new(self.message.decode(fields)?);
        self.metadata.apply(h, &mut request);
        Some(request)
    }
}

/// SPEC §4: a handler's answer to any input is OK, or a status other than INTERNAL and
/// UNKNOWN carrying an `ErrorInfo` of domain `tessera.auth` (with `BadRequest` for
/// INVALID_ARGUMENT and `RetryInfo` for RESOURCE_EXHAUSTED), that echoes no secret.
pub fn check<T: std::fmt::Debug>(result: &Result<tonic::Response<T>, Status>, secrets: &[&str]) {
    let Err(status) = result else { return };
    assert!(
        !matches!(status.code(), Code::Internal | Code::Unknown),
        "a handler answered {status:?}"
    );
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "tessera.auth", "{status:?}");
    assert!(!info.reason.is_empty(), "{status:?}");
    match status.code() {
        Code::InvalidArgument => assert!(
            status.get_details_bad_request().is_some(),
            "no BadRequest in {status:?}"
        ),
        Code::ResourceExhausted => assert!(
            status.get_details_retry_info().is_some(),
            "no RetryInfo in {status:?}"
        ),
        _ => {}
    }
    // Tessera's own wording may contain what a fuzzed "secret" happens to be (a subject token
    // of `urn:ietf:params:oauth:token-type:access_token`): only what is left once every fixed
    // phrase is taken out could be an echo.
    let residue = MESSAGE_PHRASES
        .iter()
        .fold(status.message().to_owned(), |m, phrase| {
            m.replace(phrase, "\u{0}")
        });
    for secret in secrets.iter().filter(|s| s.len() >= 12) {
        assert!(
            !residue.contains(secret),
            "the status echoes a secret: {status:?}"
        );
    }
}

/// Every fixed phrase of Tessera's status messages, longest first.
const MESSAGE_PHRASES: &[&str] = &[
    "introspection requires `authorization: Bearer <access token of an integration client>`",
    "one of client_credentials, password, token_exchange, refresh_token is required",
    "introspection requires an active access token of an integration client",
    "must be empty or urn:ietf:params:oauth:token-type:access_token",
    "the requested scope is wider than the grant allows",
    "the service is temporarily unavailable; retry later",
    "must not contain control characters",
    "token_exchange.subject_token_type",
    "the token belongs to another client",
    "this client may not use this grant",
    "the grant is invalid, expired or revoked",
    "too many attempts; retry later",
    "must be a client id (a UUID)",
    "token_exchange.subject_token",
    "refresh_token.refresh_token",
    "client authentication failed",
    "must be at most 128 characters",
    "must be at most 4096 bytes",
    "must be at most 1024 bytes",
    "must be at most 320 bytes",
    "must be at most 256 bytes",
    "invalid request: ",
    "password.username",
    "password.password",
    "client_secret",
    "client_id",
    "is required",
    "internal error",
    "scope",
    "grant",
    "token",
];

/// RFC 7662: an inactive answer says nothing else.
pub fn check_introspection(result: &Result<tonic::Response<pb::IntrospectTokenResponse>, Status>) {
    check(result, &[]);
    if let Ok(response) = result {
        let response = response.get_ref();
        if !response.active {
            assert_eq!(
                response,
                &pb::IntrospectTokenResponse::default(),
                "an inactive answer with fields"
            );
        } else {
            assert!(response.expire_time.is_some() && response.issue_time.is_some());
        }
    }
}
