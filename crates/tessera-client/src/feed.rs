//! Follows `WatchRevocations` (SPEC §7) into a [`RevocationSet`]: a snapshot first, then each
//! revocation; on any break it reconnects with backoff and resumes after the last sequence
//! applied, so that nothing is missed.
//!
//! The feed vouches for the revocations known when it is fresh: a message arrived, or the
//! server accepted a stream (it refuses while its own view is stale), within the allowed
//! number of heartbeat intervals. A stream silent for one and a half intervals is reopened: a
//! half-dead connection shows up as a failed reconnect instead of a silent wait.
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tessera_proto::pb::{self, watch_revocations_response::Event};
use tokio::sync::watch;
use tonic::Request;

use crate::{
    claims::now_ms,
    revocations::RevocationSet,
    token_source::TokenSource,
    transport::{Transport, auth_client},
};

/// When the feed last proved to be up to date.
pub(crate) struct Freshness {
    origin: Instant,
    /// Milliseconds from `origin` to the last proof, plus one; 0: never.
    last: AtomicU64,
    /// How long without a proof the feed still vouches for what it knows.
    allowed: Duration,
}

impl Freshness {
    pub(crate) fn new(allowed: Duration) -> Self {
        Self {
            origin: Instant::now(),
            last: AtomicU64::new(0),
            allowed,
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last
            .fetch_max(elapsed.saturating_add(1), Ordering::Relaxed);
    }

    pub(crate) fn is_fresh(&self) -> bool {
        match self.last.load(Ordering::Relaxed) {
            0 => false,
            last => {
                let proof = self.origin + Duration::from_millis(last - 1);
                proof.elapsed() <= self.allowed
            }
        }
    }
}

/// What the follower task needs.
pub(crate) struct Feed {
    pub(crate) transport: Transport,
    pub(crate) credentials: Option<TokenSource>,
    pub(crate) revocations: Arc<RevocationSet>,
    pub(crate) freshness: Arc<Freshness>,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) leeway_ms: i64,
    /// Turns true once the first snapshot is applied.
    pub(crate) started: watch::Sender<bool>,
}

/// Why one stream ended.
enum End {
    /// The stream had worked: reconnect at once.
    AfterProgress,
    /// It never worked: back off before the next attempt.
    Failed(String),
}

impl Feed {
    /// Follows the feed until the task is aborted (the verifier is dropped).
    pub(crate) async fn run(self) {
        let first_backoff = Duration::from_millis(50);
        let mut backoff = first_backoff;
        let mut failing = false;
        loop {
            match self.follow_one_stream().await {
                End::AfterProgress => {
                    backoff = first_backoff;
                    failing = false;
                }
                End::Failed(error) => {
                    if failing {
                        tracing::debug!(%error, "revocation feed still failing");
                    } else {
                        tracing::warn!(%error, "revocation feed failed: reconnecting with backoff");
                    }
                    failing = true;
                    tokio::time::sleep(with_jitter(backoff)).await;
                    backoff = (backoff * 2).min(self.heartbeat_interval.max(first_backoff));
                }
            }
        }
    }

    async fn follow_one_stream(&self) -> End {
        let mut request = Request::new(pb::WatchRevocationsRequest {
            after_sequence: self.revocations.resume_after(),
        });
        if let Some(source) = &self.credentials {
            match source.token().await {
                Ok(token) => {
                    request
                        .metadata_mut()
                        .insert("authorization", token.authorization());
                }
                Err(error) => return End::Failed(error.to_string()),
            }
        }
        let mut stream = match auth_client(&self.transport)
            .watch_revocations(request)
            .await
        {
            Ok(response) => response.into_inner(),
            Err(status) => {
                return End::Failed(format!("{:?}: {}", status.code(), status.message()));
            }
        };
        // The server accepts a stream only while its own view is fresh.
        if self.revocations.has_started() {
            self.freshness.touch();
        }
        let silence = self.heartbeat_interval + self.heartbeat_interval / 2;
        let mut progressed = false;
        loop {
            let message = match tokio::time::timeout(silence, stream.message()).await {
                // Silent too long: reopen, which shows whether the server is still there.
                Err(_) => return End::AfterProgress,
                Ok(Ok(Some(message))) => message,
                Ok(Ok(None)) if progressed => return End::AfterProgress,
                Ok(Ok(None)) => return End::Failed("the stream ended at once".into()),
                Ok(Err(status)) if progressed => {
                    tracing::debug!(code = ?status.code(), "revocation stream ended: resuming");
                    return End::AfterProgress;
                }
                Ok(Err(status)) => {
                    return End::Failed(format!("{:?}: {}", status.code(), status.message()));
                }
            };
            match message.event {
                Some(Event::Snapshot(snapshot)) => {
                    self.revocations.apply_snapshot(&snapshot);
                    self.started.send_replace(true);
                }
                Some(Event::Revocation(revocation)) => self.revocations.apply(&revocation),
                Some(Event::Heartbeat(heartbeat)) => {
                    if heartbeat.sequence > self.revocations.resume_after() {
                        // The server sent something this stream did not carry: resume.
                        return End::AfterProgress;
                    }
                    self.revocations.forget_expired(now_ms(), self.leeway_ms);
                }
                None => {}
            }
            progressed = true;
            if self.revocations.has_started() {
                self.freshness.touch();
            }
        }
    }
}

/// `delay` plus up to a quarter more, so that many services do not reconnect in step.
fn with_jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    delay + delay / 4 * (nanos % 1_000) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_starts_stale_and_lasts_its_allowance() {
        let fresh = Freshness::new(Duration::from_secs(60));
        assert!(!fresh.is_fresh());
        fresh.touch();
        assert!(fresh.is_fresh());
        let brief = Freshness::new(Duration::ZERO);
        brief.touch();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!brief.is_fresh());
    }
}
