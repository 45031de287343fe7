//! Typed settings from flags and TESSERA_* variables. A bad value becomes one clear line.
pub mod tls;

use std::{net::SocketAddr, time::Duration};

use clap::Args;
use secrecy::SecretString;

use crate::domain::{hashing::HashCost, policy::TokenPolicy};
use crate::store::Backend;
pub use tls::{TlsArgs, TlsFiles};

/// The default embedded database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tessera.db?mode=rwc";

/// Where the data lives: shared by every command.
#[derive(Args, Clone)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://PATH?mode=rwc (embedded) or postgres://...
    #[arg(long, env = "TESSERA_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true, hide_env_values = true)]
    pub database_url: String,
}

impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field("database_url", &redact_url(&self.database_url))
            .finish()
    }
}

/// The master key, from `--master-key`/`TESSERA_MASTER_KEY` or from a file
/// (`--master-key-file`/`TESSERA_MASTER_KEY_FILE`). The file is the better place: a flag's value
/// shows in `ps` to every user of the machine, and an environment variable in
/// `/proc/<pid>/environ` to the process's owner and in crash reports.
#[derive(Args, Clone)]
pub struct MasterKeyArgs {
    /// 32 random bytes in base64 (openssl rand -base64 32); seals signing keys at rest. Prefer
    /// --master-key-file: a flag's value is visible in `ps`.
    #[arg(long, env = "TESSERA_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// A file holding the master key (base64, surrounding white space ignored).
    #[arg(long, env = "TESSERA_MASTER_KEY_FILE")]
    pub master_key_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for MasterKeyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeyArgs")
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "[REDACTED]"),
            )
            .field("master_key_file", &self.master_key_file)
            .finish()
    }
}

impl MasterKeyArgs {
    /// The key given, if any (`None`: the SQLite development key, or an error on PostgreSQL).
    pub fn resolve(&self) -> Result<Option<SecretString>, ConfigError> {
        let given = self.master_key.as_deref().filter(|k| !k.trim().is_empty());
        match (given, &self.master_key_file) {
            (Some(_), Some(path)) => Err(ConfigError::new(
                "TESSERA_MASTER_KEY_FILE",
                &path.display().to_string(),
                "expected either TESSERA_MASTER_KEY or TESSERA_MASTER_KEY_FILE, not both",
            )),
            (Some(key), None) => Ok(Some(SecretString::from(key.to_owned()))),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(
                        "TESSERA_MASTER_KEY_FILE",
                        &path.display().to_string(),
                        format!("expected a readable file ({e})"),
                    )
                })?;
                warn_if_others_can_read(path);
                Ok(Some(SecretString::from(text.trim().to_owned())))
            }
            (None, None) => Ok(None),
        }
    }
}

/// Warns when the master key file can be read by users other than its owner, or written by
/// anyone else: whoever reads it can forge every token. (Not refused: container secrets are
/// often mounted 0444 in a container that only the service runs in.)
fn warn_if_others_can_read(path: &std::path::Path) {
    if let Some(mode) = open_to_others(path) {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "the master key file is open to other users of this machine \
             (chmod 0400 it, owned by the service's user)"
        );
    }
}

/// The permission bits of `path` when its group or other users have any (`None` when only
/// its owner does, it cannot be read, or off Unix).
pub(crate) fn open_to_others(path: &std::path::Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// argon2id cost for passwords and client secrets: shared by `serve` and the commands that
/// set secrets.
#[derive(Args, Clone, Debug)]
pub struct HashArgs {
    /// argon2id memory cost in KiB (OWASP: 19456 = 19 MiB).
    #[arg(
        long,
        env = "TESSERA_ARGON2_MEMORY_KIB",
        default_value = "19456",
        global = true
    )]
    pub argon2_memory_kib: String,
    /// argon2id iterations (OWASP: 2).
    #[arg(
        long,
        env = "TESSERA_ARGON2_ITERATIONS",
        default_value = "2",
        global = true
    )]
    pub argon2_iterations: String,
    /// argon2id lanes (OWASP: 1).
    #[arg(
        long,
        env = "TESSERA_ARGON2_PARALLELISM",
        default_value = "1",
        global = true
    )]
    pub argon2_parallelism: String,
    /// Accept argon2id costs below OWASP's minimum: for test rigs only, never in production.
    #[arg(long, global = true)]
    pub insecure_argon2_for_tests: bool,
}

