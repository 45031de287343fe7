//! The background jobs of a serving instance, in one place: each runs every interval until
//! the server stops, through [`every`].
//!
//! - the database probe (a read and a write every 500 ms): health and the token service learn
//!   whether the database is usable;
//! - the revocation follower: revocations made by other instances and the CLI;
//! - the key follower: signing keys rotated elsewhere;
//! - the clean-up: rows past their time;
//! - the SQLite checkpoint: the write-ahead log copied into the database file, off the
//!   writers' path.
use std::{future::Future, sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::domain::{
    DomainError, TokenService, cleanup, clock::now_ms, policy::KEY_FOLLOW_INTERVAL, revocation_view,
};
use crate::grpc::health::report;
use crate::store::Store;

/// Runs `tick` every `interval()` (asked anew each time, so that it may jitter) until `stop`
/// turns true. The first tick comes after the first interval. A tick is never cut short: a
/// stop that comes during one is seen when it ends.
pub async fn every<Tick, Done>(
    interval: impl Fn() -> Duration,
    mut stop: watch::Receiver<bool>,
    mut tick: Tick,
) where
    Tick: FnMut() -> Done,
    Done: Future<Output = ()>,
{
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval()) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        tick().await;
    }
}

/// The running jobs of one instance; [`Jobs::stop`] ends them.
pub struct Jobs {
    stop: watch::Sender<bool>,
    running: Vec<JoinHandle<()>>,
}

impl Jobs {
    /// Starts every job of a serving instance.
    pub fn start(
        store: Store,
        tokens: Arc<TokenService>,
        health: HealthReporter,
        cleanup_interval: Duration,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut running = vec![
            tokio::spawn(probe_database(
                store.clone(),
                tokens.clone(),
                health,
                stopped.clone(),
            )),
            tokio::spawn(follow_revocations(tokens.clone(), stopped.clone())),
            tokio::spawn(follow_key_rotation(tokens.clone(), stopped.clone())),
        ];
        if store.connection().get_database_backend() == sea_orm::DbBackend::Sqlite {
            running.push(tokio::spawn(checkpoint_wal(store.clone(), stopped.clone())));
        }
        if !cleanup_interval.is_zero() {
            running.push(tokio::spawn(clean_up(
                store,
                tokens,
                cleanup_interval,
                stopped,
            )));
        }
        Self { stop, running }
    }

