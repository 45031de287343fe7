//! tessera-bench: a gRPC load generator for Tessera.
//!
//! Starts its own server in-process (a temp SQLite file, or a fresh PostgreSQL database made
//! through `--database-url` and dropped at the end) or targets a running one (`--target`, which
//! also needs that server's `--database-url` to register the benchmark's clients and users).
//! Each scenario runs `--concurrency` in-flight requests spread over `--connections` HTTP/2
//! connections, for a warm-up and then a fixed, timed window; it reports req/s, p50/p99/max
//! latency and the count of every non-OK status, each also as a ratio to the grpc.health Check
//! baseline measured in the same run.
//!
//! `--watch` measures the revocation feed instead (WatchRevocations: idle streams, delivery
//! latency on one instance and across two, introspection under a flood of revocations).
//!
//! cargo run --release -p tessera-bench -- --duration 10s --warmup 2s
mod args;
mod database;
mod engine;
mod fixture;
mod report;
mod requests;
mod rss;
mod scenarios;
mod server;
mod soak;
mod watch;

/// The same allocator as the `tessera` binary, so that the in-process server behaves alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail};
use clap::Parser;
use tessera::{
    domain::hashing::{HashCost, HashingPool},
    store::Store,
};
use tonic::transport::Channel;

use crate::{
    args::{Args, Scenario},
    database::BenchDb,
    fixture::Fixture,
    server::Server,
};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.connections == 0 || args.concurrency == 0 {
        bail!("--connections and --concurrency must be at least 1");
    }
    if args.duration.is_zero() {
        bail!("--duration must be more than 0s");
    }
    let scenarios = Scenario::list(args.scenarios.as_deref());
    if args.distinct_tokens == 0 && scenarios.iter().any(|s| s.needs_distinct_tokens()) {
        bail!("--distinct-tokens must be at least 1 for introspect-distinct and mixed");
    }
    let mut db = BenchDb::prepare(&args).await?;
    let outcome = tokio::select! {
        result = bench(&args, &scenarios, &db) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    db.cleanup().await;
    outcome
}

async fn bench(args: &Args, scenarios: &[Scenario], db: &BenchDb) -> anyhow::Result<()> {
    let server = Server::start(args, db).await?;
    let result = bench_against(args, scenarios, db, &server).await;
    server.stop().await;
    result
}

/// What the scenarios and the soak start from: the connections, the registered clients, and
/// what the report says about the run.
pub struct Setup<'a> {
    pub args: &'a Args,
    pub cpus: usize,
    pub database: &'a str,
    pub in_process: bool,
    pub channels: Vec<Channel>,
    pub store: &'a Store,
    pub hasher: HashingPool,
    pub fixture: Fixture,
    /// Users made for each scenario that logs in, and for the soak.
    pub user_count: usize,
    pub rss_at_rest: Option<u64>,
}

async fn bench_against(
    args: &Args,
    scenarios: &[Scenario],
    db: &BenchDb,
    server: &Server,
) -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let setup_started = Instant::now();
    let channels = engine::connect(&server.addr, args.connections).await?;
    server.check_serving(&channels[0]).await?;

    // Clients and users, through the library.
    let hasher = HashingPool::new(HashCost::OWASP, cpus, Duration::from_secs(120))
        .map_err(|e| anyhow!("invalid argon2 parameters: {e}"))?;
    let fixture = Fixture::set_up(&server.store, &channels[0]).await?;
    eprintln!(
        "setup: 2 clients, introspection bearer, hot token in {:.2}s",
        setup_started.elapsed().as_secs_f64()
    );

    let mut setup = Setup {
        args,
        cpus,
        database: &db.kind,
        in_process: server.in_process(),
        channels,
        store: &server.store,
        hasher,
        fixture,
        user_count: args.concurrency.clamp(1, 256),
        rss_at_rest: rss::rss_kib(),
    };
    eprintln!(
        "machine: {cpus} CPUs; database: {}; server: {}; {} connections, {} in flight; {}",
        db.kind,
        if setup.in_process {
            format!("in-process on {}", server.addr)
        } else {
            format!("target {}", server.addr)
        },
        args.connections,
        args.concurrency,
        match args.soak {
            Some(length) => format!("soak of {}", humantime::format_duration(length)),
            None if args.watch => format!(
                "revocation feed: {} streams over {} connections, {} warm-up + {} window per part",
                args.watch_streams,
                args.watch_connections,
                humantime::format_duration(args.warmup),
                humantime::format_duration(args.duration)
            ),
            None => format!(
                "{} warm-up + {} window per scenario",
                humantime::format_duration(args.warmup),
                humantime::format_duration(args.duration)
            ),
        },
    );
    match args.soak {
        Some(length) => soak::run(&mut setup, length).await,
        None if args.watch => watch::run(&mut setup, server).await,
        None => scenarios::run(&mut setup, scenarios).await,
    }
}
