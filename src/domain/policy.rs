//! Token lifetimes and validation tolerances: the domain's view of the configuration.
use std::time::Duration;

/// How long things live, and how much clock difference is tolerated.
#[derive(Clone, Debug)]
pub struct TokenPolicy {
    pub issuer: String,
    pub access_token_ttl: Duration,
    pub trusted_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub session_max_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub clock_leeway: Duration,
}

impl Default for TokenPolicy {
    /// SPEC §2 and §5 defaults.
    fn default() -> Self {
        Self {
            issuer: "tessera".into(),
            access_token_ttl: Duration::from_secs(600),
            trusted_token_ttl: Duration::from_secs(300),
            refresh_token_ttl: Duration::from_secs(30 * 86_400),
            session_max_ttl: Duration::from_secs(180 * 86_400),
            refresh_reuse_grace: Duration::from_secs(10),
            clock_leeway: Duration::from_secs(5),
        }
    }
}
