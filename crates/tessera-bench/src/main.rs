//! tessera-bench: a gRPC load generator for Tessera.
//!
//! Starts its own server in-process (a temp SQLite file, or a fresh PostgreSQL database made
//! through `--database-url` and dropped at the end) or targets a running one (`--target`, which
//! also needs that server's `--database-url` to register the benchmark's clients and users).
//! Each scenario runs `--concurrency` in-flight requests spread over `--connections` HTTP/2
//! connections, for a warm-up and then a fixed, timed window; it reports req/s, p50/p99/max
//! latency and the count of every non-OK status, each also as a ratio to the grpc.health Check
//! baseline measured in the same run.
//!
//! cargo run --release -p tessera-bench -- --duration 10s --warmup 2s
mod soak;

/// The same allocator as the `tessera` binary, so that the in-process server behaves alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    collections::BTreeMap,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use clap::{Parser, ValueEnum};
use secrecy::ExposeSecret;
use serde_json::json;
use tessera::{
    config::{Config, IntrospectionAuth, redact_url},
    domain::{
        clients::{ClientKind, create_client},
        hashing::{HashCost, HashingPool},
        master_key::MasterKey,
        policy::TokenPolicy,
    },
    grpc::pb::auth_service_client::AuthServiceClient,
    server::Application,
    store::{self, Backend, Store},
};
use tessera_testkit::{
    TestDb, client_credentials, create_users, describe, introspect_request, password_grant,
    refresh_grant,
};
use tokio::{sync::oneshot, task::JoinSet};
use tonic::{
    Code, Status,
    metadata::{Ascii, MetadataValue},
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

/// The scenarios, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Scenario {
    /// grpc.health.v1.Health/Check: the baseline, always run first.
    Health,
    /// IntrospectToken on one anonymous token, again and again.
    IntrospectHot,
    /// IntrospectToken cycling over --distinct-tokens anonymous tokens.
    IntrospectDistinct,
    /// IssueToken, client_credentials of a marketplace client (public-read).
    IssueAnonymous,
    /// IssueToken, client_credentials of an integration client (integ, starts a session).
    IssueIntegration,
    /// IssueToken, password grant with the right password (argon2id).
    Password,
    /// IssueToken, refresh grant: every slot rotates its own user session.
    Refresh,
    /// The weighted mix of MIX.
    Mixed,
    /// IntrospectToken (hot) from most slots while LOGIN_SLOTS slots log in without pause,
    /// keeping the hashing pool saturated: the latency shown is introspection's alone.
    IntrospectUnderLogins,
}

/// Slots that log in, again and again, in introspect-under-logins: four times the hashing
/// threads of a 2-core machine, so the pool never idles.
const LOGIN_SLOTS: usize = 8;

impl Scenario {
    const ALL: [Self; 9] = [
        Self::Health,
        Self::IntrospectHot,
        Self::IntrospectDistinct,
        Self::IssueAnonymous,
        Self::IssueIntegration,
        Self::Password,
        Self::Refresh,
        Self::Mixed,
        Self::IntrospectUnderLogins,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::IntrospectHot => "introspect-hot",
            Self::IntrospectDistinct => "introspect-distinct",
            Self::IssueAnonymous => "issue-anonymous",
            Self::IssueIntegration => "issue-integration",
            Self::Password => "password",
            Self::Refresh => "refresh",
            Self::Mixed => "mixed",
            Self::IntrospectUnderLogins => "introspect-under-logins",
        }
    }

    /// The one operation of a plain scenario; `None` for the mix.
    fn op(self) -> Option<Op> {
        Some(match self {
            Self::Health => Op::Health,
            Self::IntrospectHot => Op::IntrospectHot,
            Self::IntrospectDistinct => Op::IntrospectDistinct,
            Self::IssueAnonymous => Op::IssueAnonymous,
            Self::IssueIntegration => Op::IssueIntegration,
            Self::Password => Op::Password,
            Self::Refresh => Op::Refresh,
            Self::Mixed | Self::IntrospectUnderLogins => return None,
        })
    }

    fn needs_distinct_tokens(self) -> bool {
        matches!(self, Self::IntrospectDistinct | Self::Mixed)
    }

    fn needs_users(self) -> bool {
        matches!(
            self,
            Self::Password | Self::Refresh | Self::Mixed | Self::IntrospectUnderLogins
        )
    }

    fn needs_sessions(self) -> bool {
        matches!(self, Self::Refresh | Self::Mixed)
    }
}

