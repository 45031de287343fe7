//! Connection limits (SPEC §9): what one connection may hold and how long it lives, on the gRPC
//! port and the HTTP listener, as settings with sane defaults. Requests in flight per
//! connection need no setting of their own: HTTP/1.1 carries one request at a time, and on
//! HTTP/2 every request is a stream, so the stream limit bounds them.
use std::time::Duration;

use clap::Args;

use crate::config::{ConfigError, duration};

/// `tessera serve` flags for the limits; each also reads its TESSERA_* variable.
#[derive(Args, Clone, Debug)]
pub struct LimitArgs {
    /// Streams (calls in flight, WatchRevocations included) one gRPC connection may hold.
    #[arg(
        long,
        env = "TESSERA_GRPC_MAX_STREAMS_PER_CONNECTION",
        default_value = "1024"
    )]
    pub grpc_max_streams_per_connection: String,
    /// Requests in flight on one HTTP/2 connection of the HTTP listener.
    #[arg(
        long,
        env = "TESSERA_HTTP_MAX_STREAMS_PER_CONNECTION",
        default_value = "128"
    )]
    pub http_max_streams_per_connection: String,
    /// How often an idle HTTP/2 connection (either listener) is pinged.
    #[arg(long, env = "TESSERA_KEEPALIVE_INTERVAL", default_value = "30s")]
    pub keepalive_interval: String,
    /// How long a ping's answer may take before the connection is closed.
    #[arg(long, env = "TESSERA_KEEPALIVE_TIMEOUT", default_value = "10s")]
    pub keepalive_timeout: String,
    /// TCP keepalive on the gRPC port's connections; 0s: off.
    #[arg(long, env = "TESSERA_TCP_KEEPALIVE", default_value = "60s")]
    pub tcp_keepalive: String,
    /// The longest a gRPC connection lives before it finishes its calls and closes.
    #[arg(long, env = "TESSERA_GRPC_MAX_CONNECTION_AGE", default_value = "30m")]
    pub grpc_max_connection_age: String,
    /// The time an aged gRPC connection's calls get to finish.
    #[arg(
        long,
        env = "TESSERA_GRPC_MAX_CONNECTION_AGE_GRACE",
        default_value = "30s"
    )]
    pub grpc_max_connection_age_grace: String,
    /// The longest an HTTP connection lives before it finishes its requests and closes.
    #[arg(long, env = "TESSERA_HTTP_MAX_CONNECTION_AGE", default_value = "10m")]
    pub http_max_connection_age: String,
    /// HTTP connections open at once; past it, new ones are closed unserved.
    #[arg(long, env = "TESSERA_HTTP_MAX_CONNECTIONS", default_value = "4096")]
    pub http_max_connections: String,
    /// How long a new HTTP connection may take to show its protocol, and a request its headers.
    #[arg(long, env = "TESSERA_HTTP_HEADER_TIMEOUT", default_value = "10s")]
    pub http_header_timeout: String,
}

/// The limits in force, validated: every duration has an upper bound (an absurd one would
/// overflow hyper's and tokio's clocks, which panic), and the keepalive timeout is shorter than
/// its interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Streams (so calls) one gRPC connection may hold at once.
    pub grpc_max_streams_per_connection: u32,
    /// Streams (so requests) one HTTP/2 connection of the HTTP listener may hold at once.
    pub http_max_streams_per_connection: u32,
    /// How often an idle HTTP/2 connection (either listener) is pinged.
    pub keepalive_interval: Duration,
    /// How long a ping's answer may take before the connection is closed.
    pub keepalive_timeout: Duration,
    /// TCP keepalive on the gRPC port's connections; `None`: off.
    pub tcp_keepalive: Option<Duration>,
    /// The longest a gRPC connection lives before it finishes its calls and closes.
    pub grpc_max_connection_age: Duration,
    /// The time an aged gRPC connection's calls get to finish.
    pub grpc_max_connection_age_grace: Duration,
    /// The longest an HTTP connection lives before it finishes its requests and closes.
    pub http_max_connection_age: Duration,
    /// HTTP connections open at once; past it, new ones are closed unserved.
    pub http_max_connections: usize,
    /// How long a new HTTP connection may take to show its protocol, and a request its headers.
    pub http_header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            grpc_max_streams_per_connection: 1_024,
            http_max_streams_per_connection: 128,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            tcp_keepalive: Some(Duration::from_secs(60)),
            grpc_max_connection_age: Duration::from_secs(30 * 60),
            grpc_max_connection_age_grace: Duration::from_secs(30),
            http_max_connection_age: Duration::from_secs(10 * 60),
            http_max_connections: 4_096,
            http_header_timeout: Duration::from_secs(10),
        }
    }
}

