//! `--watch`: the revocation feed (WatchRevocations, SPEC §7), in four parts.
//!
//! - Idle streams: process CPU time (utime + stime) and VmRSS over `--watch-idle` with no
//!   stream, then with `--watch-streams` streams open (over `--watch-connections` connections)
//!   and idle (memory per stream: the VmRSS slope from half the streams to all). In-process
//!   only; the process holds both ends of every stream, so the cost shown
//!   is the server's and the reader's together: an upper bound for the server's.
//! - Delivery on one instance: one logout at a time (RevokeToken of a fresh anonymous token),
//!   after a random pause of up to one revocation-log poll, for `--duration` after
//!   `--warmup`, each timed from the call's start to its arrival on every stream.
//! - The same across two instances: the streams on a second in-process instance on the same
//!   database (which learns of the revocations by following the log), the logouts on the first.
//! - A flood: IntrospectToken from `--concurrency` slots alone, then beside `--flood-slots`
//!   slots revoking one already revoked token (which writes nothing), then beside as many
//!   slots of health checks (requests that cost the server next to nothing), then alone again
//!   (the ratios are to the mean of both lone windows), each for `--duration` after
//!   `--warmup`.
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use tessera::{
    domain::revocation_view::POLL_INTERVAL,
    grpc::pb::{
        self, auth_service_client::AuthServiceClient, revocation::Target,
        watch_revocations_response::Event,
    },
};
use tessera_testkit::describe;
use tokio::{sync::mpsc, task::JoinSet};
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

use crate::{
    Setup,
    engine::{Driver, Slot, Tally, connect_with, drive},
    report::{counts_text, ms, percentile, say, sig3},
    requests::{Caller, HealthError, Outcome, status_key},
    rss::rss_kib,
    server::Server,
};