/// One request kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Health,
    IntrospectHot,
    IntrospectDistinct,
    IssueAnonymous,
    IssueIntegration,
    Password,
    Refresh,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::IntrospectHot => "introspect-hot",
            Self::IntrospectDistinct => "introspect-distinct",
            Self::IssueAnonymous => "issue-anonymous",
            Self::IssueIntegration => "issue-integration",
            Self::Password => "password",
            Self::Refresh => "refresh",
        }
    }
}

/// The mixed load, in percent: what an auth service mostly does is answer introspections.
const MIX: [(Op, u64); 5] = [
    (Op::IntrospectHot, 35),
    (Op::IntrospectDistinct, 35),
    (Op::IssueAnonymous, 15),
    (Op::Refresh, 10),
    (Op::Password, 5),
];

fn mix_description() -> String {
    MIX.iter()
        .map(|(op, w)| format!("{w}% {}", op.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Load generator for Tessera's gRPC API.
#[derive(Parser, Debug)]
#[command(name = "tessera-bench", version)]
struct Args {
    /// Scenarios to run, comma-separated (health always runs first, as the baseline).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Option<Vec<Scenario>>,
    /// Timed window of each scenario.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Untimed warm-up before each scenario's window.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// HTTP/2 connections to the server.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Requests in flight in total, spread over the connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// In-process server on this database (postgres://ADMIN-URL: a fresh database is made and
    /// dropped); with --target, the target server's database. Default: a temp SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// HOST:PORT of a running server instead of an in-process one (needs --database-url).
    #[arg(long)]
    target: Option<String>,
    /// Anonymous tokens issued before the run for introspect-distinct and mixed.
    #[arg(long, default_value_t = 100_000)]
    distinct_tokens: usize,
    /// Print one JSON object with all results on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// Instead of the scenarios, a soak of this length (e.g. 10m): a mix that should give no
    /// error, with VmRSS, req/s and table sizes sampled; fails when the error rate reaches
    /// 0.1% or RSS grows 10% after --soak-warmup. The in-process server then runs with short
    /// token lifetimes (access 30s, refresh 1m, session 90s) and a clean-up every 10s, so that
    /// its tables reach their steady size within about 2.5 minutes.
    #[arg(long, value_parser = humantime::parse_duration)]
    soak: Option<Duration>,
    /// Soak: RSS growth is measured on the samples from this point on, as the peak of their
    /// second half over the peak of their first half. Default: 2m, or half the soak if that is
    /// shorter.
    #[arg(long, value_parser = humantime::parse_duration)]
    soak_warmup: Option<Duration>,
    /// Soak: the RSS growth, in percent, at which the soak fails. Growth means something only
    /// once the tables have reached their steady size (about 2.5 minutes in): a shorter soak,
    /// such as CI's, checks errors and passes a high limit here.
    #[arg(long, default_value_t = 10.0)]
    soak_max_rss_growth: f64,
    /// Soak: how often req/s, VmRSS and table sizes are sampled (one line each).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    sample_every: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.connections == 0 || args.concurrency == 0 {
        bail!("--connections and --concurrency must be at least 1");
    }
    if args.duration.is_zero() {
        bail!("--duration must be more than 0s");
    }
    let scenarios = scenario_list(args.scenarios.as_deref());
    if args.distinct_tokens == 0 && scenarios.iter().any(|s| s.needs_distinct_tokens()) {
        bail!("--distinct-tokens must be at least 1 for introspect-distinct and mixed");
    }
    let mut db = BenchDb::prepare(&args).await?;
    let outcome = tokio::select! {
        result = bench(&args, &scenarios, &db) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    db.cleanup().await;
    outcome
}

/// The scenarios to run: health first, then the rest in their canonical order, each once.
fn scenario_list(requested: Option<&[Scenario]>) -> Vec<Scenario> {
    let mut list: Vec<Scenario> = requested.map_or_else(|| Scenario::ALL.to_vec(), <[_]>::to_vec);
    list.push(Scenario::Health);
    list.sort();
    list.dedup();
    list
}

// ---------------------------------------------------------------------------------------------
// The database: a temp SQLite file, a fresh PostgreSQL database, or the target server's one.

struct BenchDb {
    url: String,
    kind: String,
    /// The temp SQLite file or fresh PostgreSQL database made for this run, removed at the end.
    own: Option<TestDb>,
}

impl BenchDb {
    async fn prepare(args: &Args) -> anyhow::Result<Self> {
        if args.target.is_some() {
            let Some(url) = args.database_url.clone() else {
                bail!(
                    "--target needs --database-url of that server's database (the benchmark registers its clients and users there)"
                );
            };
            if Backend::of_url(&url).is_none() {
                bail!(
                    "unsupported --database-url {}: expected sqlite://... or postgres://...",
                    redact_url(&url)
                );
            }
            return Ok(Self {
                kind: format!("target's {}", backend_name(&url)),
                url,
                own: None,
            });
        }
        match args.database_url.as_deref() {
            None => {
                let db = TestDb::create(None).await?;
                Ok(Self {
                    url: db.url.clone(),
                    kind: "sqlite (temp file)".into(),
                    own: Some(db),
                })
            }
            Some(url) => match Backend::of_url(url) {
                Some(Backend::Sqlite) => Ok(Self {
                    url: url.to_owned(),
                    kind: "sqlite".into(),
                    own: None,
                }),
                Some(Backend::Postgres) => {
                    let db = TestDb::create(Some(url)).await.with_context(|| {
                        format!("cannot make a fresh database at {}", redact_url(url))
                    })?;
                    Ok(Self {
                        url: db.url.clone(),
                        kind: format!(
                            "postgres (fresh database {})",
                            db.postgres_name().unwrap_or_default()
                        ),
                        own: Some(db),
                    })
                }
                None => bail!(
                    "unsupported --database-url {}: expected sqlite://... or postgres://...",
                    redact_url(url)
                ),
            },
        }
    }

    /// Drops the database made for this run (PostgreSQL) or deletes its temp file (SQLite).
    async fn cleanup(&mut self) {
        if let Some(db) = self.own.take() {
            db.drop_now().await;
            if let Some(name) = db.postgres_name() {
                eprintln!("dropped the database {name}");
            }
        }
    }
}

fn backend_name(url: &str) -> &'static str {
    match Backend::of_url(url) {
        Some(Backend::Sqlite) => "sqlite",
        Some(Backend::Postgres) => "postgres",
        None => "unknown",
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

/// A server started in-process, and how to stop it.
struct InProcess {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    async fn stop(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(15), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("tessera-bench: warning: the server failed: {e:#}"),
            Ok(Err(e)) => eprintln!("tessera-bench: warning: the server task failed: {e}"),
            Err(_) => eprintln!("tessera-bench: warning: the server did not stop within 15s"),
        }
    }
}

async fn bench(args: &Args, scenarios: &[Scenario], db: &BenchDb) -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (addr, store, server) = match &args.target {
        Some(target) => {
            let conn = store::connect(&db.url).await.with_context(|| {
                format!("cannot open the target's database {}", redact_url(&db.url))
            })?;
            (target.clone(), Store::new(conn), None)
        }
        None => {
            let config = Config {
                listen: "127.0.0.1:0".parse()?,
                database_url: db.url.clone(),
                master_key: Some(MasterKey::generate().1.into()),
                policy: if args.soak.is_some() {
                    soak::policy()
                } else {
                    TokenPolicy::default()
                },
                introspection_auth: IntrospectionAuth::Bearer,
                hash_cost: HashCost::OWASP,
                cleanup_interval: if args.soak.is_some() {
                    soak::CLEANUP_INTERVAL
                } else {
                    tessera::domain::cleanup::DEFAULT_INTERVAL
                },
            };
            let app = Application::build(config)
                .await
                .context("cannot start the in-process server")?;
            let (addr, store) = (app.local_addr().to_string(), app.store());
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(app.run_until(async move {
                let _ = stopped.await;
            }));
            (addr, store, Some(InProcess { stop, task }))
        }
    };
    let result = bench_against(args, scenarios, db, cpus, &addr, &store).await;
    if let Some(server) = server {
        server.stop().await;
    }
    store.connection().clone().close().await.ok();
    result
}

async fn bench_against(
    args: &Args,
    scenarios: &[Scenario],
    db: &BenchDb,
    cpus: usize,
    addr: &str,
    store: &Store,
) -> anyhow::Result<()> {
    let in_process = args.target.is_none();
    let setup_started = Instant::now();
    let channels = connect(addr, args.connections).await?;
    let health = HealthClient::new(channels[0].clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|s| anyhow!("the server at {addr} does not answer health checks: {s}"))?
        .into_inner();
    if health.status != ServingStatus::Serving as i32 {
        bail!(
            "the server at {addr} reports {:?}, not SERVING",
            ServingStatus::try_from(health.status).unwrap_or(ServingStatus::Unknown)
        );
    }

    // Clients and users, through the library.
    let hasher = HashingPool::new(HashCost::OWASP, cpus, Duration::from_secs(120))
        .map_err(|e| anyhow!("invalid argon2 parameters: {e}"))?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let market_id = create_client(
        store,
        &hasher,
        &format!("tessera-bench-{run_id}-web"),
        ClientKind::Marketplace,
        false,
    )
    .await
    .context("cannot register the marketplace client")?
    .client_id;
    let integ = create_client(
        store,
        &hasher,
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
    let integ_id = integ.client_id;
    let password = format!("bench-password-{run_id}");
    let user_count = args.concurrency.clamp(1, 256);
    let mut fixture = Fixture {
        market_id,
        integ_id,
        integ_secret,
        password,
        usernames: Vec::new(),
        bearer: MetadataValue::from_static("Bearer none"),
        hot_token: String::new(),
        distinct: Arc::new(Vec::new()),
    };
    refresh_credentials(&mut fixture, &channels[0]).await?;
    eprintln!(
        "setup: 2 clients, introspection bearer, hot token in {:.2}s",
        setup_started.elapsed().as_secs_f64()
    );

    let rss_at_rest = rss_kib();
    eprintln!(
        "machine: {cpus} CPUs; database: {}; server: {}; {} connections, {} in flight; {}",
        db.kind,
        if in_process {
            format!("in-process on {addr}")
        } else {
            format!("target {addr}")
        },
        args.connections,
        args.concurrency,
        match args.soak {
            Some(length) => format!("soak of {}", humantime::format_duration(length)),
            None => format!(
                "{} warm-up + {} window per scenario",
                humantime::format_duration(args.warmup),
                humantime::format_duration(args.duration)
            ),
        },
    );

    if let Some(length) = args.soak {
        let usernames = create_users(
            store,
            &hasher,
            &format!("bench-{run_id}-soak"),
            user_count,
            &fixture.password,
        )
        .await?;
        return soak::run(args, length, &mut fixture, &channels, store, usernames).await;
    }

    let mut distinct_issued: Option<(Instant, Duration)> = None;
    let mut distinct_setup = None;
    let mut results = Vec::new();
    for &scenario in scenarios {
        // Fresh bearer and hot token for every scenario, so that long runs never outlive them.
        refresh_credentials(&mut fixture, &channels[0]).await?;
        if scenario.needs_distinct_tokens() {
            let needed = args.warmup + args.duration + Duration::from_secs(30);
            let stale = distinct_issued.is_none_or(|(at, ttl)| at.elapsed() + needed > ttl);
            if stale {
                let started = Instant::now();
                let (tokens, ttl) = issue_distinct(&fixture, &channels, args).await?;
                let took = started.elapsed();
                eprintln!(
                    "issued {} distinct anonymous tokens in {:.2}s ({:.0}/s)",
                    tokens.len(),
                    took.as_secs_f64(),
                    tokens.len() as f64 / took.as_secs_f64().max(1e-9)
                );
                distinct_setup.get_or_insert((tokens.len(), took));
                fixture.distinct = Arc::new(tokens);
                distinct_issued = Some((started, ttl));
            }
        }
        if scenario.needs_users() {
            // Fresh users for every scenario that logs in, so that one scenario's throttle
            // state never leaks into the next.
            let started = Instant::now();
            fixture.usernames = create_users(
                store,
                &hasher,
                &format!("bench-{run_id}-{}", scenario.name()),
                user_count,
                &fixture.password,
            )
            .await?;
            eprintln!(
                "registered {user_count} users for {} in {:.2}s",
                scenario.name(),
                started.elapsed().as_secs_f64()
            );
        }
        eprintln!("running {} ...", scenario.name());
        let result = run_scenario(scenario, &fixture, &channels, args, cpus).await?;
        results.push(ScenarioResult {
            rss_kib: rss_kib(),
            ..result
        });
        if let Some(r) = results.last() {
            eprintln!(
                "  {}: {:.0} req/s, p50 {} ms, p99 {} ms{}",
                r.name,
                r.rate(),
                sig3(r.p50_ms),
                sig3(r.p99_ms),
                if r.errors.is_empty() {
                    String::new()
                } else {
                    format!(", NON-OK: {}", r.error_summary())
                }
            );
        }
    }

    let report = Report {
        cpus,
        database: &db.kind,
        in_process,
        connections: args.connections,
        concurrency: args.concurrency,
        duration: args.duration,
        warmup: args.warmup,
        users: user_count,
        distinct_setup,
        rss_at_rest,
        results: &results,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        report.print_table();
    }
    report.print_findings(args.json);
    Ok(())
}

async fn connect(addr: &str, connections: usize) -> anyhow::Result<Vec<Channel>> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(uri.clone())
        .with_context(|| format!("invalid server address {addr}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(
            endpoint
                .connect()
                .await
                .with_context(|| format!("cannot connect to {uri}"))?,
        );
    }
    Ok(channels)
}

// ---------------------------------------------------------------------------------------------
// What the load needs: clients, users, tokens.

struct Fixture {
    market_id: String,
    integ_id: String,
    integ_secret: String,
    password: String,
    usernames: Vec<String>,
    /// `Bearer <integ access token>` for IntrospectToken.
    bearer: MetadataValue<Ascii>,
    hot_token: String,
    distinct: Arc<Vec<String>>,
}

/// A new introspection bearer and hot token, checked once.
async fn refresh_credentials(fixture: &mut Fixture, channel: &Channel) -> anyhow::Result<()> {
    let mut auth = AuthServiceClient::new(channel.clone());
    let integ = auth
        .issue_token(client_credentials(&fixture.integ_id, &fixture.integ_secret))
        .await
        .map_err(|s| {
            anyhow!(
                "cannot get an integ token for the introspection caller: {}",
                describe(&s)
            )
        })?
        .into_inner();
    fixture.bearer = format!("Bearer {}", integ.access_token)
        .parse()
        .context("the integ access token is not a valid header value")?;
    fixture.hot_token = auth
        .issue_token(client_credentials(&fixture.market_id, ""))
        .await
        .map_err(|s| anyhow!("cannot get an anonymous token: {}", describe(&s)))?
        .into_inner()
        .access_token;
    let answer = auth
        .introspect_token(introspect_request(&fixture.bearer, &fixture.hot_token))
        .await
        .map_err(|s| anyhow!("the hot token does not introspect: {}", describe(&s)))?
        .into_inner();
    if !answer.active {
        bail!("a token just issued introspects as inactive");
    }
    Ok(())
}

/// Issues `--distinct-tokens` anonymous tokens over every connection at once; returns them and
/// their lifetime.
async fn issue_distinct(
    fixture: &Fixture,
    channels: &[Channel],
    args: &Args,
) -> anyhow::Result<(Vec<String>, Duration)> {
    let total = args.distinct_tokens;
    let next = Arc::new(AtomicUsize::new(0));
    let market_id = Arc::new(fixture.market_id.clone());
    let mut tasks = JoinSet::new();
    for slot in 0..args.concurrency.min(total) {
        let mut auth = AuthServiceClient::new(channels[slot % channels.len()].clone());
        let (next, market_id) = (next.clone(), market_id.clone());
        tasks.spawn(async move {
            let mut mine = Vec::new();
            let mut ttl = Duration::MAX;
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let mut attempt = 0;
                let response = loop {
                    match auth.issue_token(client_credentials(&market_id, "")).await {
                        Ok(r) => break r.into_inner(),
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

// ---------------------------------------------------------------------------------------------
// One scenario: `concurrency` tasks, each looping request -> await.

/// One in-flight slot.
struct Slot {
    index: usize,
    auth: AuthServiceClient<Channel>,
    health: HealthClient<Channel>,
    fixture: Arc<SlotFixture>,
    /// This slot's session (refresh and mixed): its latest refresh token.
    refresh_token: Option<String>,
    requests: usize,
    rng: u64,
}

/// What the slots share, cheap to clone per request.
struct SlotFixture {
    market_id: String,
    integ_id: String,
    integ_secret: String,
    password: String,
    usernames: Vec<String>,
    bearer: MetadataValue<Ascii>,
    hot_token: String,
    distinct: Arc<Vec<String>>,
    concurrency: usize,
}

/// One request's outcome: OK, or the key it is counted under.
type Outcome = Result<(), String>;

/// The code's name; RESOURCE_EXHAUSTED also says whether its RetryInfo asks for at most a
/// second (hashing capacity full) or longer (a throttle lockout).
fn status_key(status: &Status) -> String {
    if status.code() == Code::ResourceExhausted
        && let Some(delay) = status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay)
    {
        let class = if delay <= Duration::from_secs(1) {
            "retry<=1s"
        } else {
            "retry>1s"
        };
        return format!("ResourceExhausted({class})");
    }
    format!("{:?}", status.code())
}

impl Slot {
    fn username(&self) -> &str {
        let users = &self.fixture.usernames;
        &users[self.index % users.len()]
    }

    /// The next operation of the mixed load (splitmix64 over the slot's own seed).
    fn next_mixed(&mut self) -> Op {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let total: u64 = MIX.iter().map(|(_, w)| w).sum();
        let mut pick = z % total;
        for (op, weight) in MIX {
            if pick < weight {
                return op;
            }
            pick -= weight;
        }
        Op::IntrospectHot
    }

    /// A password login for this slot's user, retried while hashing capacity is full.
    async fn log_in(&mut self) -> Result<String, Status> {
        let mut attempt = 0u64;
        loop {
            let request = password_grant(
                &self.fixture.market_id,
                self.username(),
                &self.fixture.password,
            );
            match self.auth.issue_token(request).await {
                Ok(r) => return Ok(r.into_inner().refresh_token),
                Err(s) if s.code() == Code::ResourceExhausted && attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(10 * attempt.min(10))).await;
                }
                Err(s) => return Err(s),
            }
        }
    }

    async fn run(&mut self, op: Op) -> Outcome {
        self.requests += 1;
        let f = self.fixture.clone();
        match op {
            Op::Health => {
                let answer = self
                    .health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map_err(|s| status_key(&s))?
                    .into_inner();
                if answer.status == ServingStatus::Serving as i32 {
                    Ok(())
                } else {
                    Err("NOT_SERVING".into())
                }
            }
            Op::IntrospectHot | Op::IntrospectDistinct => {
                let token = if op == Op::IntrospectHot {
                    &f.hot_token
                } else {
                    // Slot i takes i, i + c, i + 2c, ...: together the slots cycle over all.
                    let n = f.distinct.len();
                    &f.distinct[(self.index + self.requests * f.concurrency) % n]
                };
                let answer = self
                    .auth
                    .introspect_token(introspect_request(&f.bearer, token))
                    .await
                    .map_err(|s| status_key(&s))?
                    .into_inner();
                if answer.active {
                    Ok(())
                } else {
                    Err("OK(active=false)".into())
                }
            }
            Op::IssueAnonymous => self
                .auth
                .issue_token(client_credentials(&f.market_id, ""))
                .await
                .map(drop)
                .map_err(|s| status_key(&s)),
            Op::IssueIntegration => self
                .auth
                .issue_token(client_credentials(&f.integ_id, &f.integ_secret))
                .await
                .map(drop)
                .map_err(|s| status_key(&s)),
            Op::Password => self
                .auth
                .issue_token(password_grant(&f.market_id, self.username(), &f.password))
                .await
                .map(drop)
                .map_err(|s| status_key(&s)),
            Op::Refresh => {
                let Some(token) = self.refresh_token.take() else {
                    return Err("no-session".into());
                };
                let answer = self
                    .auth
                    .issue_token(refresh_grant(&f.market_id, "", &token))
                    .await
                    .map_err(|s| status_key(&s))?
                    .into_inner();
                if answer.refresh_token.is_empty() {
                    return Err("OK(no refresh token)".into());
                }
                self.refresh_token = Some(answer.refresh_token);
                Ok(())
            }
        }
    }
}

/// What one slot measured.
#[derive(Default)]
struct SlotStats {
    /// Latency of every request completed in the window, in nanoseconds.
    latencies: Vec<u64>,
    errors: BTreeMap<String, u64>,
    /// introspect-under-logins: logins that succeeded in the window, and their latencies.
    logins_ok: u64,
    login_latencies: Vec<u64>,
}

async fn run_scenario(
    scenario: Scenario,
    fixture: &Fixture,
    channels: &[Channel],
    args: &Args,
    cpus: usize,
) -> anyhow::Result<ScenarioResult> {
    let shared = Arc::new(SlotFixture {
        market_id: fixture.market_id.clone(),
        integ_id: fixture.integ_id.clone(),
        integ_secret: fixture.integ_secret.clone(),
        password: fixture.password.clone(),
        usernames: fixture.usernames.clone(),
        bearer: fixture.bearer.clone(),
        hot_token: fixture.hot_token.clone(),
        distinct: fixture.distinct.clone(),
        concurrency: args.concurrency,
    });
    let mut slots: Vec<Slot> = (0..args.concurrency)
        .map(|index| {
            let channel = channels[index % channels.len()].clone();
            Slot {
                index,
                auth: AuthServiceClient::new(channel.clone()),
                health: HealthClient::new(channel),
                fixture: shared.clone(),
                refresh_token: None,
                requests: 0,
                rng: 0x5EED_0000 + index as u64,
            }
        })
        .collect();

    // Every slot of a refresh or mixed run owns a user session, logged in before the clock starts.
    if scenario.needs_sessions() {
        let started = Instant::now();
        // No more logins at once than the server has hashing permits (one per core): a login
        // turned away for capacity still counts against the user's throttle.
        let gate = Arc::new(tokio::sync::Semaphore::new(cpus));
        let mut logins = JoinSet::new();
        for mut slot in slots.drain(..) {
            let gate = gate.clone();
            logins.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let session = slot.log_in().await;
                (slot, session)
            });
        }
        while let Some(joined) = logins.join_next().await {
            let (mut slot, session) = joined.context("login task failed")?;
            slot.refresh_token = Some(session.map_err(|s| {
                anyhow!(
                    "cannot log in a session for slot {}: {}",
                    slot.index,
                    describe(&s)
                )
            })?);
            slots.push(slot);
        }
        eprintln!(
            "  {} sessions logged in in {:.2}s",
            slots.len(),
            started.elapsed().as_secs_f64()
        );
    }

    let rss_kib_before = rss_kib();
    let now = Instant::now();
    let start = now + args.warmup;
    let end = start + args.duration;
    let mut tasks = JoinSet::new();
    for mut slot in slots {
        tasks.spawn(async move {
            let mut stats = SlotStats::default();
            loop {
                let op = match scenario.op() {
                    Some(op) => op,
                    None if scenario == Scenario::IntrospectUnderLogins => {
                        if slot.index < LOGIN_SLOTS {
                            Op::Password
                        } else {
                            Op::IntrospectHot
                        }
                    }
                    None => slot.next_mixed(),
                };
                if op == Op::Refresh && slot.refresh_token.is_none() {
                    // The last refresh failed: start a new session, off the clock.
                    match slot.log_in().await {
                        Ok(token) => slot.refresh_token = Some(token),
                        Err(s) => {
                            if Instant::now() >= start {
                                *stats
                                    .errors
                                    .entry(format!("relogin:{}", status_key(&s)))
                                    .or_default() += 1;
                            }
                        }
                    }
                }
                let begun = Instant::now();
                if begun >= end {
                    break;
                }
                let outcome = slot.run(op).await;
                let done = Instant::now();
                if done < start || done > end {
                    continue;
                }
                let latency = u64::try_from((done - begun).as_nanos()).unwrap_or(u64::MAX);
                if scenario == Scenario::IntrospectUnderLogins && op == Op::Password {
                    match outcome {
                        Ok(()) => {
                            stats.logins_ok += 1;
                            stats.login_latencies.push(latency);
                        }
                        Err(key) => {
                            *stats.errors.entry(format!("password:{key}")).or_default() += 1
                        }
                    }
                    continue;
                }
                stats
                    .latencies
                    .push(u64::try_from((done - begun).as_nanos()).unwrap_or(u64::MAX));
                if let Err(key) = outcome {
                    let key =
                        if matches!(scenario, Scenario::Mixed | Scenario::IntrospectUnderLogins) {
                            format!("{}:{key}", op.name())
                        } else {
                            key
                        };
                    *stats.errors.entry(key).or_default() += 1;
                }
            }
            stats
        });
    }
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let (mut logins_ok, mut login_latencies) = (0, Vec::new());
    while let Some(joined) = tasks.join_next().await {
        let stats = joined.context("a load task failed")?;
        latencies.extend(stats.latencies);
        logins_ok += stats.logins_ok;
        login_latencies.extend(stats.login_latencies);
        for (key, n) in stats.errors {
            *errors.entry(key).or_default() += n;
        }
    }
    latencies.sort_unstable();
    login_latencies.sort_unstable();
    let ms = |ns: u64| ns as f64 / 1e6;
    let note = (scenario == Scenario::IntrospectUnderLogins).then(|| {
        format!(
            "{}: {LOGIN_SLOTS} slots logging in: {:.1} OK logins/s (p50 {} ms, p99 {} ms); the other {} slots introspect, and the row's latencies are theirs",
            scenario.name(),
            logins_ok as f64 / args.duration.as_secs_f64(),
            sig3(ms(percentile(&login_latencies, 0.50))),
            sig3(ms(percentile(&login_latencies, 0.99))),
            args.concurrency.saturating_sub(LOGIN_SLOTS),
        )
    });
    Ok(ScenarioResult {
        name: scenario.name(),
        requests: latencies.len() as u64,
        window: args.duration,
        p50_ms: ms(percentile(&latencies, 0.50)),
        p99_ms: ms(percentile(&latencies, 0.99)),
        max_ms: ms(latencies.last().copied().unwrap_or(0)),
        errors,
        rss_kib_before,
        rss_kib: None,
        note,
    })
}

/// Nearest-rank percentile of sorted samples; 0 when there are none.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// VmRSS of this process in KiB (the server, when in-process, and the load generator).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Results.

struct ScenarioResult {
    name: &'static str,
    /// Requests completed in the window, OK or not.
    requests: u64,
    window: Duration,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: BTreeMap<String, u64>,
    /// VmRSS once the scenario's own setup (users) is done, and after its window.
    rss_kib_before: Option<u64>,
    rss_kib: Option<u64>,
    /// A line of its own under the table.
    note: Option<String>,
}

impl ScenarioResult {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64()
    }

    fn non_ok(&self) -> u64 {
        self.errors.values().sum()
    }

    fn error_summary(&self) -> String {
        if self.errors.is_empty() {
            return "-".into();
        }
        self.errors
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

struct Report<'a> {
    cpus: usize,
    database: &'a str,
    in_process: bool,
    connections: usize,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    users: usize,
    distinct_setup: Option<(usize, Duration)>,
    rss_at_rest: Option<u64>,
    results: &'a [ScenarioResult],
}

/// A number with three significant digits (whole numbers from 1000 up).
fn sig3(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).max(0) as usize;
    format!("{x:.decimals$}")
}

fn ratio(x: f64, base: f64) -> f64 {
    if base > 0.0 { x / base } else { f64::NAN }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".into(), |k| format!("{:.0}", k as f64 / 1024.0))
}

impl Report<'_> {
    fn baseline(&self) -> Option<&ScenarioResult> {
        self.results.iter().find(|r| r.name == "health")
    }

    fn print_table(&self) {
        println!(
            "tessera-bench: {} CPUs, database {}, server {}, {} connections, {} in flight, {} warm-up + {} per scenario",
            self.cpus,
            self.database,
            if self.in_process {
                "in-process"
            } else {
                "external (target)"
            },
            self.connections,
            self.concurrency,
            humantime::format_duration(self.warmup),
            humantime::format_duration(self.duration),
        );
        println!(
            "mixed = {}; {} users; ratios (x) are to the health baseline",
            mix_description(),
            self.users
        );
        if let Some((n, took)) = self.distinct_setup {
            println!(
                "distinct tokens: {n} issued in {:.2}s ({:.0}/s)",
                took.as_secs_f64(),
                n as f64 / took.as_secs_f64().max(1e-9)
            );
        }
        if self.in_process {
            println!(
                "RSS (VmRSS of this process: server + load generator) at rest after setup: {} MiB; per scenario: after its setup -> after its window",
                mib(self.rss_at_rest)
            );
        }
        let Some(base) = self.baseline() else {
            return;
        };
        println!(
            "{:<20} {:>16} {:>16} {:>16} {:>16} {:>11}  errors",
            "scenario", "req/s (x)", "p50 ms (x)", "p99 ms (x)", "max ms (x)", "RSS MiB"
        );
        let cell = |v: f64, b: f64| format!("{} ({})", sig3(v), sig3(ratio(v, b)));
        for r in self.results {
            println!(
                "{:<20} {:>16} {:>16} {:>16} {:>16} {:>11}  {}",
                r.name,
                cell(r.rate(), base.rate()),
                cell(r.p50_ms, base.p50_ms),
                cell(r.p99_ms, base.p99_ms),
                cell(r.max_ms, base.max_ms),
                if self.in_process {
                    format!("{}->{}", mib(r.rss_kib_before), mib(r.rss_kib))
                } else {
                    "-".into()
                },
                r.error_summary()
            );
        }
        for note in self.results.iter().filter_map(|r| r.note.as_ref()) {
            println!("{note}");
        }
    }

    fn print_findings(&self, json: bool) {
        for r in self.results.iter().filter(|r| r.non_ok() > 0) {
            let line = format!(
                "!!! FINDING: {}: {} of {} requests were not OK: {}",
                r.name,
                r.non_ok(),
                r.requests,
                r.error_summary()
            );
            if json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let base = self.baseline();
        let scenarios: Vec<_> = self
            .results
            .iter()
            .map(|r| {
                let vs = |f: fn(&ScenarioResult) -> f64| {
                    base.map(|b| ratio(f(r), f(b))).filter(|x| x.is_finite())
                };
                json!({
                    "scenario": r.name,
                    "requests": r.requests,
                    "non_ok": r.non_ok(),
                    "req_per_s": r.rate(),
                    "p50_ms": r.p50_ms,
                    "p99_ms": r.p99_ms,
                    "max_ms": r.max_ms,
                    "ratio_to_health": {
                        "req_per_s": vs(ScenarioResult::rate),
                        "p50_ms": vs(|r| r.p50_ms),
                        "p99_ms": vs(|r| r.p99_ms),
                        "max_ms": vs(|r| r.max_ms),
                    },
                    "errors": r.errors,
                    "rss_kib_before": if self.in_process { r.rss_kib_before } else { None },
                    "rss_kib_after": if self.in_process { r.rss_kib } else { None },
                })
            })
            .collect();
        json!({
            "cpus": self.cpus,
            "database": self.database,
            "server": if self.in_process { "in-process" } else { "target" },
            "connections": self.connections,
            "concurrency": self.concurrency,
            "duration_s": self.duration.as_secs_f64(),
            "warmup_s": self.warmup.as_secs_f64(),
            "users": self.users,
            "mixed_weights_percent": MIX.iter().map(|(op, w)| (op.name(), *w)).collect::<BTreeMap<_, _>>(),
            "distinct_tokens": self.distinct_setup.map(|(n, took)| json!({
                "count": n,
                "issue_s": took.as_secs_f64(),
            })),
            "rss_kib_at_rest": if self.in_process { self.rss_at_rest } else { None },
            "scenarios": scenarios,
        })
    }
}