/// OWASP's recommended argon2id configurations (memory KiB, passes), p = 1: a cost is enough
/// when it is at least one of them in both memory and passes.
const OWASP_MINIMUMS: [(u32, u32); 5] = [
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
];

impl HashArgs {
    /// The validated cost.
    pub fn cost(&self) -> Result<HashCost, ConfigError> {
        let number = |name: &'static str, text: &str, range: std::ops::RangeInclusive<u32>| {
            text.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    ConfigError::new(
                        name,
                        text,
                        format!(
                            "expected a whole number from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    )
                })
        };
        let parallelism = number(
            "TESSERA_ARGON2_PARALLELISM",
            &self.argon2_parallelism,
            1..=16,
        )?;
        let cost = HashCost {
            memory_kib: number(
                "TESSERA_ARGON2_MEMORY_KIB",
                &self.argon2_memory_kib,
                8 * parallelism..=4 * 1024 * 1024,
            )?,
            iterations: number(
                "TESSERA_ARGON2_ITERATIONS",
                &self.argon2_iterations,
                1..=100,
            )?,
            parallelism,
        };
        let owasp = OWASP_MINIMUMS
            .iter()
            .any(|&(memory, passes)| cost.memory_kib >= memory && cost.iterations >= passes);
        if !self.insecure_argon2_for_tests && !owasp {
            return Err(ConfigError::new(
                "TESSERA_ARGON2_MEMORY_KIB",
                &format!("{} (with {} passes)", cost.memory_kib, cost.iterations),
                "at least one of OWASP's configurations: 47104 KiB × 1 pass, 19456 × 2, \
                 12288 × 3, 9216 × 4 or 7168 × 5; --insecure-argon2-for-tests allows less, \
                 for test rigs",
            ));
        }
        Ok(cost)
    }
}

/// `tessera serve` flags; each also reads its TESSERA_* variable.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: String,
    /// Address of the HTTP listener (the Sharetribe token endpoint, health for load
    /// balancers), or `off`.
    #[arg(long, env = "TESSERA_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: String,
    /// Address of the Prometheus metrics listener (`/metrics`), or `off`.
    #[arg(long, env = "TESSERA_METRICS_LISTEN", default_value = "127.0.0.1:9464")]
    pub metrics_listen: String,
    /// Browser origins allowed to call both listeners (CORS), comma-separated, such as
    /// https://app.example.com; `*` for any origin; empty: none.
    #[arg(long, env = "TESSERA_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    #[command(flatten)]
    pub master_key: MasterKeyArgs,
    /// The `iss` claim of every token.
    #[arg(long, env = "TESSERA_ISSUER", default_value = "tessera")]
    pub issuer: String,
    #[arg(long, env = "TESSERA_ACCESS_TOKEN_TTL", default_value = "10m")]
    pub access_token_ttl: String,
    #[arg(long, env = "TESSERA_TRUSTED_TOKEN_TTL", default_value = "5m")]
    pub trusted_token_ttl: String,
    #[arg(long, env = "TESSERA_REFRESH_TOKEN_TTL", default_value = "30d")]
    pub refresh_token_ttl: String,
    #[arg(long, env = "TESSERA_SESSION_MAX_TTL", default_value = "180d")]
    pub session_max_ttl: String,
    #[arg(long, env = "TESSERA_REFRESH_REUSE_GRACE", default_value = "10s")]
    pub refresh_reuse_grace: String,
    #[arg(long, env = "TESSERA_CLOCK_LEEWAY", default_value = "5s")]
    pub clock_leeway: String,
    /// `bearer` (callers present an integ access token), `mtls` (a client certificate from
    /// TESSERA_TLS_CLIENT_CA is enough on the gRPC port, a bearer otherwise) or `none`.
    #[arg(long, env = "TESSERA_INTROSPECTION_AUTH", default_value = "bearer")]
    pub introspection_auth: String,
    /// How often expired rows are deleted (plus up to a tenth more, at random); 0s: never.
    #[arg(long, env = "TESSERA_CLEANUP_INTERVAL", default_value = "60s")]
    pub cleanup_interval: String,
    /// WatchRevocations streams this instance holds at most; more are refused.
    #[arg(long, env = "TESSERA_MAX_WATCH_STREAMS", default_value = "10000")]
    pub max_watch_streams: String,
    /// Proxies whose `x-forwarded-for` is believed (CIDRs or addresses, comma-separated);
    /// empty: none, and every caller is throttled by its own address.
    #[arg(long, env = "TESSERA_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    #[command(flatten)]
    pub limits: crate::server::limits::LimitArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Who may call IntrospectToken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntrospectionAuth {
    /// Callers present `authorization: Bearer <integ access token>`.
    Bearer,
    /// Anyone who can reach the port.
    None,
    /// On the gRPC port, callers with a verified client certificate (TESSERA_TLS_CLIENT_CA);
    /// others present a bearer as with [`IntrospectionAuth::Bearer`].
    Mtls,
}

