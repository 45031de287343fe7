//! The benchmark's scenarios, one after the other: each one's setup (fresh credentials,
//! distinct tokens, users, sessions), its load on the engine, and its row of results.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tessera_testkit::create_users;
use tonic::metadata::{Ascii, MetadataValue};

use crate::{
    Setup,
    args::{LOGIN_SLOTS, MIX, Op, Scenario},
    engine::{Driver, Slot, Tally, drive, open_sessions},
    fixture::Clients,
    report::{Report, ScenarioResult, ms, percentile, sig3},
    requests::{HealthError, Outcome, status_key},
    rss::rss_kib,
};

/// Runs the scenarios and prints the report.
pub async fn run(setup: &mut Setup<'_>, scenarios: &[Scenario]) -> anyhow::Result<()> {
    let args = setup.args;
    let mut usernames = Vec::new();
    let mut distinct = Arc::new(Vec::new());
    let mut distinct_issued: Option<(Instant, Duration)> = None;
    let mut distinct_setup = None;
    let mut results = Vec::new();
    for &scenario in scenarios {
        // Fresh bearer and hot token for every scenario, so that long runs never outlive them.
        setup.fixture.renew(&setup.channels[0]).await?;
        if scenario.needs_distinct_tokens() {
            let needed = args.warmup + args.duration + Duration::from_secs(30);
            let stale = distinct_issued.is_none_or(|(at, ttl)| at.elapsed() + needed > ttl);
            if stale {
                let started = Instant::now();
                let (tokens, ttl) = setup
                    .fixture
                    .clients
                    .issue_distinct(&setup.channels, args.concurrency, args.distinct_tokens)
                    .await?;
                let took = started.elapsed();
                eprintln!(
                    "issued {} distinct anonymous tokens in {:.2}s ({:.0}/s)",
                    tokens.len(),
                    took.as_secs_f64(),
                    tokens.len() as f64 / took.as_secs_f64().max(1e-9)
                );
                distinct_setup.get_or_insert((tokens.len(), took));
                distinct = Arc::new(tokens);
                distinct_issued = Some((started, ttl));
            }
        }
        if scenario.needs_users() {
            // Fresh users for every scenario that logs in, so that one scenario's throttle
            // state never leaks into the next.
            let started = Instant::now();
            usernames = create_users(
                setup.store,
                &setup.hasher,
                &format!("bench-{}-{}", setup.fixture.run_id, scenario.name()),
                setup.user_count,
                &setup.fixture.password,
            )
            .await?;
            eprintln!(
                "registered {} users for {} in {:.2}s",
                setup.user_count,
                scenario.name(),
                started.elapsed().as_secs_f64()
            );
        }
        eprintln!("running {} ...", scenario.name());
        let result = run_scenario(scenario, setup, &usernames, &distinct).await?;
        results.push(ScenarioResult {
            rss_kib: rss_kib(),
            ..result
        });
        if let Some(r) = results.last() {
            eprintln!(
                "  {}: {:.0} req/s, p50 {} ms, p99 {} ms{}",
                r.name,
                r.rate(),
                sig3(r.p50_ms),
                sig3(r.p99_ms),
                if r.errors.is_empty() {
                    String::new()
                } else {
                    format!(", NON-OK: {}", r.error_summary())
                }
            );
        }
    }

    let report = Report {
        cpus: setup.cpus,
        database: setup.database,
        in_process: setup.in_process,
        connections: args.connections,
        concurrency: args.concurrency,
        duration: args.duration,
        warmup: args.warmup,
        users: setup.user_count,
        distinct_setup,
        rss_at_rest: setup.rss_at_rest,
        results: &results,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        report.print_table();
    }
    report.print_findings(args.json);
    Ok(())
}

/// What the attackers send as a client secret or a password.
const WRONG_SECRET: &str = "not-the-secret-not-the-secret-not-the-secret";

/// Real user `index`'s own address, as its proxy forwards it.
fn user_address(index: usize) -> MetadataValue<Ascii> {
    MetadataValue::try_from(format!("198.51.100.{}", index % 250 + 1))
        .unwrap_or_else(|_| MetadataValue::from_static("198.51.100.1"))
}

/// The password sprayer's one address.
fn attacker_address() -> MetadataValue<Ascii> {
    MetadataValue::from_static("203.0.113.66")
}

