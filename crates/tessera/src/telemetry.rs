//! tracing: human-readable or JSON lines on stderr; level from RUST_LOG (default info).
use tracing_subscriber::{EnvFilter, fmt};

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl LogFormat {
    /// Parses TESSERA_LOG_FORMAT.
    pub fn parse(text: &str) -> Result<Self, crate::config::ConfigError> {
        match text {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(crate::config::ConfigError {
                name: "TESSERA_LOG_FORMAT",
                value: other.to_owned(),
                expected: "expected pretty or json".into(),
            }),
        }
    }
}

/// Installs the global subscriber, with `default_level` unless RUST_LOG says otherwise.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