/// The browser origins that may call Tessera (CORS, SPEC §8). Credentials (cookies, HTTP
/// authentication the browser manages) are never allowed: Tessera's callers send their tokens
/// and client ids explicitly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    /// These origins only (`scheme://host[:port]`, lower case); none when empty.
    List(Vec<String>),
    /// Any origin (`*`).
    Any,
}

impl Default for CorsOrigins {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

/// `https://app.example.com, http://localhost:3000`, or `*`.
pub fn cors_origins(text: &str) -> Result<CorsOrigins, ConfigError> {
    let entries: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if entries == ["*"] {
        return Ok(CorsOrigins::Any);
    }
    let origin = |entry: &str| -> Result<String, ConfigError> {
        let bad = || {
            ConfigError::new(
                "TESSERA_CORS_ORIGINS",
                entry,
                "expected origins such as https://app.example.com or http://localhost:3000 \
                 (scheme, host and port only), comma-separated, or * alone",
            )
        };
        let lower = entry.to_ascii_lowercase();
        let (scheme, authority) = lower.split_once("://").ok_or_else(bad)?;
        let authority_ok = !authority.is_empty()
            && !authority.contains(['/', '?', '#', '@', '*'])
            && authority.parse::<http::uri::Authority>().is_ok();
        if !matches!(scheme, "http" | "https") || !authority_ok {
            return Err(bad());
        }
        Ok(lower)
    };
    entries
        .into_iter()
        .map(origin)
        .collect::<Result<_, _>>()
        .map(CorsOrigins::List)
}

/// Everything `serve` needs, validated. Its Debug shows no secret: the database URL's password
/// and the master key are redacted.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The HTTP listener's address; `None`: no HTTP listener (`off`).
    pub http_listen: Option<SocketAddr>,
    /// The metrics listener (`/metrics`), unless `off`.
    pub metrics_listen: Option<SocketAddr>,
    /// Browser origins allowed on both listeners.
    pub cors_origins: CorsOrigins,
    pub database_url: String,
    pub master_key: Option<SecretString>,
    pub policy: TokenPolicy,
    pub introspection_auth: IntrospectionAuth,
    pub hash_cost: HashCost,
    /// How often this instance deletes expired rows; zero turns the clean-up off.
    pub cleanup_interval: Duration,
    /// WatchRevocations streams held at most.
    pub max_watch_streams: usize,
    /// Proxies whose `x-forwarded-for` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Connection limits on both listeners.
    pub limits: crate::server::limits::Limits,
    /// TLS on every listener, unless `None` (plaintext).
    pub tls: Option<TlsFiles>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("http_listen", &self.http_listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("cors_origins", &self.cors_origins)
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "[REDACTED]"),
            )
            .field("policy", &self.policy)
            .field("introspection_auth", &self.introspection_auth)
            .field("hash_cost", &self.hash_cost)
            .field("cleanup_interval", &self.cleanup_interval)
            .field("max_watch_streams", &self.max_watch_streams)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("limits", &self.limits)
            .field("tls", &self.tls)
            .finish()
    }
}

