//! `--soak DURATION`: a mixed load that should produce no error by design, run for a long
//! time, sampling throughput, VmRSS and table sizes every `--sample-every`. It fails (non-zero
//! exit) when the error rate reaches 0.1%, or when VmRSS grows 10% after `--soak-warmup`: the
//! peak of the second half of the samples from the warm-up on against the peak of the first.
//!
//! Unlike `mixed`, the soak never oversubscribes the server's hashing pool: logins go through
//! a gate of [`LOGIN_SLOTS`]. Every slot holds a user session that it refreshes, and logs out
//! and back in every minute or so; anonymous tokens are issued, introspected while fresh, and
//! some revoked; integration logins start sessions that expire. With the in-process server's
//! short lifetimes ([`policy`]) and clean-up interval, every table the clean-up keeps bounded
//! sees rows come and go within the run.
use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use serde_json::json;
use tessera::{
    domain::policy::TokenPolicy,
    store::{Store, TableSizes},
};
use tessera_testkit::{create_users, describe};
use tokio::sync::Semaphore;

use crate::{
    Setup,
    args::{describe_mix, mix_json},
    engine::{Driver, Slot, Tally, drive, open_sessions},
    fixture::{Clients, Credentials},
    report::{counts_text, say},
    requests::{Outcome, status_key},
    rss::{mib, mib_f64, rss_kib},
};

/// Logins in flight at most: below the server's hashing permits (one per core), so that no
/// login is ever turned away for capacity.
pub const LOGIN_SLOTS: usize = 1;
/// Clean-up interval of the in-process server during a soak.
pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(10);
/// Error rate at which the soak fails.
const MAX_ERROR_RATE: f64 = 0.001;
/// Fresh anonymous tokens kept for introspection.
const RECENT_TOKENS: usize = 4096;

/// Short lifetimes for the in-process server, so that rows expire and are cleaned up within
/// minutes: expired refresh tokens after about 1m15s, sessions (integration ones run to their
/// maximum) after about 2m25s. Slots log out and in within the session maximum.
pub fn policy() -> TokenPolicy {
    TokenPolicy {
        access_token_ttl: Duration::from_secs(30),
        trusted_token_ttl: Duration::from_secs(30),
        refresh_token_ttl: Duration::from_secs(60),
        session_max_ttl: Duration::from_secs(90),
        ..TokenPolicy::default()
    }
}

/// The default warm-up: 2m (the in-process server's tables are then nearly steady), or half
/// the soak if that is shorter.
fn default_warmup(length: Duration) -> Duration {
    (length / 2).min(Duration::from_secs(120))
}

/// One request kind of the soak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SoakOp {
    IntrospectHot,
    IntrospectRecent,
    IssueAnonymous,
    Refresh,
    RevokeAnonymous,
    IssueIntegration,
}

impl SoakOp {
    fn name(self) -> &'static str {
        match self {
            Self::IntrospectHot => "introspect-hot",
            Self::IntrospectRecent => "introspect-recent",
            Self::IssueAnonymous => "issue-anonymous",
            Self::Refresh => "refresh",
            Self::RevokeAnonymous => "revoke-anonymous",
            Self::IssueIntegration => "issue-integration",
        }
    }
}

/// The soak's mix, in percent; on top of it every slot logs out and in every 30–60 s.
const SOAK_MIX: [(SoakOp, u64); 6] = [
    (SoakOp::IntrospectHot, 30),
    (SoakOp::IntrospectRecent, 30),
    (SoakOp::IssueAnonymous, 20),
    (SoakOp::Refresh, 15),
    (SoakOp::RevokeAnonymous, 4),
    (SoakOp::IssueIntegration, 1),
];

pub fn mix_description() -> String {
    format!(
        "{}, each slot logs out and in every 30-60s",
        describe_mix(&SOAK_MIX, SoakOp::name)
    )
}

/// What every slot shares.
struct Shared {
    clients: Clients,
    password: String,
    /// The introspection bearer and hot token, renewed well before they expire.
    credentials: RwLock<Arc<Credentials>>,
    /// Recently issued anonymous tokens (never revoked ones), with when they were issued.
    recent: Mutex<VecDeque<(Instant, String)>>,
    /// Past this age a token is not introspected any more (half its lifetime).
    fresh_for: Duration,
    logins: Semaphore,
    tally: Tally,
}

