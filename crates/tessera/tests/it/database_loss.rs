//! The database goes away under load and comes back: every call answers UNAVAILABLE
//! `temporarily_unavailable` within two seconds (no hang, no INTERNAL), no refresh token is
//! handed out that was not stored, health turns NOT_SERVING, and calls succeed again within
//! ten seconds of the database's return, without a restart.
//!
//! PostgreSQL is taken away by a TCP proxy between Tessera and the server (cut: every
//! connection closed, new ones refused), so that the shared test server keeps running for
//! the other tests; SQLite is made read-only under the running process (`chattr +i` on the
//! database and its WAL).
use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tessera_testkit::prelude::*;

use tessera::grpc::pb;
use tokio::{
    net::{TcpListener, TcpStream},
    task::AbortHandle,
    time::Instant,
};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::http_client::Http;

use crate::common::{
    HealthWatch, TestApp, TestDb, client_credentials, reason_of, refresh_grant, test_config,
};

/// Forwards TCP connections to a target until cut.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let cut = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = {
            let (cut, connections) = (cut.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is refused
                    }
                    let target = target.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().expect("lock").push(task.abort_handle());
                }
            })
            .abort_handle()
        };
        Self {
            addr,
            cut,
            connections,
            accept,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().expect("lock").drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// SQLite files made immutable, and made writable again on drop whatever happens.
struct ReadOnlyFiles(Vec<PathBuf>);

impl ReadOnlyFiles {
    /// `None` when `chattr` cannot do it here (not root, or a file system without the flag).
    fn make(files: Vec<PathBuf>) -> Option<Self> {
        let files = Self(files);
        files.chattr("+i").then_some(files)
    }

    fn chattr(&self, flag: &str) -> bool {
        std::process::Command::new("chattr")
            .arg(flag)
            .args(&self.0)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for ReadOnlyFiles {
    fn drop(&mut self) {
        self.chattr("-i");
    }
}

/// One call of the load: when it started (from the start of the run), how long it took,
/// what it was and how it ended.
#[derive(Debug, Clone)]
struct Call {
    started: Duration,
    took: Duration,
    op: &'static str,
    outcome: Result<(), (Code, String)>,
}

/// Every call of the load so far, and a signal for each one that ends.
#[derive(Default)]
struct CallLog {
    calls: Mutex<Vec<Call>>,
    pushed: tokio::sync::Notify,
}

struct Load {
    calls: Arc<CallLog>,
    /// Refresh tokens that were handed out with OK.
    handed_out: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    t0: Instant,
}

async fn timed<T>(
    t0: Instant,
    op: &'static str,
    calls: &CallLog,
    work: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Option<T> {
    let started = t0.elapsed();
    let result = work.await;
    let took = t0.elapsed() - started;
    let (value, outcome) = match result {
        Ok(v) => (Some(v), Ok(())),
        Err(status) => (None, Err((status.code(), reason_of(&status)))),
    };
    calls.calls.lock().expect("lock").push(Call {
        started,
        took,
        op,
        outcome,
    });
    calls.pushed.notify_waiters();
    value
}

impl Load {
    /// Workers that each, again and again: start an integration session, refresh it,
    /// introspect, and get an anonymous token.
    async fn start(app: &TestApp) -> Self {
        let (integ_id, integ_secret) = app.integration_client().await;
        let marketplace = app.marketplace_client().await;
        let anonymous = app.anonymous_token(&marketplace).await;
        let bearer = app.introspection_bearer().await;
        let calls: Arc<CallLog> = Arc::default();
        let handed_out: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..6 {
            let mut client = app.client().await;
            let (calls, handed_out, stop) = (calls.clone(), handed_out.clone(), stop.clone());
            let (integ_id, integ_secret, marketplace, anonymous, bearer) = (
                integ_id.clone(),
                integ_secret.clone(),
                marketplace.clone(),
                anonymous.clone(),
                bearer.clone(),
            );
            workers.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let login = timed(t0, "integration login", &calls, async {
                        client
                            .issue_token(client_credentials(&integ_id, &integ_secret))
                            .await
                    })
                    .await;
                    if let Some(login) = login {
                        let login = login.into_inner();
                        handed_out
                            .lock()
                            .expect("lock")
                            .push(login.refresh_token.clone());
                        let refreshed = timed(t0, "refresh", &calls, async {
                            client
                                .issue_token(refresh_grant(
                                    &integ_id,
                                    &integ_secret,
                                    &login.refresh_token,
                                ))
                                .await
                        })
                        .await;
                        if let Some(r) = refreshed {
                            handed_out
                                .lock()
                                .expect("lock")
                                .push(r.into_inner().refresh_token);
                        }
                    }
                    timed(t0, "anonymous", &calls, async {
                        client
                            .issue_token(client_credentials(&marketplace, ""))
                            .await
                    })
                    .await;
                    timed(t0, "introspect", &calls, async {
                        let mut request = tonic::Request::new(pb::IntrospectTokenRequest {
                            token: anonymous.clone(),
                            token_type_hint: 0,
                        });
                        request.metadata_mut().insert(
                            "authorization",
                            format!("Bearer {bearer}").parse().expect("header"),
                        );
                        client.introspect_token(request).await
                    })
                    .await;
                }
            }));
        }
        Self {
            calls,
            handed_out,
            stop,
            workers,
            t0,
        }
    }

    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.calls.lock().expect("lock").clone()
    }

    /// Share of OK calls among those that started in `[from, to)`, and how many there were.
    fn ok_share(&self, from: Duration, to: Duration) -> (f64, usize) {
        let calls = self.calls.calls.lock().expect("lock");
        let (mut ok, mut all) = (0, 0);
        for call in calls.iter().filter(|c| c.started >= from && c.started < to) {
            all += 1;
            ok += usize::from(call.outcome.is_ok());
        }
        (ok as f64 / all.max(1) as f64, all)
    }

    /// Waits, checking after each call that ends, until `done` holds; `false` if it does not
    /// within `within`.
    async fn until(&self, within: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let wait = async {
            loop {
                let pushed = self.calls.pushed.notified();
                tokio::pin!(pushed);
                pushed.as_mut().enable();
                if done(self) {
                    return;
                }
                pushed.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }

    /// How many calls started at or after `from` have ended, and how many of those were OK.
    fn ended_since(&self, from: Duration) -> (usize, usize) {
        let calls = self.calls.calls.lock().expect("lock");
        let since: Vec<_> = calls.iter().filter(|c| c.started >= from).collect();
        let ok = since.iter().filter(|c| c.outcome.is_ok()).count();
        (since.len(), ok)
    }

    async fn stop(mut self) -> (Vec<Call>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for worker in std::mem::take(&mut self.workers) {
            worker.await.expect("worker");
        }
        let calls = self.calls();
        let handed_out = self.handed_out.lock().expect("lock").clone();
        (calls, handed_out)
    }
}

async fn serving_status(app: &TestApp) -> i32 {
    HealthClient::new(app.channel())
        .check(HealthCheckRequest {
            service: "tessera.auth.v1.AuthService".into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status
}

/// Takes the database away under load, checks every promise, brings it back.
async fn lose_and_regain_the_database(
    app: &TestApp,
    take_away: impl FnOnce(),
    give_back: impl FnOnce(),
) {
    let mut health = HealthWatch::start(app.channel()).await;
    assert!(
        health
            .reports(ServingStatus::Serving, Duration::from_secs(10))
            .await
    );
    let load = Load::start(app).await;
    // The load is under way: every worker's loop has gone round a few times.
    assert!(
        load.until(Duration::from_secs(30), |load| load
            .ended_since(Duration::ZERO)
            .1
            >= 40)
            .await,
        "the load made no progress in 30 s"
    );

    let lost = load.now();
    take_away();
    assert!(
        health
            .reports(ServingStatus::NotServing, Duration::from_secs(2))
            .await,
        "health still SERVING 2 s after the database went away"
    );
    let not_serving_after = load.now() - lost;
    // HTTP load balancers and callers hear it too: 503 with Retry-After.
    let http = Http::new(app.http_url());
    let ready = http.get("/readyz").await;
    assert_eq!(ready.status.as_u16(), 503, "{ready:?}");
    assert_eq!(ready.header("retry-after"), "1");
    let token = http
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &uuid::Uuid::new_v4().to_string()),
        ])
        .await;
    token.assert_error(503, "temporarily_unavailable");
    assert_eq!(token.header("retry-after"), "1");
    // Calls that start two seconds after the loss, and end, while the database is still away.
    let settled = lost + Duration::from_secs(2);
    assert!(
        load.until(Duration::from_secs(30), |load| load.ended_since(settled).0
            >= 20)
            .await,
        "the load stopped calling while the database was away"
    );

    let regained = load.now();
    give_back();
    let window = Duration::from_secs(1);
    let recovered = load
        .until(Duration::from_secs(10), |load| {
            let now = load.now();
            let (share, count) = load.ok_share(now.saturating_sub(window), now);
            count >= 20 && share >= 0.99 && now >= regained + window
        })
        .await;
    let now = load.now();
    let (share, count) = load.ok_share(now.saturating_sub(window), now);
    assert!(
        recovered,
        "fewer than 99% of calls succeed 10 s after the database came back ({share:.3} of {count}); last calls: {:?}",
        load.calls().iter().rev().take(4).collect::<Vec<_>>()
    );
    let recovered = Some(now - regained);
    assert!(
        health
            .reports(ServingStatus::Serving, Duration::from_secs(2))
            .await,
        "health not SERVING again when calls succeed"
    );
    assert_eq!(serving_status(app).await, ServingStatus::Serving as i32);
    assert_eq!(http.get("/readyz").await.status.as_u16(), 200);
    let (calls, handed_out) = load.stop().await;

    for call in &calls {
        if let Err((code, reason)) = &call.outcome {
            assert!(
                !matches!(code, Code::Internal | Code::Unknown),
                "{call:?} failed with {code:?}"
            );
            assert!(!reason.is_empty(), "{call:?} has no ErrorInfo reason");
        }
        assert!(
            call.took <= Duration::from_secs(2),
            "{call:?} took more than 2 s"
        );
    }
    let down = lost + Duration::from_secs(2)..regained;
    let during: Vec<_> = calls
        .iter()
        .filter(|c| down.contains(&c.started) && c.started + c.took < regained)
        .collect();
    assert!(
        during.len() > 10,
        "the load kept calling while the database was away"
    );
    for call in during {
        assert_eq!(
            call.outcome,
            Err((Code::Unavailable, "temporarily_unavailable".to_owned())),
            "{} while the database was away: {call:?}",
            call.op
        );
    }
    for token in handed_out {
        let stored = app
            .store
            .find_refresh_token(&tessera::domain::random::refresh_token_key(&token))
            .await
            .expect("query");
        assert!(
            stored.is_some(),
            "a refresh token was handed out but not stored"
        );
    }
    let slowest = calls.iter().map(|c| c.took).max().unwrap_or_default();
    eprintln!(
        "{} calls; NOT_SERVING {not_serving_after:?} after the loss; slowest call {slowest:?}; \
         99% of calls OK again {recovered:?} after the database came back",
        calls.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_database_under_load_gives_unavailable_within_two_seconds_and_recovers_without_restart()
 {
    let db = TestDb::new().await;
    if db.is_postgres() {
        let (before, rest) = db.url.split_once('@').expect("user@host in the URL");
        let (host, path) = rest.split_once('/').expect("host/database in the URL");
        let proxy = Proxy::start(host.to_owned()).await;
        let mut config = test_config(&db);
        config.database_url = format!("{before}@{}/{path}", proxy.addr);
        let app = TestApp::spawn_on(Arc::new(db), config).await;
        lose_and_regain_the_database(&app, || proxy.cut(), || proxy.restore()).await;
    } else {
        let config = test_config(&db);
        let file = db.dir.path().join("tessera.db");
        let app = TestApp::spawn_on(Arc::new(db), config).await;
        let files = vec![
            file.clone(),
            PathBuf::from(format!("{}-wal", file.display())),
        ];
        let read_only: Mutex<Option<ReadOnlyFiles>> = Mutex::new(None);
        let probe = app.db.dir.path().join("chattr-probe");
        std::fs::write(&probe, b"").expect("probe file");
        if ReadOnlyFiles::make(vec![probe]).is_none() {
            eprintln!("skipped: chattr +i is not available here (needs root on ext4 or similar)");
            return;
        }
        lose_and_regain_the_database(
            &app,
            || *read_only.lock().expect("lock") = ReadOnlyFiles::make(files),
            || drop(read_only.lock().expect("lock").take()),
        )
        .await;
    }
}
