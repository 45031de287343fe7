//! A real `tessera serve` process: SIGTERM drains in-flight calls and exits 0 after
//! reporting NOT_SERVING; after a `kill -9` and a restart, every earlier token and session is
//! still good (and every revocation still holds).
use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use tessera::{
    grpc::pb::{self, auth_service_client::AuthServiceClient},
    store::{self, Store, entity::login_throttles},
};
use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::common::{
    PASSWORD, ServeProcess, TestDb, client_credentials, introspect_on, master_key, password_grant,
    refresh_grant, register,
};

/// Whether a login is in flight on the server: between counting its attempt against the
/// username's throttle (before its argon2 verification) and clearing the counter on success.
async fn a_login_is_in_flight(store: &Store) -> bool {
    login_throttles::Entity::find()
        .filter(login_throttles::Column::ThrottleKey.starts_with("user:"))
        .filter(login_throttles::Column::Failures.gt(0))
        .count(store.connection())
        .await
        .expect("read throttles")
        > 0
}

fn send_sigterm(server: &ServeProcess) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_reports_not_serving_lets_in_flight_calls_finish_and_exits_zero() {
    let db = TestDb::new().await;
    let key = master_key(&db);
    let mut server = ServeProcess::start(&db, &key, "info");
    let fixture = register(&db, 4).await;
    let store = Store::new(store::connect(&db.url).await.expect("connect"));
    let channel = server.channel();

    // A health watcher, as a load balancer keeps one.
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: "tessera.auth.v1.AuthService".into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch.next().await.expect("first status").expect("ok");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    // Logins take an argon2 hash each: slow enough to be in flight when the signal lands,
    // which is sent as soon as one is seen working on the server.
    let market = fixture.marketplace.clone();
    let logins: Vec<_> = fixture
        .usernames
        .iter()
        .map(|username| {
            let mut client = AuthServiceClient::new(channel.clone());
            let request = password_grant(&market, username, PASSWORD);
            tokio::spawn(async move { client.issue_token(request).await })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !a_login_is_in_flight(&store).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no login reached the server within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    send_sigterm(&server);

    // Each one is answered, none cut off; the hashing pool may turn some away on a busy
    // machine (RESOURCE_EXHAUSTED slow_down is an answer), but not all.
    let mut ok = 0;
    for login in logins {
        match login.await.expect("task") {
            Ok(_) => ok += 1,
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {}
            Err(status) => panic!("an in-flight login was cut off: {status:?}"),
        }
    }
    assert!(ok > 0, "no in-flight login finished");
    let mut saw_not_serving = false;
    while let Ok(Some(Ok(update))) =
        tokio::time::timeout(Duration::from_secs(10), watch.next()).await
    {
        saw_not_serving |= update.status == ServingStatus::NotServing as i32;
    }
    assert!(
        saw_not_serving,
        "health never said NOT_SERVING before the exit"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0), "log: {}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_and_a_restart_every_earlier_token_and_session_is_still_good() {
    let db = TestDb::new().await;
    let key = master_key(&db);
    let server = ServeProcess::start(&db, &key, "info");
    let fixture = register(&db, 1).await;
    let (integ_id, integ_secret) = &fixture.integration;
    let mut client = AuthServiceClient::new(server.channel());
    let issue = |request: pb::IssueTokenRequest| {
        let mut client = client.clone();
        async move {
            client
                .issue_token(request)
                .await
                .expect("token")
                .into_inner()
        }
    };
    let integration = issue(client_credentials(integ_id, integ_secret)).await;
    let bearer = integration.access_token.clone();
    let anonymous = issue(client_credentials(&fixture.marketplace, "")).await;
    let user = issue(password_grant(
        &fixture.marketplace,
        &fixture.usernames[0],
        PASSWORD,
    ))
    .await;
    let ended = issue(client_credentials(integ_id, integ_secret)).await;
    client
        .revoke_token(pb::RevokeTokenRequest {
            client_id: integ_id.clone(),
            client_secret: integ_secret.clone(),
            token: ended.refresh_token.clone(),
            token_type_hint: 0,
        })
        .await
        .expect("revoke");

    let mut server = server;
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");
    drop(server);

    let restarted = ServeProcess::start(&db, &key, "info");
    let channel = restarted.channel();
    for token in [
        &integration.access_token,
        &integration.refresh_token,
        &anonymous.access_token,
        &user.access_token,
        &user.refresh_token,
    ] {
        let info = introspect_on(&channel, Some(&bearer), token)
            .await
            .expect("introspect");
        assert!(info.active, "a token did not survive the restart");
    }
    for token in [&ended.access_token, &ended.refresh_token] {
        let info = introspect_on(&channel, Some(&bearer), token)
            .await
            .expect("introspect");
        assert!(!info.active, "a revocation did not survive the restart");
    }
    let mut client = AuthServiceClient::new(channel);
    client
        .issue_token(refresh_grant(
            integ_id,
            integ_secret,
            &integration.refresh_token,
        ))
        .await
        .expect("the integration session refreshes");
    client
        .issue_token(refresh_grant(&fixture.marketplace, "", &user.refresh_token))
        .await
        .expect("the user session refreshes");
}
