//! Typed settings from flags and TESSERA_* variables. A bad value becomes one clear line.
use std::{net::SocketAddr, time::Duration};

use clap::Args;
use secrecy::SecretString;

use crate::domain::{hashing::HashCost, policy::TokenPolicy};
use crate::store::Backend;

/// The default embedded database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tessera.db?mode=rwc";

/// Where the data lives: shared by every command.
#[derive(Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://PATH?mode=rwc (embedded) or postgres://...
    #[arg(long, env = "TESSERA_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,
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
}

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
        Ok(cost)
    }
}

/// `tessera serve` flags; each also reads its TESSERA_* variable.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: String,
    /// 32 random bytes in base64 (openssl rand -base64 32); seals signing keys at rest.
    #[arg(long, env = "TESSERA_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
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
    /// `bearer` (callers present an integ access token) or `none`.
    #[arg(long, env = "TESSERA_INTROSPECTION_AUTH", default_value = "bearer")]
    pub introspection_auth: String,
    /// How often expired rows are deleted (plus up to a tenth more, at random); 0s: never.
    #[arg(long, env = "TESSERA_CLEANUP_INTERVAL", default_value = "60s")]
    pub cleanup_interval: String,
    /// WatchRevocations streams this instance holds at most; more are refused.
    #[arg(long, env = "TESSERA_MAX_WATCH_STREAMS", default_value = "10000")]
    pub max_watch_streams: String,
}

/// Who may call IntrospectToken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntrospectionAuth {
    /// Callers present `authorization: Bearer <integ access token>`.
    Bearer,
    /// Anyone who can reach the port.
    None,
}

/// Everything `serve` needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub master_key: Option<SecretString>,
    pub policy: TokenPolicy,
    pub introspection_auth: IntrospectionAuth,
    pub hash_cost: HashCost,
    /// How often this instance deletes expired rows; zero turns the clean-up off.
    pub cleanup_interval: Duration,
    /// WatchRevocations streams held at most.
    pub max_watch_streams: usize,
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
    fn new(name: &'static str, value: &str, expected: impl Into<String>) -> Self {
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
        let database_url = validate_database_url(&db.database_url)?;
        let introspection_auth = match args.introspection_auth.as_str() {
            "bearer" => IntrospectionAuth::Bearer,
            "none" => IntrospectionAuth::None,
            other => {
                return Err(ConfigError::new(
                    "TESSERA_INTROSPECTION_AUTH",
                    other,
                    "expected bearer or none",
                ));
            }
        };
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
        let master_key = args
            .master_key
            .as_deref()
            .filter(|k| !k.trim().is_empty())
            .map(|k| SecretString::from(k.to_owned()));
        Ok(Self {
            listen,
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
        })
    }
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

/// A URL with any password replaced, fit for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
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
}
