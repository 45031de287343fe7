//! The command line: the flags, the scenarios and the mixed load.
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Load generator for Tessera's gRPC API.
#[derive(Parser, Debug)]
#[command(name = "tessera-bench", version)]
pub struct Args {
    /// Scenarios to run, comma-separated (health always runs first, as the baseline).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scenarios: Option<Vec<Scenario>>,
    /// Timed window of each scenario.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Untimed warm-up before each scenario's window.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// HTTP/2 connections to the server.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Requests in flight in total, spread over the connections.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// In-process server on this database (postgres://ADMIN-URL: a fresh database is made and
    /// dropped); with --target, the target server's database. Default: a temp SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// HOST:PORT of a running server instead of an in-process one (needs --database-url).
    #[arg(long)]
    pub target: Option<String>,
    /// Anonymous tokens issued before the run for introspect-distinct and mixed.
    #[arg(long, default_value_t = 100_000)]
    pub distinct_tokens: usize,
    /// Print one JSON object with all results on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// The in-process server records its metrics (and serves /metrics on a port of the
    /// system's choosing), as a server with TESSERA_METRICS_LISTEN does; without it nothing is
    /// recorded (TESSERA_METRICS_LISTEN=off). Runs with and without compare what metrics cost.
    #[arg(long)]
    pub metrics: bool,
    /// Instead of the scenarios, a soak of this length (e.g. 10m): a mix that should give no
    /// error, with VmRSS, req/s and table sizes sampled; fails when the error rate reaches
    /// 0.1% or RSS grows 10% after --soak-warmup. The in-process server then runs with short
    /// token lifetimes (access 30s, refresh 1m, session 90s) and a clean-up every 10s, so that
    /// its tables reach their steady size within about 2.5 minutes.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub soak: Option<Duration>,
    /// Soak: RSS growth is measured on the samples from this point on, as the peak of their
    /// second half over the peak of their first half. Default: 2m, or half the soak if that is
    /// shorter.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub soak_warmup: Option<Duration>,
    /// Soak: the RSS growth, in percent, at which the soak fails. Growth means something only
    /// once the tables have reached their steady size (about 2.5 minutes in): a shorter soak,
    /// such as CI's, checks errors and passes a high limit here.
    #[arg(long, default_value_t = 10.0)]
    pub soak_max_rss_growth: f64,
    /// Soak: how often req/s, VmRSS and table sizes are sampled (one line each).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub sample_every: Duration,
    /// Instead of the scenarios, the revocation feed (WatchRevocations): the CPU and memory
    /// of --watch-streams idle streams, revocation-to-delivery latency on one instance and
    /// across two (--duration of logouts each), and IntrospectToken (--concurrency slots)
    /// alone, under a flood of RevokeToken of one revoked token (--flood-slots), under as
    /// many slots of health checks, and alone again.
    #[arg(long, conflicts_with_all = ["soak", "scenarios"])]
    pub watch: bool,
    /// Watch: streams held open at once.
    #[arg(long, default_value_t = 1_000)]
    pub watch_streams: usize,
    /// Watch: HTTP/2 connections the streams are spread over.
    #[arg(long, default_value_t = 10)]
    pub watch_connections: usize,
    /// Watch: how long CPU time is measured with no stream and with the idle streams (two
    /// heartbeats in the default).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub watch_idle: Duration,
    /// Watch: slots revoking the same already revoked token during the flood.
    #[arg(long, default_value_t = 8)]
    pub flood_slots: usize,
}

/// The scenarios, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Scenario {
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
    /// LOGIN_SLOTS real users logging in without pause, each from an address of its own; the
    /// other slots idle. The undisturbed rate the two attack scenarios compare with.
    LoginsAlone,
    /// The real users of logins-alone while every other slot sends an integration client's
    /// id with a wrong secret at full speed (issue 15, point 1).
    LoginsUnderSecretGuessing,
    /// The real users of logins-alone while every other slot sends wrong passwords for random
    /// usernames from one address, which the address throttle locks (issue 15, point 3).
    LoginsUnderPasswordSpray,
    /// The real users of logins-alone while every other slot sends health checks at full
    /// speed: what any flood of the cheapest request costs them on these cores.
    LoginsUnderHealthFlood,
}