impl Shared {
    fn credentials(&self) -> Arc<Credentials> {
        match self.credentials.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn renew(&self, renewed: Credentials) {
        let renewed = Arc::new(renewed);
        match self.credentials.write() {
            Ok(mut guard) => *guard = renewed,
            Err(poisoned) => *poisoned.into_inner() = renewed,
        }
    }

    fn remember(&self, token: String) {
        let mut recent = match self.recent.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if recent.len() >= RECENT_TOKENS {
            recent.pop_front();
        }
        recent.push_back((Instant::now(), token));
    }

    /// A fresh token among the recent ones, if any.
    fn pick_recent(&self, pick: u64) -> Option<String> {
        let recent = match self.recent.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if recent.is_empty() {
            return None;
        }
        let index = usize::try_from(pick).unwrap_or(0) % recent.len();
        let (issued, token) = &recent[index];
        (issued.elapsed() < self.fresh_for).then(|| token.clone())
    }
}

/// One in-flight slot of the soak.
struct SoakSlot {
    slot: Slot,
    shared: Arc<Shared>,
    session_started: Instant,
    /// How long this slot keeps a session before logging out and in again.
    cycle: Duration,
}

impl SoakSlot {
    /// Logs this slot's user in, through the login gate.
    async fn log_in(&mut self) -> Outcome {
        let f = &*self.shared;
        let _permit = f
            .logins
            .acquire()
            .await
            .map_err(|_| "gate-closed".to_owned())?;
        let slot = &mut self.slot;
        let token = slot
            .caller
            .log_in(&f.clients.market_id, &slot.username, &f.password)
            .await
            .map_err(|s| status_key(&s))?;
        slot.refresh_token = Some(token);
        self.session_started = Instant::now();
        Ok(())
    }

    /// Ends this slot's session with its refresh token (a logout).
    async fn log_out(&mut self) -> Outcome {
        let Some(token) = self.slot.refresh_token.take() else {
            return Ok(());
        };
        let market_id = &self.shared.clients.market_id;
        self.slot.caller.revoke(market_id, &token).await
    }
}

impl Driver for SoakSlot {
    type Op = SoakOp;