/// The longest connection age either listener accepts, and how it is written.
const MAX_AGE: (Duration, &str) = (Duration::from_secs(24 * 3600), "24h");
/// The longest keepalive interval, keepalive timeout, grace or header timeout.
const MAX_WAIT: (Duration, &str) = (Duration::from_secs(3600), "1h");
const ONE_SECOND: Duration = Duration::from_secs(1);

impl LimitArgs {
    /// The validated limits.
    pub fn limits(&self) -> Result<Limits, ConfigError> {
        let tcp_keepalive = duration("TESSERA_TCP_KEEPALIVE", &self.tcp_keepalive)?;
        if tcp_keepalive != Duration::ZERO && !(ONE_SECOND..=MAX_WAIT.0).contains(&tcp_keepalive) {
            return Err(ConfigError {
                name: "TESSERA_TCP_KEEPALIVE",
                value: self.tcp_keepalive.clone(),
                expected: "expected 0s (off) or from 1s to 1h".into(),
            });
        }
        let keepalive_interval = between(
            "TESSERA_KEEPALIVE_INTERVAL",
            &self.keepalive_interval,
            MAX_WAIT,
        )?;
        let keepalive_timeout = between(
            "TESSERA_KEEPALIVE_TIMEOUT",
            &self.keepalive_timeout,
            MAX_WAIT,
        )?;
        // A ping that may take longer to answer than the next one is due never times out.
        if keepalive_timeout >= keepalive_interval {
            return Err(ConfigError {
                name: "TESSERA_KEEPALIVE_TIMEOUT",
                value: self.keepalive_timeout.clone(),
                expected: format!(
                    "expected less than TESSERA_KEEPALIVE_INTERVAL ({})",
                    self.keepalive_interval.trim()
                ),
            });
        }
        Ok(Limits {
            grpc_max_streams_per_connection: whole(
                "TESSERA_GRPC_MAX_STREAMS_PER_CONNECTION",
                &self.grpc_max_streams_per_connection,
                1..=100_000,
            )?,
            http_max_streams_per_connection: whole(
                "TESSERA_HTTP_MAX_STREAMS_PER_CONNECTION",
                &self.http_max_streams_per_connection,
                1..=100_000,
            )?,
            keepalive_interval,
            keepalive_timeout,
            tcp_keepalive: (tcp_keepalive != Duration::ZERO).then_some(tcp_keepalive),
            grpc_max_connection_age: between(
                "TESSERA_GRPC_MAX_CONNECTION_AGE",
                &self.grpc_max_connection_age,
                MAX_AGE,
            )?,
            grpc_max_connection_age_grace: between(
                "TESSERA_GRPC_MAX_CONNECTION_AGE_GRACE",
                &self.grpc_max_connection_age_grace,
                MAX_WAIT,
            )?,
            http_max_connection_age: between(
                "TESSERA_HTTP_MAX_CONNECTION_AGE",
                &self.http_max_connection_age,
                MAX_AGE,
            )?,
            http_max_connections: whole(
                "TESSERA_HTTP_MAX_CONNECTIONS",
                &self.http_max_connections,
                1..=1_000_000,
            )? as usize,
            http_header_timeout: between(
                "TESSERA_HTTP_HEADER_TIMEOUT",
                &self.http_header_timeout,
                MAX_WAIT,
            )?,
        })
    }
}

/// A duration from 1s to `max`.
fn between(
    name: &'static str,
    text: &str,
    (max, max_text): (Duration, &str),
) -> Result<Duration, ConfigError> {
    let d = duration(name, text)?;
    if !(ONE_SECOND..=max).contains(&d) {
        return Err(ConfigError {
            name,
            value: text.to_owned(),
            expected: format!("expected from 1s to {max_text}"),
        });
    }
    Ok(d)
}