/// A configuration value that cannot be used; its Display is the one line shown to the user.
#[derive(Debug, thiserror::Error)]
#[error("invalid {name} {value:?}: {expected}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub expected: String,
}

impl ConfigError {
    pub(crate) fn new(name: &'static str, value: &str, expected: impl Into<String>) -> Self {
        Self {
            name,
            value: value.to_owned(),
            expected: expected.into(),
        }
    }
}

impl Config {
    /// Validates the flags and variables of `serve`.
    pub fn from_args(
        db: &DatabaseArgs,
        hashing: &HashArgs,
        args: &ServeArgs,
    ) -> Result<Self, ConfigError> {
        let listen = args.listen.parse().map_err(|_| {
            ConfigError::new(
                "TESSERA_LISTEN",
                &args.listen,
                "expected HOST:PORT such as 127.0.0.1:50051",
            )
        })?;
        let http_listen = match args.http_listen.trim() {
            "off" => None,
            text => Some(text.parse().map_err(|_| {
                ConfigError::new(
                    "TESSERA_HTTP_LISTEN",
                    &args.http_listen,
                    "expected HOST:PORT such as 127.0.0.1:8080, or off",
                )
            })?),
        };
        let metrics_listen = match args.metrics_listen.trim() {
            "off" => None,
            text => Some(text.parse().map_err(|_| {
                ConfigError::new(
                    "TESSERA_METRICS_LISTEN",
                    &args.metrics_listen,
                    "expected HOST:PORT such as 127.0.0.1:9464, or off",
                )
            })?),
        };
        let database_url = validate_database_url(&db.database_url)?;
        let introspection_auth = match args.introspection_auth.as_str() {
            "bearer" => IntrospectionAuth::Bearer,
            "none" => IntrospectionAuth::None,
            "mtls" => IntrospectionAuth::Mtls,
            other => {
                return Err(ConfigError::new(
                    "TESSERA_INTROSPECTION_AUTH",
                    other,
                    "expected bearer, mtls or none",
                ));
            }
        };
        let tls = args.tls.files()?;
        check_mtls_introspection(introspection_auth, tls.as_ref())?;
        let issuer = args.issuer.trim();
        if issuer.is_empty() || issuer.len() > 200 {
            return Err(ConfigError::new(
                "TESSERA_ISSUER",
                &args.issuer,
                "expected 1 to 200 characters",
            ));
        }
        let policy = TokenPolicy {
            issuer: issuer.to_owned(),
            access_token_ttl: positive("TESSERA_ACCESS_TOKEN_TTL", &args.access_token_ttl)?,
            trusted_token_ttl: positive("TESSERA_TRUSTED_TOKEN_TTL", &args.trusted_token_ttl)?,
            refresh_token_ttl: positive("TESSERA_REFRESH_TOKEN_TTL", &args.refresh_token_ttl)?,
            session_max_ttl: positive("TESSERA_SESSION_MAX_TTL", &args.session_max_ttl)?,
            refresh_reuse_grace: duration(
                "TESSERA_REFRESH_REUSE_GRACE",
                &args.refresh_reuse_grace,
            )?,
            clock_leeway: duration("TESSERA_CLOCK_LEEWAY", &args.clock_leeway)?,
        };
        let master_key = args.master_key.resolve()?;
        Ok(Self {
            listen,
            http_listen,
            metrics_listen,
            cors_origins: cors_origins(&args.cors_origins)?,
            database_url,
            master_key,
            policy,
            introspection_auth,
            hash_cost: hashing.cost()?,
            cleanup_interval: duration("TESSERA_CLEANUP_INTERVAL", &args.cleanup_interval)?,
            max_watch_streams: args.max_watch_streams.trim().parse().map_err(|_| {
                ConfigError::new(
                    "TESSERA_MAX_WATCH_STREAMS",
                    &args.max_watch_streams,
                    "a whole number of streams, such as 10000",
                )
            })?,
            trusted_proxies: trusted_proxies(&args.trusted_proxies)?,
            limits: args.limits.limits()?,
            tls,
        })
    }
}

