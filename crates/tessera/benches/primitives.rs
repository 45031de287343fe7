//! Micro-benchmarks of the costs that bound throughput: signing and verifying an access token,
//! the whole introspection path (hot and cold), and one argon2id hash. From these the bounds
//! of docs/benchmarks.md are computed on any machine: cores / cost.
//!
//! cargo bench --bench primitives
use std::{hint::black_box, sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use pasetors::{
    keys::{AsymmetricKeyPair, Generate},
    version4::V4,
};
use secrecy::SecretString;
use tessera::{
    config::{Config, IntrospectionAuth},
    domain::{
        TokenService,
        clock::{SystemClock, now_ms},
        hashing::{HashCost, HashingPool},
        keyring::paserk_pid,
        policy::TokenPolicy,
        token::{self, AccessClaims, Unverified},
    },
    server::build_token_service,
};

fn claims() -> AccessClaims {
    let now = now_ms();
    AccessClaims {
        iss: "tessera".into(),
        sub: "8c7d4e5f-0000-4000-8000-000000000001".into(),
        client_id: "8c7d4e5f-0000-4000-8000-000000000001".into(),
        scope: "integ".into(),
        jti: uuid::Uuid::new_v4().to_string(),
        issued_at: now,
        not_before: now - now % 1000,
        expires_at: now + 600_000,
        sid: Some(uuid::Uuid::new_v4().to_string()),
    }
}

fn token_primitives(c: &mut Criterion) {
    let pair = AsymmetricKeyPair::<V4>::generate().expect("key pair");
    let kid = paserk_pid(&pair.public);
    let claims = claims();
    c.bench_function("token sign (v4.public, Ed25519)", |b| {
        b.iter(|| token::sign(black_box(&claims), &kid, &pair.secret).expect("sign"))
    });
    let signed = token::sign(&claims, &kid, &pair.secret).expect("sign");
    c.bench_function("token verify (parse + Ed25519 + claims)", |b| {
        b.iter(|| {
            let parsed = Unverified::parse(black_box(&signed)).expect("parse");
            parsed.verify(&pair.public).expect("verify")
        })
    });
}

/// A token service on an in-memory SQLite database, as the server builds it.
fn service(rt: &tokio::runtime::Runtime) -> Arc<TokenService> {
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        http_listen: None,
        metrics_listen: None,
        cors_origins: Default::default(),
        database_url: "sqlite::memory:".into(),
        master_key: None,
        policy: TokenPolicy::default(),
        introspection_auth: IntrospectionAuth::Bearer,
        hash_cost: HashCost::OWASP,
        max_watch_streams: tessera::grpc::watch::DEFAULT_MAX_STREAMS,
        trusted_proxies: Vec::new(),
        limits: Default::default(),
        tls: None,
        cleanup_interval: Duration::ZERO,
    };
    rt.block_on(build_token_service(&config, SystemClock::shared()))
        .expect("token service")
        .1
}

/// Introspects, reading the revocation log every thousand calls as the server's poller does
/// every 200 ms (a view that is not kept fresh refuses to answer).
fn introspect(rt: &tokio::runtime::Runtime, tokens: &TokenService, token: &str, calls: &mut u64) {
    *calls += 1;
    if (*calls).is_multiple_of(1000) {
        rt.block_on(tokens.revocations().refresh())
            .expect("refresh");
    }
    rt.block_on(tokens.introspect(black_box(token)))
        .expect("ok")
        .expect("active");
}

fn introspection_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tokens = service(&rt);
    let hot = tokens.keys().sign(&claims()).expect("sign");
    let mut calls = 0;
    c.bench_function("introspect: hot token (cached signature)", |b| {
        b.iter(|| introspect(&rt, &tokens, &hot, &mut calls))
    });
    // Every call a token the cache has not seen: a full verification each time.
    c.bench_function("introspect: cold token (full verification)", |b| {
        b.iter_batched(
            || tokens.keys().sign(&claims()).expect("sign"),
            |token| introspect(&rt, &tokens, &token, &mut calls),
            criterion::BatchSize::SmallInput,
        )
    });
}

fn argon2_hash(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let pool = HashingPool::new(HashCost::OWASP, 1, Duration::from_secs(60)).expect("pool");
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(20);
    group.bench_function("hash m=19456 t=2 p=1", |b| {
        b.iter(|| {
            rt.block_on(pool.hash(SecretString::from("correct horse battery staple")))
                .expect("hash")
        })
    });
    // One hash per core at once, as a saturated hashing pool runs them: what "cores ÷ one
    // hash" assumes is free (memory bandwidth and shared caches are not).
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let parallel = HashingPool::new(HashCost::OWASP, cores, Duration::from_secs(60)).expect("pool");
    group.bench_function(format!("{cores} hashes at once, one per core"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut hashes = tokio::task::JoinSet::new();
                for _ in 0..cores {
                    let pool = parallel.clone();
                    hashes.spawn(async move {
                        pool.hash(SecretString::from("correct horse battery staple"))
                            .await
                    });
                }
                while let Some(hash) = hashes.join_next().await {
                    hash.expect("task").expect("hash");
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, token_primitives, introspection_path, argon2_hash);
criterion_main!(benches);
