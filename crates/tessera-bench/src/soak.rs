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
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use serde_json::json;
use tessera::{
    domain::policy::TokenPolicy,
    grpc::pb::{self, auth_service_client::AuthServiceClient},
    store::{Store, TableSizes},
};
use tokio::{sync::Semaphore, task::JoinSet};
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

use tessera_testkit::{
    client_credentials, describe, introspect_request, password_grant, refresh_grant,
};

use super::{Args, Fixture, mib, refresh_credentials, rss_kib, status_key};

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
    SOAK_MIX
        .iter()
        .map(|(op, w)| format!("{w}% {}", op.name()))
        .chain(["each slot logs out and in every 30-60s".into()])
        .collect::<Vec<_>>()
        .join(", ")
}

/// The introspection bearer and hot token, renewed well before they expire.
struct Credentials {
    bearer: MetadataValue<Ascii>,
    hot_token: String,
}

/// Requests and errors so far, by `op:status`.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
    by_key: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn record(&self, op: &str, outcome: Result<(), String>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Err(key) = outcome {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let mut by_key = match self.by_key.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            *by_key.entry(format!("{op}:{key}")).or_default() += 1;
        }
    }

    fn errors_by_key(&self) -> BTreeMap<String, u64> {
        match self.by_key.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// What every slot shares.
struct Shared {
    market_id: String,
    integ_id: String,
    integ_secret: String,
    password: String,
    usernames: Vec<String>,
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
    index: usize,
    auth: AuthServiceClient<Channel>,
    shared: Arc<Shared>,
    refresh_token: Option<String>,
    session_started: Instant,
    /// How long this slot keeps a session before logging out and in again.
    cycle: Duration,
    rng: u64,
}

impl SoakSlot {
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_op(&mut self) -> SoakOp {
        let total: u64 = SOAK_MIX.iter().map(|(_, w)| w).sum();
        let mut pick = self.next_random() % total;
        for (op, weight) in SOAK_MIX {
            if pick < weight {
                return op;
            }
            pick -= weight;
        }
        SoakOp::IntrospectHot
    }

    fn username(&self) -> &str {
        let users = &self.shared.usernames;
        &users[self.index % users.len()]
    }

    /// Logs this slot's user in, through the login gate.
    async fn log_in(&mut self) -> Result<(), String> {
        let _permit = self
            .shared
            .logins
            .acquire()
            .await
            .map_err(|_| "gate-closed".to_owned())?;
        let request = password_grant(
            &self.shared.market_id,
            self.username(),
            &self.shared.password,
        );
        let response = self
            .auth
            .issue_token(request)
            .await
            .map_err(|s| status_key(&s))?
            .into_inner();
        self.refresh_token = Some(response.refresh_token);
        self.session_started = Instant::now();
        Ok(())
    }

    /// Ends this slot's session with its refresh token (a logout).
    async fn log_out(&mut self) -> Result<(), String> {
        let Some(token) = self.refresh_token.take() else {
            return Ok(());
        };
        self.revoke(&token).await
    }

    async fn revoke(&mut self, token: &str) -> Result<(), String> {
        self.auth
            .revoke_token(pb::RevokeTokenRequest {
                token: token.to_owned(),
                token_type_hint: 0,
                client_id: self.shared.market_id.clone(),
                client_secret: String::new(),
            })
            .await
            .map(drop)
            .map_err(|s| status_key(&s))
    }

    async fn introspect_active(&mut self, bearer: &MetadataValue<Ascii>, token: &str) -> Outcome {
        let answer = self
            .auth
            .introspect_token(introspect_request(bearer, token))
            .await
            .map_err(|s| status_key(&s))?
            .into_inner();
        if answer.active {
            Ok(())
        } else {
            Err("OK(active=false)".into())
        }
    }

    async fn issue_anonymous(&mut self) -> Result<String, String> {
        self.auth
            .issue_token(client_credentials(&self.shared.market_id, ""))
            .await
            .map(|r| r.into_inner().access_token)
            .map_err(|s| status_key(&s))
    }

    async fn run(&mut self, op: SoakOp) -> Outcome {
        match op {
            SoakOp::IntrospectHot => {
                let credentials = self.shared.credentials();
                self.introspect_active(&credentials.bearer, &credentials.hot_token)
                    .await
            }
            SoakOp::IntrospectRecent => {
                let credentials = self.shared.credentials();
                let pick = self.next_random();
                let token = self
                    .shared
                    .pick_recent(pick)
                    .unwrap_or_else(|| credentials.hot_token.clone());
                self.introspect_active(&credentials.bearer, &token).await
            }
            SoakOp::IssueAnonymous => {
                let token = self.issue_anonymous().await?;
                self.shared.remember(token);
                Ok(())
            }
            SoakOp::RevokeAnonymous => {
                let token = self.issue_anonymous().await?;
                self.revoke(&token).await
            }
            SoakOp::IssueIntegration => self
                .auth
                .issue_token(client_credentials(
                    &self.shared.integ_id,
                    &self.shared.integ_secret,
                ))
                .await
                .map(drop)
                .map_err(|s| status_key(&s)),
            SoakOp::Refresh => {
                let Some(token) = self.refresh_token.take() else {
                    return Err("no-session".into());
                };
                let answer = self
                    .auth
                    .issue_token(refresh_grant(&self.shared.market_id, "", &token))
                    .await
                    .map_err(|s| status_key(&s))?
                    .into_inner();
                if answer.refresh_token.is_empty() {
                    return Err("OK(no refresh token)".into());
                }
                self.refresh_token = Some(answer.refresh_token);
                Ok(())
            }
        }
    }
}

type Outcome = Result<(), String>;

/// A progress or summary line: on stdout, or on stderr when stdout carries the JSON.
fn say(json: bool, line: String) {
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
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

fn mean_mib(kib: Option<f64>) -> String {
    kib.map_or_else(|| "n/a".into(), |k| format!("{:.0}", k / 1024.0))
}

fn rows_text(rows: Option<&TableSizes>) -> String {
    rows.map_or_else(
        || "rows n/a".into(),
        |r| {
            format!(
                "sessions {} refresh_tokens {} revocation_events {} login_throttles {}",
                r.sessions, r.refresh_tokens, r.revocation_events, r.login_throttles
            )
        },
    )
}

fn rows_json(rows: Option<&TableSizes>) -> serde_json::Value {
    rows.map_or(serde_json::Value::Null, |r| {
        json!({
            "sessions": r.sessions,
            "refresh_tokens": r.refresh_tokens,
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

/// Runs the soak against a server whose clients are registered in `fixture`.
pub async fn run(
    args: &Args,
    length: Duration,
    fixture: &mut Fixture,
    channels: &[Channel],
    store: &Store,
    usernames: Vec<String>,
) -> anyhow::Result<()> {
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
    refresh_credentials(fixture, &channels[0]).await?;
    // The hot token's lifetime says how long the server's tokens live.
    let token_ttl = {
        let mut auth = AuthServiceClient::new(channels[0].clone());
        let probe = auth
            .issue_token(client_credentials(&fixture.market_id, ""))
            .await
            .map_err(|s| anyhow!("cannot issue an anonymous token: {}", describe(&s)))?
            .into_inner();
        Duration::from_secs(probe.expires_in.max(2).unsigned_abs())
    };
    let shared = Arc::new(Shared {
        market_id: fixture.market_id.clone(),
        integ_id: fixture.integ_id.clone(),
        integ_secret: fixture.integ_secret.clone(),
        password: fixture.password.clone(),
        usernames,
        credentials: RwLock::new(Arc::new(Credentials {
            bearer: fixture.bearer.clone(),
            hot_token: fixture.hot_token.clone(),
        })),
        recent: Mutex::new(VecDeque::with_capacity(RECENT_TOKENS)),
        fresh_for: token_ttl / 2,
        logins: Semaphore::new(LOGIN_SLOTS),
        tally: Tally::default(),
    });

    let mut slots = Vec::with_capacity(args.concurrency);
    let started = Instant::now();
    for index in 0..args.concurrency {
        let mut slot = SoakSlot {
            index,
            auth: AuthServiceClient::new(channels[index % channels.len()].clone()),
            shared: shared.clone(),
            refresh_token: None,
            session_started: Instant::now(),
            cycle: Duration::from_secs(30 + (index as u64 * 7) % 31),
            rng: 0x50A4_0000 + index as u64,
        };
        slot.log_in()
            .await
            .map_err(|key| anyhow!("cannot log in a session for slot {index}: {key}"))?;
        slots.push(slot);
    }
    eprintln!(
        "soak: {} sessions logged in in {:.2}s; tokens live {}; samples every {}, RSS baseline at the first sample from {}",
        slots.len(),
        started.elapsed().as_secs_f64(),
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
    let mut tasks = JoinSet::new();
    for mut slot in slots {
        tasks.spawn(async move {
            while Instant::now() < end {
                if slot.refresh_token.is_none() || slot.session_started.elapsed() >= slot.cycle {
                    let out = slot.log_out().await;
                    slot.shared.tally.record("logout", out);
                    let out = slot.log_in().await;
                    if out.is_err() {
                        // Do not spin on a failing login.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    slot.shared.tally.record("login", out);
                    continue;
                }
                let op = slot.next_op();
                let out = slot.run(op).await;
                slot.shared.tally.record(op.name(), out);
            }
        });
    }

    // Renews the bearer and the hot token at a third of their lifetime.
    let renewer = {
        let shared = shared.clone();
        let channel = channels[0].clone();
        let (integ_id, integ_secret, market_id) = (
            fixture.integ_id.clone(),
            fixture.integ_secret.clone(),
            fixture.market_id.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(token_ttl / 3).await;
                let mut scratch = Fixture {
                    market_id: market_id.clone(),
                    integ_id: integ_id.clone(),
                    integ_secret: integ_secret.clone(),
                    password: String::new(),
                    usernames: Vec::new(),
                    bearer: MetadataValue::from_static("Bearer none"),
                    hot_token: String::new(),
                    distinct: Arc::new(Vec::new()),
                };
                let outcome = refresh_credentials(&mut scratch, &channel).await;
                match outcome {
                    Ok(()) => {
                        let renewed = Arc::new(Credentials {
                            bearer: scratch.bearer,
                            hot_token: scratch.hot_token,
                        });
                        match shared.credentials.write() {
                            Ok(mut guard) => *guard = renewed,
                            Err(poisoned) => *poisoned.into_inner() = renewed,
                        }
                        shared.tally.record("renew-credentials", Ok(()));
                    }
                    Err(e) => {
                        eprintln!("tessera-bench: soak: cannot renew credentials: {e:#}");
                        shared
                            .tally
                            .record("renew-credentials", Err("failed".into()));
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
        let requests = shared.tally.requests.load(Ordering::Relaxed);
        let errors = shared.tally.errors.load(Ordering::Relaxed);
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
    while let Some(joined) = tasks.join_next().await {
        joined.context("a soak task failed")?;
    }
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
            "mix_percent": SOAK_MIX.iter().map(|(op, w)| (op.name(), *w)).collect::<BTreeMap<_, _>>(),
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
        let requests = tally.requests.load(Ordering::Relaxed);
        let errors = tally.errors.load(Ordering::Relaxed);
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
                    format!(
                        ": {}",
                        self.errors_by_key
                            .iter()
                            .map(|(k, n)| format!("{k}={n}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                }
            ),
            format!(
                "RSS (server + load generator) from {}s on: first {} MiB, max {} MiB, last {} MiB; peak of the first half of the samples {} MiB -> of the second half {} MiB: growth {}",
                self.baseline_at.map_or(0, |d| d.as_secs()),
                mib(self.first_kib),
                mib(self.max_kib),
                mib(self.last_kib),
                mean_mib(self.baseline_peak),
                mean_mib(self.end_peak),
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