/// `TESSERA_INTROSPECTION_AUTH=mtls` needs client certificates to check.
pub fn check_mtls_introspection(
    auth: IntrospectionAuth,
    tls: Option<&TlsFiles>,
) -> Result<(), ConfigError> {
    if auth == IntrospectionAuth::Mtls && tls.is_none_or(|tls| tls.client_ca.is_none()) {
        return Err(ConfigError::new(
            "TESSERA_INTROSPECTION_AUTH",
            "mtls",
            "mtls needs client certificates: set TESSERA_TLS_CERT, TESSERA_TLS_KEY and \
             TESSERA_TLS_CLIENT_CA, or use bearer",
        ));
    }
    Ok(())
}

/// `10.0.0.0/8, 192.0.2.7, 2001:db8::/32`: networks, or addresses standing for themselves.
pub fn trusted_proxies(text: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| canonical_net(net.trunc()))
                .map_err(|_| {
                    ConfigError::new(
                        "TESSERA_TRUSTED_PROXIES",
                        entry,
                        "expected CIDRs or addresses, comma-separated, such as 10.0.0.0/8, 192.0.2.7",
                    )
                })
        })
        .collect()
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network it stands for:
/// peers and forwarded addresses are compared in their IPv4 form.
fn canonical_net(net: ipnet::IpNet) -> ipnet::IpNet {
    if let ipnet::IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(mapped) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return ipnet::IpNet::V4(mapped);
    }
    net
}

/// Checks that a database URL names a backend Tessera speaks.
pub fn validate_database_url(url: &str) -> Result<String, ConfigError> {
    Backend::of_url(url).map(|_| url.to_owned()).ok_or_else(|| {
        ConfigError::new(
            "TESSERA_DATABASE_URL",
            &redact_url(url),
            "expected sqlite://... or postgres://...",
        )
    })
}

/// A URL with any password (in its user information or its query) replaced, fit for messages
/// and logs.
pub fn redact_url(text: &str) -> String {
    /// Query parameters that hold a secret in libpq's and sqlx's connection strings.
    const SECRET_PARAMS: [&str; 3] = ["password", "sslpassword", "sslkey"];
    let Ok(mut url) = url::Url::parse(text) else {
        // Not a URL we can take apart: show nothing of it rather than risk a password.
        return "<a URL that does not parse>".to_owned();
    };
    if url.scheme() != "sqlite" && (url.cannot_be_a_base() || !url.has_host()) {
        // `postgres:u:pw@h/db` and the like parse as a path: a password may be anywhere in it.
        return format!("{}:<not shown>", url.scheme());
    }
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url
        .query_pairs()
        .any(|(key, _)| SECRET_PARAMS.contains(&key.as_ref()))
    {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if SECRET_PARAMS.contains(&key.as_ref()) {
                    "***".to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// Parses a duration such as `30s`, `10m` or `30d`.
pub fn duration(name: &'static str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        ConfigError::new(
            name,
            text,
            "expected a duration such as 30s, 10m, 12h or 30d",
        )
    })
}