/// What the slots of one scenario share.
struct Shared {
    scenario: Scenario,
    clients: Clients,
    password: String,
    bearer: MetadataValue<Ascii>,
    hot_token: String,
    distinct: Arc<Vec<String>>,
    concurrency: usize,
    tally: Tally,
}

/// One slot of a scenario, and what it measured.
struct ScenarioSlot {
    slot: Slot,
    shared: Arc<Shared>,
    /// Requests sent so far, warm-up included.
    requests: usize,
    /// Latency of every request completed in the window, in nanoseconds.
    latencies: Vec<u64>,
    /// introspect-under-logins: logins that succeeded in the window, and their latencies.
    logins_ok: u64,
    login_latencies: Vec<u64>,
}

impl Driver for ScenarioSlot {
    type Op = Op;

    async fn next(&mut self, counting: bool) -> Option<Op> {
        let f = &*self.shared;
        let real_user = self.slot.index < LOGIN_SLOTS;
        let op = match (f.scenario.op(), f.scenario) {
            (Some(op), _) => op,
            (None, Scenario::IntrospectUnderLogins) if real_user => Op::Password,
            (None, Scenario::IntrospectUnderLogins) => Op::IntrospectHot,
            (
                None,
                Scenario::LoginsAlone
                | Scenario::LoginsUnderSecretGuessing
                | Scenario::LoginsUnderPasswordSpray
                | Scenario::LoginsUnderHealthFlood,
            ) if real_user => Op::UserLogin,
            (None, Scenario::LoginsAlone) => {
                // Idle: this scenario's other slots send nothing.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                return None;
            }
            (None, Scenario::LoginsUnderSecretGuessing) => Op::WrongSecret,
            (None, Scenario::LoginsUnderPasswordSpray) => Op::SprayPassword,
            (None, Scenario::LoginsUnderHealthFlood) => Op::Health,
            (None, _) => self.slot.next_of(&MIX, Op::IntrospectHot),
        };
        if op == Op::Refresh && self.slot.refresh_token.is_none() {
            // The last refresh failed: start a new session, off the clock.
            let slot = &mut self.slot;
            match slot
                .caller
                .log_in_retrying(&f.clients.market_id, &slot.username, &f.password)
                .await
            {
                Ok(token) => slot.refresh_token = Some(token),
                Err(s) if counting => f.tally.record(Some("relogin"), Err(status_key(&s))),
                Err(_) => {}
            }
        }
        Some(op)
    }

    async fn send(&mut self, op: Op) -> Outcome {
        self.requests += 1;
        let (f, slot) = (&*self.shared, &mut self.slot);
        let market_id = &f.clients.market_id;
        match op {
            Op::Health => slot.caller.health().await.map_err(|e| match e {
                HealthError::Status(s) => status_key(&s),
                HealthError::NotServing(_) => "NOT_SERVING".into(),
            }),
            Op::IntrospectHot => slot.caller.introspect_active(&f.bearer, &f.hot_token).await,
            Op::IntrospectDistinct => {
                // Slot i takes i, i + c, i + 2c, ...: together the slots cycle over all.
                let n = f.distinct.len();
                let token = &f.distinct[(slot.index + self.requests * f.concurrency) % n];
                slot.caller.introspect_active(&f.bearer, token).await
            }
            Op::IssueAnonymous => slot.caller.issue_anonymous(market_id).await.map(drop),
            Op::IssueIntegration => {
                slot.caller
                    .issue_integration(&f.clients.integ_id, &f.clients.integ_secret)
                    .await
            }
            Op::Password => slot
                .caller
                .log_in(market_id, &slot.username, &f.password)
                .await
                .map(drop)
                .map_err(|s| status_key(&s)),
            Op::Refresh => {
                let Some(token) = slot.refresh_token.take() else {
                    return Err("no-session".into());
                };
                slot.refresh_token = Some(slot.caller.rotate(market_id, &token).await?);
                Ok(())
            }
            Op::UserLogin => {
                let address = user_address(slot.index);
                slot.caller
                    .log_in_from(market_id, &slot.username, &f.password, &address)
                    .await
            }
            Op::WrongSecret => {
                slot.caller
                    .issue_integration(&f.clients.integ_id, WRONG_SECRET)
                    .await
            }
            Op::SprayPassword => {
                let username = format!("nobody-{}-{}@example.com", slot.index, self.requests);
                slot.caller
                    .log_in_from(market_id, &username, WRONG_SECRET, &attacker_address())
                    .await
            }
        }
    }

