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

/// How often instances look for a signing key rotated elsewhere.
pub const KEY_FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

impl TokenPolicy {
    /// How long a key that stopped signing must keep verifying: until the last token it
    /// signed has expired, as seen by any instance (instances follow a rotation within
    /// [`KEY_FOLLOW_INTERVAL`], so they may sign with it a little after the rotation).
    pub fn key_verification_window(&self) -> Duration {
        self.access_token_ttl.max(self.trusted_token_ttl)
            + self.clock_leeway
            + KEY_FOLLOW_INTERVAL * 2
    }
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