/// Slots that log in, again and again, in introspect-under-logins: four times the hashing
/// threads of a 2-core machine, so the pool never idles.
pub const LOGIN_SLOTS: usize = 8;

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

    pub fn name(self) -> &'static str {
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
            Self::LoginsAlone => "logins-alone",
            Self::LoginsUnderSecretGuessing => "logins-under-secret-guessing",
            Self::LoginsUnderPasswordSpray => "logins-under-password-spray",
            Self::LoginsUnderHealthFlood => "logins-under-health-flood",
        }
    }

    /// The one operation of a plain scenario; `None` for the mix.
    pub fn op(self) -> Option<Op> {
        Some(match self {
            Self::Health => Op::Health,
            Self::IntrospectHot => Op::IntrospectHot,
            Self::IntrospectDistinct => Op::IntrospectDistinct,
            Self::IssueAnonymous => Op::IssueAnonymous,
            Self::IssueIntegration => Op::IssueIntegration,
            Self::Password => Op::Password,
            Self::Refresh => Op::Refresh,
            Self::Mixed
            | Self::IntrospectUnderLogins
            | Self::LoginsAlone
            | Self::LoginsUnderSecretGuessing
            | Self::LoginsUnderPasswordSpray
            | Self::LoginsUnderHealthFlood => return None,
        })
    }

    pub fn needs_distinct_tokens(self) -> bool {
        matches!(self, Self::IntrospectDistinct | Self::Mixed)
    }

    pub fn needs_users(self) -> bool {
        matches!(
            self,
            Self::Password
                | Self::Refresh
                | Self::Mixed
                | Self::IntrospectUnderLogins
                | Self::LoginsAlone
                | Self::LoginsUnderSecretGuessing
                | Self::LoginsUnderPasswordSpray
                | Self::LoginsUnderHealthFlood
        )
    }

    /// Whether LOGIN_SLOTS slots log in as real users while the rest do something else.
    pub fn has_real_users(self) -> bool {
        matches!(
            self,
            Self::IntrospectUnderLogins
                | Self::LoginsAlone
                | Self::LoginsUnderSecretGuessing
                | Self::LoginsUnderPasswordSpray
                | Self::LoginsUnderHealthFlood
        )
    }

    pub fn needs_sessions(self) -> bool {
        matches!(self, Self::Refresh | Self::Mixed)
    }

    /// The scenarios to run: health first, then the rest in their canonical order, each once.
    pub fn list(requested: Option<&[Self]>) -> Vec<Self> {
        let mut list: Vec<Self> = requested.map_or_else(|| Self::ALL.to_vec(), <[_]>::to_vec);
        list.push(Self::Health);
        list.sort();
        list.dedup();
        list
    }
}

/// One request kind of the scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Health,
    IntrospectHot,
    IntrospectDistinct,
    IssueAnonymous,
    IssueIntegration,
    Password,
    Refresh,
    /// A real user's login, from the user's own address (x-forwarded-for).
    UserLogin,
    /// client_credentials of the integration client with a wrong secret.
    WrongSecret,
    /// A wrong password for a username never seen, from the attacker's address.
    SprayPassword,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::IntrospectHot => "introspect-hot",
            Self::IntrospectDistinct => "introspect-distinct",
            Self::IssueAnonymous => "issue-anonymous",
            Self::IssueIntegration => "issue-integration",
            Self::Password => "password",
            Self::Refresh => "refresh",
            Self::UserLogin => "user-login",
            Self::WrongSecret => "wrong-secret",
            Self::SprayPassword => "spray-password",
        }
    }
}

/// The mixed load, in percent: what an auth service mostly does is answer introspections.
pub const MIX: [(Op, u64); 5] = [
    (Op::IntrospectHot, 35),
    (Op::IntrospectDistinct, 35),
    (Op::IssueAnonymous, 15),
    (Op::Refresh, 10),
    (Op::Password, 5),
];

/// `35% introspect-hot, ...`: a mix in words.
pub fn describe_mix<T: Copy>(mix: &[(T, u64)], name: fn(T) -> &'static str) -> String {
    mix.iter()
        .map(|&(op, w)| format!("{w}% {}", name(op)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A mix as a JSON object of weights by name.
pub fn mix_json<T: Copy>(
    mix: &[(T, u64)],
    name: fn(T) -> &'static str,
) -> std::collections::BTreeMap<&'static str, u64> {
    mix.iter().map(|&(op, w)| (name(op), w)).collect()
}