    fn record(&mut self, op: Op, outcome: Outcome, latency_ns: u64) {
        let scenario = self.shared.scenario;
        if scenario.has_real_users() && matches!(op, Op::Password | Op::UserLogin) {
            match outcome {
                Ok(()) => {
                    self.logins_ok += 1;
                    self.login_latencies.push(latency_ns);
                }
                Err(key) => self.shared.tally.record(Some(op.name()), Err(key)),
            }
            return;
        }
        self.latencies.push(latency_ns);
        let label = (scenario == Scenario::Mixed || scenario.has_real_users()).then(|| op.name());
        self.shared.tally.record(label, outcome);
    }
}

async fn run_scenario(
    scenario: Scenario,
    setup: &Setup<'_>,
    usernames: &[String],
    distinct: &Arc<Vec<String>>,
) -> anyhow::Result<ScenarioResult> {
    let args = setup.args;
    let fixture = &setup.fixture;
    let shared = Arc::new(Shared {
        scenario,
        clients: fixture.clients.clone(),
        password: fixture.password.clone(),
        bearer: fixture.credentials.bearer.clone(),
        hot_token: fixture.credentials.hot_token.clone(),
        distinct: distinct.clone(),
        concurrency: args.concurrency,
        tally: Tally::default(),
    });
    let mut slots = Slot::many(&setup.channels, args.concurrency, usernames, 0x5EED_0000);

    // Every slot of a refresh or mixed run owns a user session, logged in before the clock
    // starts, no more at once than the server has hashing permits (one per core).
    if scenario.needs_sessions() {
        let (opened, took) = open_sessions(
            slots,
            setup.cpus,
            &fixture.clients.market_id,
            &fixture.password,
        )
        .await?;
        slots = opened;
        eprintln!(
            "  {} sessions logged in in {:.2}s",
            slots.len(),
            took.as_secs_f64()
        );
    }

    let rss_kib_before = rss_kib();
    let start = Instant::now() + args.warmup;
    let end = start + args.duration;
    let drivers = slots
        .into_iter()
        .map(|slot| ScenarioSlot {
            slot,
            shared: shared.clone(),
            requests: 0,
            latencies: Vec::new(),
            logins_ok: 0,
            login_latencies: Vec::new(),
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut logins_ok, mut login_latencies) = (0, Vec::new());
    for done in drive(drivers, start, end).await? {
        latencies.extend(done.latencies);
        logins_ok += done.logins_ok;
        login_latencies.extend(done.login_latencies);
    }
    latencies.sort_unstable();
    login_latencies.sort_unstable();
    let others = match scenario {
        Scenario::LoginsAlone => "idle",
        Scenario::LoginsUnderSecretGuessing => {
            "send wrong client secrets, and the row's latencies are theirs"
        }
        Scenario::LoginsUnderPasswordSpray => {
            "send wrong passwords for random usernames from one address, and the row's latencies are theirs"
        }
        Scenario::LoginsUnderHealthFlood => {
            "send health checks, and the row's latencies are theirs"
        }
        _ => "introspect, and the row's latencies are theirs",
    };
    let note = scenario.has_real_users().then(|| {
        format!(
            "{}: {LOGIN_SLOTS} slots logging in: {:.1} OK logins/s (p50 {} ms, p99 {} ms); the other {} slots {others}",
            scenario.name(),
            logins_ok as f64 / args.duration.as_secs_f64(),
            sig3(ms(percentile(&login_latencies, 0.50))),
            sig3(ms(percentile(&login_latencies, 0.99))),
            args.concurrency.saturating_sub(LOGIN_SLOTS),
        )
    });
    Ok(ScenarioResult {
        name: scenario.name(),
        requests: latencies.len() as u64,
        window: args.duration,
        p50_ms: ms(percentile(&latencies, 0.50)),
        p99_ms: ms(percentile(&latencies, 0.99)),
        max_ms: ms(latencies.last().copied().unwrap_or(0)),
        errors: shared.tally.errors_by_key(),
        rss_kib_before,
        rss_kib: None,
        note,
    })
}