    /// Tells every job to stop: none starts another tick, and a probe that ends after this
    /// reports nothing (the server reports NOT_SERVING itself).
    pub fn signal_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops every job now.
    pub fn stop(self) {
        self.signal_stop();
        for job in self.running {
            job.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The SQLite checkpoint.

/// How often the write-ahead log is checkpointed: often enough that a commit seldom reaches
/// the size at which it would checkpoint itself (`connect`), seldom enough that a page written
/// by many commits is copied once.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Checkpoints the write-ahead log every [`CHECKPOINT_INTERVAL`] (started on SQLite only).
async fn checkpoint_wal(store: Store, stop: watch::Receiver<bool>) {
    every(
        || CHECKPOINT_INTERVAL,
        stop,
        || async {
            if let Err(e) = store.checkpoint_wal().await {
                // Commits checkpoint themselves past 10,000 log pages: nothing is lost, but a
                // failure every second says something is wrong with the file.
                tracing::warn!(error = %e, "checkpoint of the write-ahead log failed");
            }
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The database probe.

/// How often the database is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// A probe that takes longer than this counts as failed: a database that hangs is as
/// unusable as one that refuses.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Probes that time out in a row before a database counts as unusable. One slow probe is what
/// a busy writer queue or a checkpoint looks like; a database that hangs fails every probe
/// (and the calls that need it meet their deadline in the meantime).
const TIMEOUTS_BEFORE_UNUSABLE: u32 = 2;

/// What one probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    Usable,
    /// The database answered with an error: it refuses connections, reads or writes.
    Failed,
    TimedOut,
}

/// Turns probes into a verdict: an error counts at once, a timeout only when it is the
/// second in a row (or when the database was not usable before).
#[derive(Debug, Default)]
struct ProbeVerdict {
    usable: Option<bool>,
    timeouts_in_a_row: u32,
}

impl ProbeVerdict {
    /// The verdict after `found`, and whether it changed.
    fn after(&mut self, found: Probe) -> (bool, bool) {
        let usable = match found {
            Probe::Usable => true,
            Probe::Failed => false,
            Probe::TimedOut => {
                self.timeouts_in_a_row += 1;
                self.usable == Some(true) && self.timeouts_in_a_row < TIMEOUTS_BEFORE_UNUSABLE
            }
        };
        if found != Probe::TimedOut {
            self.timeouts_in_a_row = 0;
        }
        let changed = self.usable != Some(usable);
        self.usable = Some(usable);
        (usable, changed)
    }
}

/// One read and one write, within the probe timeout.
async fn probe(store: &Store) -> Probe {
    let probe = async {
        store.ping().await?;
        store.probe_write(now_ms()).await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => Probe::Usable,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, source = ?std::error::Error::source(&e), "database probe failed");
            Probe::Failed
        }
        Err(_) => {
            tracing::debug!("database probe timed out");
            Probe::TimedOut
        }
    }
}

/// Probes the database at once and then every [`PROBE_INTERVAL`], reporting each change to
/// health and to the token service (which answers UNAVAILABLE while the database is unusable).
async fn probe_database(
    store: Store,
    tokens: Arc<TokenService>,
    health: HealthReporter,
    stop: watch::Receiver<bool>,
) {
    let verdict = parking_lot::Mutex::new(ProbeVerdict::default());
    let probe_once = || async {
        let found = probe(&store).await;
        if *stop.borrow() {
            // Stopping: the server reports NOT_SERVING itself; a late probe must not undo it.
            return;
        }
        let (usable, changed) = verdict.lock().after(found);
        tokens.set_database_usable(usable);
        if changed {
            if usable {
                tracing::info!("database answers: serving");
            } else {
                tracing::warn!("database does not answer or refuses writes: not serving");
            }
            let status = if usable {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            report(&health, status).await;
        }
    };
    probe_once().await;
    every(|| PROBE_INTERVAL, stop.clone(), probe_once).await;
}

// ---------------------------------------------------------------------------------------------
// Followers and clean-up.

/// Reads revocations made by other instances and the CLI into this instance's view.
async fn follow_revocations(tokens: Arc<TokenService>, stop: watch::Receiver<bool>) {
    every(
        || revocation_view::POLL_INTERVAL,
        stop,
        || async {
            let view = tokens.revocations();
            // Bounded, so that a read that hangs still lets the view be judged stale.
            let read = tokio::time::timeout(revocation_view::STALE_AFTER, view.refresh())
                .await
                .unwrap_or(Err(DomainError::Unavailable));
            if let Err(e) = read {
                // Introspection answers UNAVAILABLE once the view is too old; keep trying.
                tracing::debug!(reason = e.reason(), "could not read revocations");
                if view.is_stale(tokens.now_ms()) {
                    // Streams must not go on heartbeating over revocations they are not sent.
                    view.end_streams();
                }
            }
        },
    )
    .await;
}

/// Picks up keys rotated elsewhere (another instance or `tessera keys rotate`) within a second.
async fn follow_key_rotation(tokens: Arc<TokenService>, stop: watch::Receiver<bool>) {
    every(
        || KEY_FOLLOW_INTERVAL,
        stop,
        || async {
            match tokens.keys().follow_rotation().await {
                Ok(true) => {
                    tracing::info!(kid = %tokens.keys().signing_kid(), "signing key rotated")
                }
                Ok(false) => {}
                // The database probe reports an unreachable database; try again next tick.
                Err(e) => tracing::debug!(error = %e, "could not check for a key rotation"),
            }
        },
    )
    .await;
}

/// Deletes rows past their time every `interval` (plus up to a tenth more, so that instances
/// started together spread out). Deletes are idempotent: any number of instances may do this.
async fn clean_up(
    store: Store,
    tokens: Arc<TokenService>,
    interval: Duration,
    stop: watch::Receiver<bool>,
) {
    let jittered = || {
        use rand::Rng;
        let tenth = u64::try_from(interval.as_millis() / 10).unwrap_or(u64::MAX);
        interval + Duration::from_millis(rand::thread_rng().gen_range(0..=tenth))
    };
    every(jittered, stop, || async {
        let started = std::time::Instant::now();
        match cleanup::delete_expired(&store, tokens.policy(), tokens.now_ms()).await {
            Ok(deleted) => tracing::debug!(
                refresh_tokens = deleted.refresh_tokens,
                sessions = deleted.sessions,
                revocation_events = deleted.revocation_events,
                login_throttles = deleted.login_throttles,
                took_ms = started.elapsed().as_millis(),
                "deleted expired rows"
            ),
            // Whatever was not deleted now is deleted next time.
            Err(e) => tracing::warn!(
                reason = e.reason(),
                error = %error_chain(&e),
                "could not delete expired rows"
            ),
        }
    })
    .await;
}

/// An error and its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn an_error_counts_at_once_and_a_timeout_only_the_second_in_a_row() {
        let mut verdict = ProbeVerdict::default();
        assert_eq!(verdict.after(Probe::Usable), (true, true));
        assert_eq!(verdict.after(Probe::TimedOut), (true, false));
        assert_eq!(verdict.after(Probe::Usable), (true, false));
        assert_eq!(verdict.after(Probe::TimedOut), (true, false));
        assert_eq!(verdict.after(Probe::TimedOut), (false, true));
        assert_eq!(verdict.after(Probe::Usable), (true, true));
        assert_eq!(verdict.after(Probe::Failed), (false, true));
    }

    #[test]
    fn a_timeout_before_any_answer_is_not_usable() {
        let mut verdict = ProbeVerdict::default();
        assert_eq!(verdict.after(Probe::TimedOut), (false, true));
    }

    #[tokio::test(start_paused = true)]
    async fn every_ticks_once_per_interval_until_stopped() {
        let ticks = Arc::new(AtomicU32::new(0));
        let (stop, stopped) = watch::channel(false);
        let job = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                every(
                    || Duration::from_secs(1),
                    stopped,
                    || async {
                        ticks.fetch_add(1, Ordering::SeqCst);
                    },
                )
                .await;
            }
        });
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
        stop.send(true).expect("the job listens");
        job.await.expect("the job ends when told to stop");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
    }
}