fn whole(
    name: &'static str,
    text: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ConfigError> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| ConfigError {
            name,
            value: text.to_owned(),
            expected: format!(
                "expected a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitArgs,
    }

    fn parse(args: &[&str]) -> Result<Limits, ConfigError> {
        let mut argv = vec!["tessera"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .expect("flags parse")
            .limits
            .limits()
    }

    #[test]
    fn the_defaults_are_the_limits_documented() {
        assert_eq!(parse(&[]).expect("defaults"), Limits::default());
    }

    #[test]
    fn limits_are_read_and_bad_ones_name_their_setting() {
        let limits = parse(&[
            "--grpc-max-streams-per-connection",
            "8",
            "--tcp-keepalive",
            "0s",
            "--http-max-connection-age",
            "1m",
        ])
        .expect("valid");
        assert_eq!(limits.grpc_max_streams_per_connection, 8);
        assert_eq!(limits.tcp_keepalive, None);
        assert_eq!(limits.http_max_connection_age, Duration::from_secs(60));
        // The upper bounds themselves are allowed.
        let longest = parse(&[
            "--grpc-max-connection-age",
            "24h",
            "--keepalive-interval",
            "1h",
            "--keepalive-timeout",
            "59m",
            "--grpc-max-connection-age-grace",
            "1h",
        ])
        .expect("the bounds");
        assert_eq!(longest.grpc_max_connection_age, Duration::from_secs(86_400));
        for (flag, value, name) in [
            (
                "--grpc-max-streams-per-connection",
                "0",
                "TESSERA_GRPC_MAX_STREAMS_PER_CONNECTION",
            ),
            (
                "--http-max-streams-per-connection",
                "many",
                "TESSERA_HTTP_MAX_STREAMS_PER_CONNECTION",
            ),
            ("--keepalive-interval", "0s", "TESSERA_KEEPALIVE_INTERVAL"),
            ("--keepalive-timeout", "soon", "TESSERA_KEEPALIVE_TIMEOUT"),
            ("--tcp-keepalive", "500ms", "TESSERA_TCP_KEEPALIVE"),
            (
                "--grpc-max-connection-age",
                "0s",
                "TESSERA_GRPC_MAX_CONNECTION_AGE",
            ),
            (
                "--http-max-connections",
                "lots",
                "TESSERA_HTTP_MAX_CONNECTIONS",
            ),
            ("--http-header-timeout", "0s", "TESSERA_HTTP_HEADER_TIMEOUT"),
            // Past the upper bounds (an absurd one would overflow the clocks that use it).
            (
                "--grpc-max-connection-age",
                "300000000000y",
                "TESSERA_GRPC_MAX_CONNECTION_AGE",
            ),
            (
                "--http-max-connection-age",
                "25h",
                "TESSERA_HTTP_MAX_CONNECTION_AGE",
            ),
            ("--keepalive-interval", "2h", "TESSERA_KEEPALIVE_INTERVAL"),
            ("--keepalive-timeout", "0s", "TESSERA_KEEPALIVE_TIMEOUT"),
            // Not shorter than the interval (30s).
            ("--keepalive-timeout", "30s", "TESSERA_KEEPALIVE_TIMEOUT"),
            ("--tcp-keepalive", "300000000000y", "TESSERA_TCP_KEEPALIVE"),
            (
                "--grpc-max-connection-age-grace",
                "0s",
                "TESSERA_GRPC_MAX_CONNECTION_AGE_GRACE",
            ),
            (
                "--grpc-max-connection-age-grace",
                "2h",
                "TESSERA_GRPC_MAX_CONNECTION_AGE_GRACE",
            ),
            (
                "--http-header-timeout",
                "300000000000y",
                "TESSERA_HTTP_HEADER_TIMEOUT",
            ),
        ] {
            let err = parse(&[flag, value]).expect_err(flag);
            assert_eq!(err.name, name);
            assert!(err.to_string().starts_with(&format!("invalid {name}")));
        }
    }
}