/// How long one logout may take to reach every stream before the missing ones are counted.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the process is left alone before CPU time is measured.
const SETTLE: Duration = Duration::from_secs(1);
/// Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// Runs the four parts against `server` (the first instance) and prints what they measured.
pub async fn run(setup: &mut Setup<'_>, server: &Server) -> anyhow::Result<()> {
    let args = setup.args;
    if args.watch_streams == 0 || args.watch_connections == 0 {
        bail!("--watch-streams and --watch-connections must be at least 1");
    }
    setup.fixture.renew(&setup.channels[0]).await?;
    let bearer = setup.fixture.credentials.bearer.clone();
    let market_id = setup.fixture.clients.market_id.clone();
    let (streams, connections) = (args.watch_streams, args.watch_connections);
    let mut out = Vec::new();

    // 1. Idle streams, then 2. delivery on the same instance, on the same streams.
    let watch_channels = connect_with(&server.addr, connections, None).await?;
    let idle_before = if setup.in_process {
        eprintln!(
            "watch: CPU time with no stream, over {} ...",
            humantime::format_duration(args.watch_idle)
        );
        Some(cpu_over(args.watch_idle).await)
    } else {
        None
    };
    // Memory per stream is the slope between half the streams and all of them, so that
    // what the allocator gives back after the setup does not count.
    let mut open = Streams::new(watch_channels, &bearer);
    let rss_none = rss_kib();
    let half = streams / 2;
    let mut took = open.open(half).await?;
    tokio::time::sleep(SETTLE).await;
    let rss_half = rss_kib();
    took += open.open(streams - half).await?;
    tokio::time::sleep(SETTLE).await;
    let rss_all = rss_kib();
    eprintln!(
        "watch: {streams} streams open over {connections} connections in {:.2}s",
        took.as_secs_f64()
    );
    let idle = match idle_before {
        Some(before) => {
            eprintln!(
                "watch: CPU time with {streams} idle streams, over {} ...",
                humantime::format_duration(args.watch_idle)
            );
            let with_streams = cpu_over(args.watch_idle).await;
            Some(Idle {
                window: args.watch_idle,
                cpu_before: before,
                cpu_with_streams: with_streams,
                rss: [rss_none, rss_half, rss_all, rss_kib()],
                streams,
                half,
            })
        }
        None => None,
    };
    if let Some(idle) = &idle {
        say(args.json, idle.line());
    }

    let mut revoker = Caller::new(setup.channels[0].clone());
    eprintln!("watch: delivery on one instance ...");
    let same = delivery(setup, &mut open, &mut revoker).await?;
    say(args.json, same.line("same instance", streams, connections));
    out.push(("same_instance", same.to_json()));
    open.close().await;

    // 3. Across two instances: streams on a second instance, logouts on the first.
    match server.sibling().await {
        Some(sibling) => {
            let sibling = sibling.context("cannot start the second in-process instance")?;
            let result = across(setup, &sibling, &bearer, &mut revoker).await;
            sibling.stop().await;
            let across = result?;
            say(
                args.json,
                across.line("across two instances", streams, connections),
            );
            out.push(("across_instances", across.to_json()));
        }
        None => say(
            args.json,
            "watch: across two instances: skipped (needs the in-process server)".into(),
        ),
    }

    // 4. The flood.
    let flood = flood(setup, &bearer, &market_id).await?;
    for line in flood.lines(args.flood_slots, args.concurrency) {
        say(args.json, line);
    }

    if args.json {
        let mut delivery: serde_json::Map<String, Value> = serde_json::Map::new();
        for (name, value) in out {
            delivery.insert(name.into(), value);
        }
        let report = json!({
            "cpus": setup.cpus,
            "database": setup.database,
            "server": if setup.in_process { "in-process" } else { "target" },
            "watch_streams": streams,
            "watch_connections": connections,
            "duration_s": args.duration.as_secs_f64(),
            "warmup_s": args.warmup.as_secs_f64(),
            "idle": idle.as_ref().map(Idle::to_json),
            "delivery": delivery,
            "flood": flood.to_json(args.flood_slots, args.concurrency),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// The streams on the second instance, and the logouts on the first.
async fn across(
    setup: &Setup<'_>,
    sibling: &Server,
    bearer: &MetadataValue<Ascii>,
    revoker: &mut Caller,
) -> anyhow::Result<Delivery> {
    let args = setup.args;
    let channels = connect_with(&sibling.addr, args.watch_connections, None).await?;
    sibling.check_serving(&channels[0]).await?;
    let mut open = Streams::new(channels, bearer);
    let took = open.open(args.watch_streams).await?;
    eprintln!(
        "watch: {} streams open on the second instance in {:.2}s; delivery across two instances ...",
        args.watch_streams,
        took.as_secs_f64()
    );
    let result = delivery(setup, &mut open, revoker).await;
    open.close().await;
    result
}

/// A revocation of one token seen on a stream, and when it arrived.
struct Arrival {
    jti: String,
    at: Instant,
}

/// Streams held open by their own tasks, and what they see.
struct Streams {
    channels: Vec<Channel>,
    bearer: MetadataValue<Ascii>,
    tasks: JoinSet<()>,
    arrived: mpsc::UnboundedSender<Arrival>,
    arrivals: mpsc::UnboundedReceiver<Arrival>,
    /// Streams that ended while they should have stayed open, by status.
    ended: Arc<Tally>,
    count: usize,
}

impl Streams {
    /// No stream yet; they go over `channels` in turn.
    fn new(channels: Vec<Channel>, bearer: &MetadataValue<Ascii>) -> Self {
        let (arrived, arrivals) = mpsc::unbounded_channel();
        Self {
            channels,
            bearer: bearer.clone(),
            tasks: JoinSet::new(),
            arrived,
            arrivals,
            ended: Arc::new(Tally::default()),
            count: 0,
        }
    }

    /// Opens `more` streams from sequence 0 and waits for each one's snapshot.
    async fn open(&mut self, more: usize) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let (ready, mut readiness) = mpsc::unbounded_channel::<Result<(), String>>();
        for index in self.count..self.count + more {
            let channel = self.channels[index % self.channels.len()].clone();
            self.tasks.spawn(read_stream(
                AuthServiceClient::new(channel),
                self.bearer.clone(),
                self.arrived.clone(),
                ready.clone(),
                self.ended.clone(),
            ));
        }
        drop(ready);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut opened = 0;
        while opened < more {
            match tokio::time::timeout_at(deadline, readiness.recv()).await {
                Ok(Some(Ok(()))) => opened += 1,
                Ok(Some(Err(e))) => bail!(
                    "cannot open a WatchRevocations stream ({} open): {e}",
                    self.count + opened
                ),
                Ok(None) => bail!("the stream tasks ended with {opened} of {more} open"),
                Err(_) => bail!("only {opened} of {more} WatchRevocations streams opened in 60s"),
            }
        }
        self.count += more;
        Ok(started.elapsed())
    }

    /// Ends every stream (the server sees each one reset).
    async fn close(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// One stream: says when its snapshot came, then passes on every token revocation.
async fn read_stream(
    mut client: AuthServiceClient<Channel>,
    bearer: MetadataValue<Ascii>,
    arrived: mpsc::UnboundedSender<Arrival>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    ended: Arc<Tally>,
) {
    let mut request = tonic::Request::new(pb::WatchRevocationsRequest { after_sequence: 0 });
    request.metadata_mut().insert("authorization", bearer);
    let mut stream = match client.watch_revocations(request).await {
        Ok(response) => response.into_inner(),
        Err(s) => {
            let _ = ready.send(Err(describe(&s)));
            return;
        }
    };
    let first = match stream.message().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("the stream ended before its snapshot".into()),
        Err(s) => Err(describe(&s)),
    };
    let opened = first.is_ok();
    let _ = ready.send(first);
    if !opened {
        return;
    }
    loop {
        match stream.message().await {
            Ok(Some(pb::WatchRevocationsResponse {
                event: Some(Event::Revocation(revocation)),
            })) => {
                let at = Instant::now();
                if let Some(Target::TokenId(jti)) = revocation.target {
                    let _ = arrived.send(Arrival { jti, at });
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                ended.record(None, Err("end-of-stream".into()));
                return;
            }
            Err(s) => {
                ended.record(None, Err(status_key(&s)));
                return;
            }
        }
    }
}

/// What the logouts of one delivery part measured.
struct Delivery {
    window: Duration,
    /// Logouts made in the window.
    logouts: u64,
    /// Per stream and logout, from the RevokeToken call's start to the arrival (ns).
    from_call: Vec<u64>,
    /// The same from the call's OK (0 when the revocation came first).
    from_ok: Vec<u64>,
    /// Per logout, until the last stream had it.
    to_all: Vec<u64>,
    /// RevokeToken's own latency.
    revoke: Vec<u64>,
    /// Arrivals before the call's OK.
    before_ok: u64,
    /// Deliveries that did not come within DELIVERY_TIMEOUT.
    missing: u64,
    ended: BTreeMap<String, u64>,
}

/// Logs out one fresh anonymous token at a time, for `--duration` after `--warmup`, and
/// times each revocation's arrival on every stream of `streams`.
async fn delivery(
    setup: &Setup<'_>,
    streams: &mut Streams,
    revoker: &mut Caller,
) -> anyhow::Result<Delivery> {
    let args = setup.args;
    let (market_id, bearer) = (
        &setup.fixture.clients.market_id,
        &setup.fixture.credentials.bearer,
    );
    let start = Instant::now() + args.warmup;
    let end = start + args.duration;
    let mut d = Delivery {
        window: args.duration,
        logouts: 0,
        from_call: Vec::new(),
        from_ok: Vec::new(),
        to_all: Vec::new(),
        revoke: Vec::new(),
        before_ok: 0,
        missing: 0,
        ended: BTreeMap::new(),
    };
    while Instant::now() < end {
        // A random pause of up to one poll of the revocation log, so that logouts do not fall
        // into step with the second instance's polls.
        let poll = u64::try_from(POLL_INTERVAL.as_micros()).unwrap_or(u64::MAX);
        let pause = uuid::Uuid::new_v4().as_u64_pair().0 % poll.max(1);
        tokio::time::sleep(Duration::from_micros(pause)).await;
        let counting = Instant::now() >= start;
        // The session to end, and the token id its revocation will carry: off the clock.
        let token = revoker
            .issue(market_id, "")
            .await
            .map_err(|s| anyhow!("cannot issue an anonymous token: {}", describe(&s)))?
            .access_token;
        let jti = revoker
            .introspect(bearer, &token)
            .await
            .map_err(|s| anyhow!("cannot introspect a fresh token: {}", describe(&s)))?
            .jti;
        let begun = Instant::now();
        revoker
            .revoke(market_id, &token)
            .await
            .map_err(|key| anyhow!("RevokeToken failed: {key}"))?;
        let ok_at = Instant::now();
        let deadline = tokio::time::Instant::from_std(begun + DELIVERY_TIMEOUT);
        let (mut seen, mut last) = (0, begun);
        while seen < streams.count {
            match tokio::time::timeout_at(deadline, streams.arrivals.recv()).await {
                Ok(Some(arrival)) if arrival.jti == jti => {
                    seen += 1;
                    last = last.max(arrival.at);
                    if counting {
                        d.from_call.push(nanos(arrival.at - begun));
                        d.from_ok
                            .push(nanos(arrival.at.saturating_duration_since(ok_at)));
                        d.before_ok += u64::from(arrival.at < ok_at);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => bail!("every WatchRevocations stream ended"),
                Err(_) => break,
            }
        }
        if counting && ok_at <= end {
            d.logouts += 1;
            d.revoke.push(nanos(ok_at - begun));
            d.to_all.push(nanos(last - begun));
            d.missing += (streams.count - seen) as u64;
        }
    }
    d.ended = streams.ended.errors_by_key();
    for v in [
        &mut d.from_call,
        &mut d.from_ok,
        &mut d.to_all,
        &mut d.revoke,
    ] {
        v.sort_unstable();
    }
    Ok(d)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// p50/p99/max of sorted samples, in ms.
fn spread(sorted: &[u64]) -> (f64, f64, f64) {
    (
        ms(percentile(sorted, 0.50)),
        ms(percentile(sorted, 0.99)),
        ms(sorted.last().copied().unwrap_or(0)),
    )
}

fn spread_text(sorted: &[u64]) -> String {
    let (p50, p99, max) = spread(sorted);
    format!(
        "p50 {} / p99 {} / max {} ms",
        sig3(p50),
        sig3(p99),
        sig3(max)
    )
}

fn spread_json(sorted: &[u64]) -> Value {
    let (p50, p99, max) = spread(sorted);
    json!({ "p50_ms": p50, "p99_ms": p99, "max_ms": max })
}

impl Delivery {
    fn line(&self, part: &str, streams: usize, connections: usize) -> String {
        format!(
            "watch: delivery, {part}: {} logouts in {} ({:.0}/s) to {streams} streams over {connections} connections: per stream from the call's start {}; from its OK {} ({} arrivals before the OK); to the last stream {}; RevokeToken {}; missing {}; streams ended {}",
            self.logouts,
            humantime::format_duration(self.window),
            self.logouts as f64 / self.window.as_secs_f64(),
            spread_text(&self.from_call),
            spread_text(&self.from_ok),
            self.before_ok,
            spread_text(&self.to_all),
            spread_text(&self.revoke),
            self.missing,
            counts_text(&self.ended),
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "logouts": self.logouts,
            "deliveries": self.from_call.len(),
            "from_call_start": spread_json(&self.from_call),
            "from_call_ok": spread_json(&self.from_ok),
            "arrivals_before_ok": self.before_ok,
            "to_last_stream": spread_json(&self.to_all),
            "revoke_token": spread_json(&self.revoke),
            "missing": self.missing,
            "streams_ended": self.ended,
        })
    }
}

/// utime + stime of this process so far, in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: the state
    // (field 3) first, so utime (14) and stime (15) are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// The CPU seconds this process spends over `window`, after leaving it alone for SETTLE.
async fn cpu_over(window: Duration) -> Option<f64> {
    tokio::time::sleep(SETTLE).await;
    let before = cpu_seconds()?;
    tokio::time::sleep(window).await;
    Some(cpu_seconds()? - before)
}

/// What idle streams cost the process.
struct Idle {
    window: Duration,
    cpu_before: Option<f64>,
    cpu_with_streams: Option<f64>,
    /// VmRSS (KiB) with no stream, `half` streams, all of them, and after the CPU window.
    rss: [Option<u64>; 4],
    streams: usize,
    half: usize,
}

impl Idle {
    /// CPU seconds per stream per minute, over what the process spends with no stream.
    fn cpu_per_stream_minute(&self) -> Option<f64> {
        let extra = self.cpu_with_streams? - self.cpu_before?;
        Some(extra / self.streams as f64 * 60.0 / self.window.as_secs_f64())
    }

    /// The VmRSS slope from `half` streams to all of them.
    fn kib_per_stream(&self) -> Option<f64> {
        let added = self.streams - self.half;
        let delta = self.rss[2]? as f64 - self.rss[1]? as f64;
        (added > 0).then(|| delta / added as f64)
    }

    fn line(&self) -> String {
        let secs = self.window.as_secs_f64();
        let pct = |cpu: Option<f64>| cpu.map_or_else(|| "n/a".into(), |c| sig3(c / secs * 100.0));
        format!(
            "watch: idle, {} streams over {}: process CPU {}% of one core (no stream: {}%), {} CPU-s per stream per minute; VmRSS KiB with 0 / {} / {} streams / after the window: {}, {} KiB per stream (slope; server and reader together)",
            self.streams,
            humantime::format_duration(self.window),
            pct(self.cpu_with_streams),
            pct(self.cpu_before),
            self.cpu_per_stream_minute()
                .map_or_else(|| "n/a".into(), |c| format!("{c:.2e}")),
            self.half,
            self.streams,
            self.rss
                .map(|k| k.map_or_else(|| "n/a".into(), |k| k.to_string()))
                .join(" / "),
            self.kib_per_stream().map_or_else(|| "n/a".into(), sig3),
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "window_s": self.window.as_secs_f64(),
            "streams": self.streams,
            "cpu_s_no_stream": self.cpu_before,
            "cpu_s_with_streams": self.cpu_with_streams,
            "cpu_s_per_stream_per_minute": self.cpu_per_stream_minute(),
            "half_streams": self.half,
            "rss_kib_no_stream": self.rss[0],
            "rss_kib_half_streams": self.rss[1],
            "rss_kib_all_streams": self.rss[2],
            "rss_kib_after_window": self.rss[3],
            "kib_per_stream": self.kib_per_stream(),
        })
    }
}

/// The requests of the flood part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FloodOp {
    Introspect,
    Revoke,
    Health,
}

impl FloodOp {
    fn name(self) -> &'static str {
        match self {
            Self::Introspect => "introspect-hot",
            Self::Revoke => "revoke-revoked",
            Self::Health => "health",
        }
    }
}

/// What the slots of one flood window share.
struct FloodShared {
    bearer: MetadataValue<Ascii>,
    hot_token: String,
    market_id: String,
    revoked_token: String,
    tally: Tally,
}

/// One slot of a flood window: one kind of request, again and again.
struct FloodSlot {
    slot: Slot,
    op: FloodOp,
    shared: Arc<FloodShared>,
    latencies: Vec<u64>,
}

impl Driver for FloodSlot {
    type Op = FloodOp;

    async fn next(&mut self, _counting: bool) -> Option<FloodOp> {
        Some(self.op)
    }

    async fn send(&mut self, op: FloodOp) -> Outcome {
        let (f, caller) = (&*self.shared, &mut self.slot.caller);
        match op {
            FloodOp::Introspect => caller.introspect_active(&f.bearer, &f.hot_token).await,
            FloodOp::Revoke => caller.revoke(&f.market_id, &f.revoked_token).await,
            FloodOp::Health => caller.health().await.map_err(|e| match e {
                HealthError::Status(s) => status_key(&s),
                HealthError::NotServing(_) => "NOT_SERVING".into(),
            }),
        }
    }

    fn record(&mut self, op: FloodOp, outcome: Outcome, latency_ns: u64) {
        self.latencies.push(latency_ns);
        self.shared.tally.record(Some(op.name()), outcome);
    }
}

/// One request kind's count and latencies in a window.
struct OpStats {
    requests: u64,
    latencies: Vec<u64>,
}

impl OpStats {
    fn rate(&self, window: Duration) -> f64 {
        self.requests as f64 / window.as_secs_f64()
    }
}

/// One flood window: introspection, and the requests beside it if any.
struct FloodWindow {
    introspect: OpStats,
    beside: Option<(FloodOp, OpStats)>,
    errors: BTreeMap<String, u64>,
}

struct Flood {
    window: Duration,
    /// Introspection alone, before the floods and after them: on a shared machine, what the
    /// rest of the machine does may change between windows.
    alone: FloodWindow,
    alone_after: FloodWindow,
    revokes: FloodWindow,
    health: FloodWindow,
    /// The revocation log's sequence before and after the flood's window.
    sequence: (u64, u64),
}

/// Introspection alone, beside the flood of revocations, and beside as many health checks.
async fn flood(
    setup: &Setup<'_>,
    bearer: &MetadataValue<Ascii>,
    market_id: &str,
) -> anyhow::Result<Flood> {
    let args = setup.args;
    let channel = &setup.channels[0];
    let mut caller = Caller::new(channel.clone());
    let revoked_token = caller
        .issue(market_id, "")
        .await
        .map_err(|s| anyhow!("cannot issue an anonymous token: {}", describe(&s)))?
        .access_token;
    caller
        .revoke(market_id, &revoked_token)
        .await
        .map_err(|key| anyhow!("RevokeToken failed: {key}"))?;
    let shared = FloodShared {
        bearer: bearer.clone(),
        hot_token: setup.fixture.credentials.hot_token.clone(),
        market_id: market_id.to_owned(),
        revoked_token,
        tally: Tally::default(),
    };
    let shared = Arc::new(shared);
    eprintln!("watch: IntrospectToken alone ...");
    let alone = flood_window(setup, &shared, None).await?;
    let before = current_sequence(channel, bearer).await?;
    eprintln!(
        "watch: IntrospectToken beside {} slots revoking a revoked token ...",
        args.flood_slots
    );
    let revokes = flood_window(setup, &shared, Some(FloodOp::Revoke)).await?;
    let after = current_sequence(channel, bearer).await?;
    eprintln!(
        "watch: IntrospectToken beside {} slots of health checks ...",
        args.flood_slots
    );
    let health = flood_window(setup, &shared, Some(FloodOp::Health)).await?;
    eprintln!("watch: IntrospectToken alone again ...");
    let alone_after = flood_window(setup, &shared, None).await?;
    Ok(Flood {
        window: args.duration,
        alone,
        alone_after,
        revokes,
        health,
        sequence: (before, after),
    })
}

/// `--concurrency` slots introspecting, and `--flood-slots` slots of `beside` if any, for
/// `--duration` after `--warmup`.
async fn flood_window(
    setup: &Setup<'_>,
    shared: &Arc<FloodShared>,
    beside: Option<FloodOp>,
) -> anyhow::Result<FloodWindow> {
    let args = setup.args;
    let extra = if beside.is_some() {
        args.flood_slots
    } else {
        0
    };
    let tally_before = shared.tally.errors_by_key();
    let drivers = Slot::many(&setup.channels, args.concurrency + extra, &[], 0xF100_0000)
        .into_iter()
        .map(|slot| FloodSlot {
            op: match beside {
                Some(op) if slot.index >= args.concurrency => op,
                _ => FloodOp::Introspect,
            },
            slot,
            shared: shared.clone(),
            latencies: Vec::new(),
        })
        .collect();
    let start = Instant::now() + args.warmup;
    let done = drive(drivers, start, start + args.duration).await?;
    let (mut introspect, mut other) = (Vec::new(), Vec::new());
    for slot in done {
        if slot.op == FloodOp::Introspect {
            introspect.extend(slot.latencies);
        } else {
            other.extend(slot.latencies);
        }
    }
    let stats = |mut latencies: Vec<u64>| {
        latencies.sort_unstable();
        OpStats {
            requests: latencies.len() as u64,
            latencies,
        }
    };
    let mut errors = shared.tally.errors_by_key();
    for (key, n) in tally_before {
        if let Some(count) = errors.get_mut(&key) {
            *count -= n;
        }
    }
    errors.retain(|_, n| *n > 0);
    Ok(FloodWindow {
        introspect: stats(introspect),
        beside: beside.map(|op| (op, stats(other))),
        errors,
    })
}

/// The revocation log's sequence, from the snapshot a new stream starts with.
async fn current_sequence(channel: &Channel, bearer: &MetadataValue<Ascii>) -> anyhow::Result<u64> {
    let mut request = tonic::Request::new(pb::WatchRevocationsRequest { after_sequence: 0 });
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    let mut stream = AuthServiceClient::new(channel.clone())
        .watch_revocations(request)
        .await
        .map_err(|s| anyhow!("cannot open a WatchRevocations stream: {}", describe(&s)))?
        .into_inner();
    match stream.message().await {
        Ok(Some(pb::WatchRevocationsResponse {
            event: Some(Event::Snapshot(snapshot)),
        })) => Ok(snapshot.sequence),
        Ok(other) => bail!("a stream from sequence 0 began with {other:?}, not a snapshot"),
        Err(s) => bail!("a WatchRevocations stream failed: {}", describe(&s)),
    }
}

impl Flood {
    /// Introspection alone: the mean of the windows before and after the floods.
    fn alone_rate(&self) -> f64 {
        (self.alone.introspect.rate(self.window) + self.alone_after.introspect.rate(self.window))
            / 2.0
    }

    fn ratio(&self, window: &FloodWindow) -> f64 {
        window.introspect.rate(self.window) / self.alone_rate().max(1e-9)
    }

    fn lines(&self, flood_slots: usize, concurrency: usize) -> Vec<String> {
        let w = self.window;
        let row = |name: &str, window: &FloodWindow| {
            let beside = window.beside.as_ref().map_or_else(String::new, |(op, s)| {
                format!(
                    "; {} {:.0}/s ({})",
                    op.name(),
                    s.rate(w),
                    spread_text(&s.latencies)
                )
            });
            format!(
                "watch: flood, {name}: introspect-hot {:.0}/s ({}), {} of alone (mean){beside}; non-OK {}",
                window.introspect.rate(w),
                spread_text(&window.introspect.latencies),
                sig3(self.ratio(window)),
                counts_text(&window.errors),
            )
        };
        let ratio = self.ratio(&self.revokes);
        vec![
            format!(
                "watch: flood: {concurrency} slots introspecting, beside {flood_slots} slots of RevokeToken of one revoked token or of health checks, {} each",
                humantime::format_duration(w)
            ),
            row("alone", &self.alone),
            row("beside the revocation flood", &self.revokes),
            row("beside as many health checks", &self.health),
            row("alone again", &self.alone_after),
            format!(
                "watch: flood: revocation log sequence {} -> {} over the flood ({} written); introspection under the flood at {:.1}% of alone: {}",
                self.sequence.0,
                self.sequence.1,
                self.sequence.1.saturating_sub(self.sequence.0),
                ratio * 100.0,
                if ratio >= 0.9 {
                    "within 10%"
                } else {
                    "NOT within 10%"
                }
            ),
        ]
    }

    fn to_json(&self, flood_slots: usize, concurrency: usize) -> Value {
        let w = self.window;
        let window = |window: &FloodWindow| {
            json!({
                "introspect_per_s": window.introspect.rate(w),
                "introspect": spread_json(&window.introspect.latencies),
                "introspect_ratio_to_alone": self.ratio(window),
                "beside": window.beside.as_ref().map(|(op, s)| json!({
                    "op": op.name(),
                    "per_s": s.rate(w),
                    "latency": spread_json(&s.latencies),
                })),
                "errors": window.errors,
            })
        };
        json!({
            "introspect_slots": concurrency,
            "flood_slots": flood_slots,
            "window_s": w.as_secs_f64(),
            "alone": window(&self.alone),
            "alone_after": window(&self.alone_after),
            "introspect_alone_mean_per_s": self.alone_rate(),
            "revocation_flood": window(&self.revokes),
            "health_flood": window(&self.health),
            "sequence_before": self.sequence.0,
            "sequence_after": self.sequence.1,
            "within_10_percent": self.ratio(&self.revokes) >= 0.9,
        })
    }
}