    /// Logs out and back in when the session is due, as a turn of its own.
    async fn next(&mut self, _counting: bool) -> Option<SoakOp> {
        if self.slot.refresh_token.is_none() || self.session_started.elapsed() >= self.cycle {
            let out = self.log_out().await;
            self.shared.tally.record(Some("logout"), out);
            let out = self.log_in().await;
            if out.is_err() {
                // Do not spin on a failing login.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.shared.tally.record(Some("login"), out);
            return None;
        }
        Some(self.slot.next_of(&SOAK_MIX, SoakOp::IntrospectHot))
    }

    async fn send(&mut self, op: SoakOp) -> Outcome {
        let (f, slot) = (&*self.shared, &mut self.slot);
        let market_id = &f.clients.market_id;
        match op {
            SoakOp::IntrospectHot => {
                let credentials = f.credentials();
                slot.caller
                    .introspect_active(&credentials.bearer, &credentials.hot_token)
                    .await
            }
            SoakOp::IntrospectRecent => {
                let credentials = f.credentials();
                let pick = slot.next_random();
                let token = f
                    .pick_recent(pick)
                    .unwrap_or_else(|| credentials.hot_token.clone());
                slot.caller
                    .introspect_active(&credentials.bearer, &token)
                    .await
            }
            SoakOp::IssueAnonymous => {
                let token = slot.caller.issue_anonymous(market_id).await?;
                f.remember(token);
                Ok(())
            }
            SoakOp::RevokeAnonymous => {
                let token = slot.caller.issue_anonymous(market_id).await?;
                slot.caller.revoke(market_id, &token).await
            }
            SoakOp::IssueIntegration => {
                slot.caller
                    .issue_integration(&f.clients.integ_id, &f.clients.integ_secret)
                    .await
            }
            SoakOp::Refresh => {
                let Some(token) = slot.refresh_token.take() else {
                    return Err("no-session".into());
                };
                slot.refresh_token = Some(slot.caller.rotate(market_id, &token).await?);
                Ok(())
            }
        }
    }

    fn record(&mut self, op: SoakOp, outcome: Outcome, _latency_ns: u64) {
        self.shared.tally.record(Some(op.name()), outcome);
    }
}

/// One sample line.
struct Sample {
    at: Duration,
    req_per_s: f64,
    requests: u64,
    errors: u64,
    rss_kib: Option<u64>,
    rows: Option<TableSizes>,
}

fn rows_text(rows: Option<&TableSizes>) -> String {
    rows.map_or_else(
        || "rows n/a".into(),
        |r| {
            format!(
                "sessions {} refresh_tokens {} revoked_tokens {} revocation_events {} login_throttles {}",
                r.sessions,
                r.refresh_tokens,
                r.revoked_tokens,
                r.revocation_events,
                r.login_throttles
            )
        },
    )
}

fn rows_json(rows: Option<&TableSizes>) -> serde_json::Value {
    rows.map_or(serde_json::Value::Null, |r| {
        json!({
            "sessions": r.sessions,
            "refresh_tokens": r.refresh_tokens,
            "revoked_tokens": r.revoked_tokens,
            "revocation_events": r.revocation_events,
            "login_throttles": r.login_throttles,
        })
    })
}

async fn table_sizes(store: &Store) -> Option<TableSizes> {
    match store.table_sizes().await {
        Ok(sizes) => Some(sizes),
        Err(e) => {
            eprintln!("tessera-bench: warning: cannot count rows: {e}");
            None
        }
    }
}

/// Runs the soak against the server the setup's clients are registered on.
pub async fn run(setup: &mut Setup<'_>, length: Duration) -> anyhow::Result<()> {
    let (args, store, channels) = (setup.args, setup.store, &setup.channels);
    let fixture = &mut setup.fixture;
    let usernames = create_users(
        store,
        &setup.hasher,
        &format!("bench-{}-soak", fixture.run_id),
        setup.user_count,
        &fixture.password,
    )
    .await?;
    let warmup = args.soak_warmup.unwrap_or_else(|| default_warmup(length));
    if length <= warmup {
        bail!(
            "--soak ({}) must be longer than --soak-warmup ({})",
            humantime::format_duration(length),
            humantime::format_duration(warmup)
        );
    }
    if args.sample_every.is_zero() {
        bail!("--sample-every must be more than 0s");
    }
    fixture.renew(&channels[0]).await?;
    // The hot token's lifetime says how long the server's tokens live.
    let token_ttl = {
        let probe = crate::requests::Caller::new(channels[0].clone())
            .issue(&fixture.clients.market_id, "")
            .await
            .map_err(|s| anyhow!("cannot issue an anonymous token: {}", describe(&s)))?;
        Duration::from_secs(probe.expires_in.max(2).unsigned_abs())
    };
    let shared = Arc::new(Shared {
        clients: fixture.clients.clone(),
        password: fixture.password.clone(),
        credentials: RwLock::new(Arc::new(Credentials {
            bearer: fixture.credentials.bearer.clone(),
            hot_token: fixture.credentials.hot_token.clone(),
        })),
        recent: Mutex::new(VecDeque::with_capacity(RECENT_TOKENS)),
        fresh_for: token_ttl / 2,
        logins: Semaphore::new(LOGIN_SLOTS),
        tally: Tally::default(),
    });

    let slots = Slot::many(channels, args.concurrency, &usernames, 0x50A4_0000);
    let (slots, took) = open_sessions(
        slots,
        LOGIN_SLOTS,
        &fixture.clients.market_id,
        &fixture.password,
    )
    .await?;
    eprintln!(
        "soak: {} sessions logged in in {:.2}s; tokens live {}; samples every {}, RSS baseline at the first sample from {}",
        slots.len(),
        took.as_secs_f64(),
        humantime::format_duration(token_ttl),
        humantime::format_duration(args.sample_every),
        humantime::format_duration(warmup),
    );

    let rows_at_start = table_sizes(store).await;
    say(
        args.json,
        format!(
            "soak: {} for {}; mix: {}",
            if args.target.is_some() {
                "target server"
            } else {
                "in-process server"
            },
            humantime::format_duration(length),
            mix_description()
        ),
    );
    say(
        args.json,
        format!("rows at start: {}", rows_text(rows_at_start.as_ref())),
    );

    let start = Instant::now();
    let end = start + length;
    let drivers = slots
        .into_iter()
        .map(|slot| SoakSlot {
            cycle: Duration::from_secs(30 + (slot.index as u64 * 7) % 31),
            slot,
            shared: shared.clone(),
            session_started: Instant::now(),
        })
        .collect();
    let load = tokio::spawn(drive(drivers, start, end));

    // Renews the bearer and the hot token at a third of their lifetime.
    let renewer = {
        let shared = shared.clone();
        let channel = channels[0].clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(token_ttl / 3).await;
                match shared.clients.credentials(&channel).await {
                    Ok(renewed) => {
                        shared.renew(renewed);
                        shared.tally.record(Some("renew-credentials"), Ok(()));
                    }
                    Err(e) => {
                        eprintln!("tessera-bench: soak: cannot renew credentials: {e:#}");
                        shared
                            .tally
                            .record(Some("renew-credentials"), Err("failed".into()));
                    }
                }
            }
        })
    };

    let mut samples: Vec<Sample> = Vec::new();
    let mut last_requests = 0;
    let mut last_at = Duration::ZERO;
    let mut next = start + args.sample_every;
    loop {
        tokio::time::sleep_until(next.min(end).into()).await;
        let at = start.elapsed();
        let requests = shared.tally.requests();
        let errors = shared.tally.errors();
        let rows = table_sizes(store).await;
        let span = (at - last_at).as_secs_f64().max(1e-9);
        let sample = Sample {
            at,
            req_per_s: (requests - last_requests) as f64 / span,
            requests,
            errors,
            rss_kib: rss_kib(),
            rows,
        };
        say(
            args.json,
            format!(
                "[{:>5.0}s] {:>7.0} req/s, errors {} of {}, RSS {} MiB, {}",
                sample.at.as_secs_f64(),
                sample.req_per_s,
                sample.errors,
                sample.requests,
                mib(sample.rss_kib),
                rows_text(sample.rows.as_ref())
            ),
        );
        last_requests = requests;
        last_at = at;
        samples.push(sample);
        if Instant::now() >= end {
            break;
        }
        next += args.sample_every;
    }
    load.await.context("a soak task failed")??;
    renewer.abort();

    let rows_at_end = table_sizes(store).await;
    let max_rss_growth = args.soak_max_rss_growth / 100.0;
    let summary = Summary::of(&samples, &shared.tally, warmup, length, max_rss_growth);
    summary.print(rows_at_start.as_ref(), rows_at_end.as_ref(), args.json);
    if args.json {
        let json = json!({
            "soak_s": length.as_secs_f64(),
            "concurrency": args.concurrency,
            "connections": args.connections,
            "mix_percent": mix_json(&SOAK_MIX, SoakOp::name),
            "requests": summary.requests,
            "errors": summary.errors,
            "error_rate": summary.error_rate,
            "errors_by_key": shared.tally.errors_by_key(),
            "rss_kib_first_after_warmup": summary.first_kib,
            "rss_kib_max_after_warmup": summary.max_kib,
            "rss_kib_last": summary.last_kib,
            "rss_kib_peak_first_half": summary.baseline_peak,
            "rss_kib_peak_second_half": summary.end_peak,
            "rss_growth": summary.growth,
            "rows_at_start": rows_json(rows_at_start.as_ref()),
            "rows_at_end": rows_json(rows_at_end.as_ref()),
            "samples": samples.iter().map(|s| json!({
                "at_s": s.at.as_secs_f64(),
                "req_per_s": s.req_per_s,
                "requests": s.requests,
                "errors": s.errors,
                "rss_kib": s.rss_kib,
                "rows": rows_json(s.rows.as_ref()),
            })).collect::<Vec<_>>(),
            "passed": summary.failures.is_empty(),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    if summary.failures.is_empty() {
        Ok(())
    } else {
        bail!("soak failed: {}", summary.failures.join("; "))
    }
}

struct Summary {
    requests: u64,
    errors: u64,
    error_rate: f64,
    errors_by_key: BTreeMap<String, u64>,
    baseline_at: Option<Duration>,
    first_kib: Option<u64>,
    max_kib: Option<u64>,
    last_kib: Option<u64>,
    baseline_peak: Option<f64>,
    end_peak: Option<f64>,
    growth: Option<f64>,
    failures: Vec<String>,
}

impl Summary {
    fn of(
        samples: &[Sample],
        tally: &Tally,
        warmup: Duration,
        length: Duration,
        max_rss_growth: f64,
    ) -> Self {
        let requests = tally.requests();
        let errors = tally.errors();
        let error_rate = if requests == 0 {
            1.0
        } else {
            errors as f64 / requests as f64
        };
        // VmRSS swings by up to a third from one sample to the next with no trend (the
        // allocator gives pages back and takes them again), so that two samples, or two means
        // of a few, differ by chance. Growth compares peaks: of the first half of the samples
        // from the warm-up on, and of the second half. Memory that keeps growing raises the
        // second peak; memory that swings within a bound does not.
        let after: Vec<(Duration, u64)> = samples
            .iter()
            .filter(|s| s.at >= warmup)
            .filter_map(|s| Some((s.at, s.rss_kib?)))
            .collect();
        let peak =
            |window: &[(Duration, u64)]| window.iter().map(|(_, k)| *k as f64).reduce(f64::max);
        let baseline_at = after.first().map(|(at, _)| *at);
        let first_kib = after.first().map(|(_, k)| *k);
        let max_kib = after.iter().map(|(_, k)| *k).max();
        let last_kib = after.last().map(|(_, k)| *k);
        let (baseline_peak, end_peak) = if after.len() >= 2 {
            let half = after.len() / 2;
            (peak(&after[..half]), peak(&after[half..]))
        } else {
            (None, None)
        };
        let growth = match (baseline_peak, end_peak) {
            (Some(base), Some(end)) if base > 0.0 => Some((end - base) / base),
            _ => None,
        };
        let mut failures = Vec::new();
        if requests == 0 {
            failures.push("no request completed".into());
        } else if error_rate >= MAX_ERROR_RATE {
            failures.push(format!(
                "error rate {:.3}% (limit {:.1}%)",
                error_rate * 100.0,
                MAX_ERROR_RATE * 100.0
            ));
        }
        match growth {
            Some(g) if g >= max_rss_growth => failures.push(format!(
                "RSS grew {:.1}% after warm-up (limit {:.0}%)",
                g * 100.0,
                max_rss_growth * 100.0
            )),
            Some(_) => {}
            None => failures.push(format!(
                "fewer than two VmRSS samples after the warm-up ({} of {})",
                humantime::format_duration(warmup),
                humantime::format_duration(length)
            )),
        }
        Self {
            requests,
            errors,
            error_rate,
            errors_by_key: tally.errors_by_key(),
            baseline_at,
            first_kib,
            max_kib,
            last_kib,
            baseline_peak,
            end_peak,
            growth,
            failures,
        }
    }

    fn print(&self, start: Option<&TableSizes>, end: Option<&TableSizes>, json: bool) {
        let mut lines = vec![
            format!(
                "soak: {} requests, {} errors ({:.4}%){}",
                self.requests,
                self.errors,
                self.error_rate * 100.0,
                if self.errors_by_key.is_empty() {
                    String::new()
                } else {
                    format!(": {}", counts_text(&self.errors_by_key))
                }
            ),
            format!(
                "RSS (server + load generator) from {}s on: first {} MiB, max {} MiB, last {} MiB; peak of the first half of the samples {} MiB -> of the second half {} MiB: growth {}",
                self.baseline_at.map_or(0, |d| d.as_secs()),
                mib(self.first_kib),
                mib(self.max_kib),
                mib(self.last_kib),
                mib_f64(self.baseline_peak),
                mib_f64(self.end_peak),
                self.growth
                    .map_or_else(|| "n/a".into(), |g| format!("{:+.1}%", g * 100.0)),
            ),
            format!("rows at start: {}", rows_text(start)),
            format!("rows at end:   {}", rows_text(end)),
            if self.failures.is_empty() {
                "soak: PASS".into()
            } else {
                format!("soak: FAIL: {}", self.failures.join("; "))
            },
        ];
        for line in lines.drain(..) {
            say(json, line);
        }
    }
}
