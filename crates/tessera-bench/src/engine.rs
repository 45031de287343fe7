//! The load engine, shared by the scenarios and the soak: `concurrency` slots spread over the
//! connections, each a task looping choose -> send -> record until the window closes; the
//! slots' sessions logged in before the clock starts; the weighted pick of a mix; the tally of
//! non-OK statuses.
use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow};
use tessera_testkit::describe;
use tokio::{sync::Semaphore, task::JoinSet};
use tonic::transport::{Channel, Endpoint};

use crate::requests::{Caller, Outcome};

/// `connections` HTTP/2 connections to the server at `addr`, each call on them limited to 30s.
pub async fn connect(addr: &str, connections: usize) -> anyhow::Result<Vec<Channel>> {
    connect_with(addr, connections, Some(Duration::from_secs(30))).await
}

/// `connections` HTTP/2 connections to the server at `addr`; `timeout` limits each call (none
/// for connections that carry long-lived streams).
pub async fn connect_with(
    addr: &str,
    connections: usize,
    timeout: Option<Duration>,
) -> anyhow::Result<Vec<Channel>> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let mut endpoint = Endpoint::from_shared(uri.clone())
        .with_context(|| format!("invalid server address {addr}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5));
    if let Some(timeout) = timeout {
        endpoint = endpoint.timeout(timeout);
    }
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(
            endpoint
                .connect()
                .await
                .with_context(|| format!("cannot connect to {uri}"))?,
        );
    }
    Ok(channels)
}

/// One in-flight slot: its connection, its user and session, its random stream.
pub struct Slot {
    pub index: usize,
    pub caller: Caller,
    /// This slot's user (`index` modulo the users); empty when the load has none.
    pub username: String,
    /// This slot's session, if any: its latest refresh token.
    pub refresh_token: Option<String>,
    rng: u64,
}

impl Slot {
    /// `count` slots over `channels` in turn, with seeds `seed`, `seed + 1`, ...
    pub fn many(channels: &[Channel], count: usize, usernames: &[String], seed: u64) -> Vec<Self> {
        (0..count)
            .map(|index| Self {
                index,
                caller: Caller::new(channels[index % channels.len()].clone()),
                username: if usernames.is_empty() {
                    String::new()
                } else {
                    usernames[index % usernames.len()].clone()
                },
                refresh_token: None,
                rng: seed + index as u64,
            })
            .collect()
    }

    /// The next number of this slot's stream (splitmix64).
    pub fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next operation of a weighted mix; `fallback` if the weights sum to nothing.
    pub fn next_of<T: Copy>(&mut self, mix: &[(T, u64)], fallback: T) -> T {
        let total: u64 = mix.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return fallback;
        }
        let mut pick = self.next_random() % total;
        for &(op, weight) in mix {
            if pick < weight {
                return op;
            }
            pick -= weight;
        }
        fallback
    }
}

/// Logs every slot's user in before the clock starts, no more than `at_once` at a time (a login
/// turned away for capacity still counts against the user's throttle), each retried while
/// hashing capacity is full. Prints how long it took.
pub async fn open_sessions(
    slots: Vec<Slot>,
    at_once: usize,
    market_id: &str,
    password: &str,
) -> anyhow::Result<(Vec<Slot>, Duration)> {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(at_once));
    let login: Arc<(String, String)> = Arc::new((market_id.to_owned(), password.to_owned()));
    let mut logins = JoinSet::new();
    let count = slots.len();
    for mut slot in slots {
        let (gate, login) = (gate.clone(), login.clone());
        logins.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let (market_id, password) = &*login;
            let session = slot
                .caller
                .log_in_retrying(market_id, &slot.username, password)
                .await;
            (slot, session)
        });
    }
    let mut slots = Vec::with_capacity(count);
    while let Some(joined) = logins.join_next().await {
        let (mut slot, session) = joined.context("login task failed")?;
        slot.refresh_token = Some(session.map_err(|s| {
            anyhow!(
                "cannot log in a session for slot {}: {}",
                slot.index,
                describe(&s)
            )
        })?);
        slots.push(slot);
    }
    Ok((slots, started.elapsed()))
}

/// What a slot does: its own choice of requests, and what it keeps of their outcomes.
pub trait Driver: Send + 'static {
    type Op: Copy + Send;

    /// The next request, after any work it needs off the clock (a new session, a logout and
    /// login); `None` when the turn went on that work alone. `counting` is false during the
    /// warm-up.
    fn next(&mut self, counting: bool) -> impl Future<Output = Option<Self::Op>> + Send;

    /// Sends one request.
    fn send(&mut self, op: Self::Op) -> impl Future<Output = Outcome> + Send;

    /// A request completed within the window, and how long it took in nanoseconds.
    fn record(&mut self, op: Self::Op, outcome: Outcome, latency_ns: u64);
}

/// Runs every driver as its own task until `end`, counting only the requests that complete
/// between `start` (after the warm-up) and `end`; returns the drivers and what they recorded.
pub async fn drive<D: Driver>(
    drivers: Vec<D>,
    start: Instant,
    end: Instant,
) -> anyhow::Result<Vec<D>> {
    let mut tasks = JoinSet::new();
    for mut driver in drivers {
        tasks.spawn(async move {
            while Instant::now() < end {
                let op = driver.next(Instant::now() >= start).await;
                let begun = Instant::now();
                if begun >= end {
                    break;
                }
                let Some(op) = op else { continue };
                let outcome = driver.send(op).await;
                let done = Instant::now();
                if done < start || done > end {
                    continue;
                }
                let latency = u64::try_from((done - begun).as_nanos()).unwrap_or(u64::MAX);
                driver.record(op, outcome, latency);
            }
            driver
        });
    }
    let mut drivers = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        drivers.push(joined.context("a load task failed")?);
    }
    Ok(drivers)
}

/// Requests and non-OK statuses so far, shared by the slots; the statuses by key.
#[derive(Default)]
pub struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
    by_key: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    /// Counts one request; a non-OK one also under `label:key` (or its key alone).
    pub fn record(&self, label: Option<&str>, outcome: Outcome) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Err(key) = outcome {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let key = match label {
                Some(label) => format!("{label}:{key}"),
                None => key,
            };
            let mut by_key = match self.by_key.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            *by_key.entry(key).or_default() += 1;
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn errors_by_key(&self) -> BTreeMap<String, u64> {
        match self.by_key.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}
