//! Login timing parity: how long IssueToken (password grant) takes for an unknown username, a
//! wrong password and the right password, measured from a gRPC client against the real server
//! on a temp SQLite database. Prints medians and p90s; never asserts on time.
//!
//! cargo bench --bench login_timing [-- ROUNDS]
use std::time::{Duration, Instant};

use tessera::{
    domain::{
        clients::{ClientKind, create_client},
        hashing::{HashCost, HashingPool},
        users::create_user,
    },
    grpc::pb::{self, auth_service_client::AuthServiceClient, issue_token_request::Grant},
    server::Application,
};

fn login(client_id: &str, username: &str, password: &str) -> pb::IssueTokenRequest {
    pb::IssueTokenRequest {
        client_id: client_id.into(),
        grant: Some(Grant::Password(pb::PasswordGrant {
            username: username.into(),
            password: password.into(),
        })),
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(40);
    // A temp SQLite file (or PostgreSQL, with TESSERA_TEST_DATABASE_URL), set as the tests set it.
    let db = tessera_testkit::TestDb::new().await;
    let app = Application::build(tessera_testkit::test_config(&db)).await?;
    let (addr, store) = (app.local_addr(), app.store());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let hasher = HashingPool::new(HashCost::OWASP, 2, Duration::from_secs(60))?;
    let client_id = create_client(&store, "bench", ClientKind::Marketplace, false)
        .await?
        .client_id;
    // One user per round, so that no username reaches the throttle's lock.
    for i in 0..rounds {
        create_user(
            &store,
            &hasher,
            &format!("user{i}@example.com"),
            "the-right-password".to_owned().into(),
        )
        .await?;
    }
    let mut grpc = AuthServiceClient::connect(format!("http://{addr}")).await?;
    // Warm-up: connection, dummy hash, caches.
    let _ = grpc
        .issue_token(login(&client_id, "warm-up@example.com", "x"))
        .await;

    let mut unknown = Vec::with_capacity(rounds);
    let mut wrong = Vec::with_capacity(rounds);
    let mut right = Vec::with_capacity(rounds);
    for i in 0..rounds {
        // Interleaved, so that drift in machine load touches all three alike.
        let cases = [
            (
                &mut unknown,
                format!("nobody{i}@example.com"),
                "the-right-password",
                false,
            ),
            (
                &mut wrong,
                format!("user{i}@example.com"),
                "a-wrong-password",
                false,
            ),
            (
                &mut right,
                format!("user{i}@example.com"),
                "the-right-password",
                true,
            ),
        ];
        for (samples, username, password, should_pass) in cases {
            let started = Instant::now();
            let result = grpc
                .issue_token(login(&client_id, &username, password))
                .await;
            samples.push(started.elapsed());
            assert_eq!(result.is_ok(), should_pass, "{username}: {result:?}");
        }
    }
    println!("password grant over gRPC, {rounds} rounds, argon2id m=19456 t=2 p=1");
    println!("{:<16} {:>10} {:>10}", "case", "median", "p90");
    for (name, samples) in [
        ("unknown user", &mut unknown),
        ("wrong password", &mut wrong),
        ("right password", &mut right),
    ] {
        samples.sort();
        println!(
            "{:<16} {:>8.2}ms {:>8.2}ms",
            name,
            ms(percentile(samples, 0.5)),
            ms(percentile(samples, 0.9))
        );
    }
    let _ = stop.send(());
    server.await??;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