fn positive(name: &'static str, text: &str) -> Result<Duration, ConfigError> {
    let d = duration(name, text)?;
    if d < Duration::from_secs(1) {
        return Err(ConfigError::new(name, text, "expected at least 1s"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            redact_url("sqlite://tessera.db?mode=rwc"),
            "sqlite://tessera.db?mode=rwc"
        );
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=pw&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
        assert!(!redact_url("postgres://u:p@ss@h/db").contains("p@ss"));
        assert!(!redact_url("postgres:u:pw@h/db").contains("pw"));
        assert!(!redact_url("postgres:/u:pw@h/db").contains("pw"));
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration("X", "10m").expect("ok"), Duration::from_secs(600));
        assert_eq!(
            duration("X", "30d").expect("ok"),
            Duration::from_secs(30 * 86_400)
        );
        assert!(duration("X", "ten minutes").is_err());
        assert!(positive("X", "0s").is_err());
    }

    fn hash_args(memory_kib: &str, iterations: &str, insecure: bool) -> HashArgs {
        HashArgs {
            argon2_memory_kib: memory_kib.into(),
            argon2_iterations: iterations.into(),
            argon2_parallelism: "1".into(),
            insecure_argon2_for_tests: insecure,
        }
    }

    #[test]
    fn argon2_below_owasps_minimum_is_refused_unless_asked_for_in_tests() {
        assert!(hash_args("8", "1", false).cost().is_err());
        assert!(hash_args("19455", "1", false).cost().is_err());
        assert!(hash_args("19456", "2", false).cost().is_ok());
        assert!(hash_args("7168", "5", false).cost().is_ok());
        assert!(hash_args("47104", "1", false).cost().is_ok());
        assert!(hash_args("35840", "1", false).cost().is_err());
        assert!(hash_args("8", "1", true).cost().is_ok());
    }

    #[test]
    fn no_secret_shows_in_the_debug_form_of_the_settings() {
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            http_listen: None,
            metrics_listen: None,
            cors_origins: CorsOrigins::default(),
            database_url: "postgres://tessera:hunter2@db/tessera".into(),
            master_key: Some(SecretString::from(
                "bWFzdGVyIGtleSBtYXN0ZXIga2V5IG1hc3RlciBrZXk=",
            )),
            policy: TokenPolicy::default(),
            introspection_auth: IntrospectionAuth::Bearer,
            hash_cost: HashCost::OWASP,
            cleanup_interval: Duration::ZERO,
            max_watch_streams: 1,
            trusted_proxies: Vec::new(),
            limits: Default::default(),
            tls: None,
        };
        let args = MasterKeyArgs {
            master_key: Some("bWFzdGVyIGtleSBtYXN0ZXIga2V5IG1hc3RlciBrZXk=".into()),
            master_key_file: None,
        };
        let database = DatabaseArgs {
            database_url: config.database_url.clone(),
        };
        for text in [
            format!("{config:?}"),
            format!("{args:?}"),
            format!("{database:?}"),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("bWFzdGVy"), "{text}");
        }
    }

    #[test]
    fn the_master_key_can_come_from_a_file_but_not_from_both_places() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("master-key");
        std::fs::write(&path, "  a2V5IGZyb20gYSBmaWxl\n").expect("write");
        let from_file = MasterKeyArgs {
            master_key: None,
            master_key_file: Some(path.clone()),
        };
        let key = from_file.resolve().expect("read").expect("a key");
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&key),
            "a2V5IGZyb20gYSBmaWxl"
        );
        let both = MasterKeyArgs {
            master_key: Some("x".into()),
            master_key_file: Some(path),
        };
        assert!(both.resolve().is_err());
    }

    #[test]
    fn trusted_proxies_read_as_networks_and_addresses() {
        let nets = trusted_proxies(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32").expect("valid");
        assert_eq!(nets.len(), 3);
        assert_eq!(nets[1].to_string(), "192.0.2.7/32");
        assert!(trusted_proxies("").expect("empty").is_empty());
        assert!(trusted_proxies("10.0.0.0/8, not-an-address").is_err());
        let mapped = trusted_proxies("::ffff:10.0.0.0/104").expect("valid");
        assert_eq!(mapped[0].to_string(), "10.0.0.0/8");
    }

    #[test]
    fn cors_origins_are_origins_or_a_lone_star() {
        assert_eq!(cors_origins("").expect("empty"), CorsOrigins::default());
        assert_eq!(cors_origins(" * ").expect("any"), CorsOrigins::Any);
        assert_eq!(
            cors_origins("https://App.Example.com, http://localhost:3000").expect("list"),
            CorsOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into()
            ])
        );
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://app.example.com",
            "https://",
            "*, https://app.example.com",
            "https://*.example.com",
        ] {
            assert!(cors_origins(bad).is_err(), "{bad}");
        }
    }
}
