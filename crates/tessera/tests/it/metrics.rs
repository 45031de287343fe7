//! Metrics (SPEC §9): `/metrics` in the Prometheus text format, with the grpc-ecosystem series,
//! their HTTP equivalents, Tessera's own and the process's; no label holds a secret, a token or
//! a username.
use crate::common::{ServeProcess, TestApp, TestDb, client_credentials, master_key};
use crate::http_client::Http;

async fn scrape(app: &TestApp) -> String {
    let addr = app.metrics_addr.expect("the metrics listener is on");
    let answer = Http::new(format!("http://{addr}")).get("/metrics").await;
    assert_eq!(answer.status, 200);
    String::from_utf8(answer.raw.to_vec()).expect("text")
}

#[tokio::test]
async fn metrics_count_calls_by_method_code_grant_and_outcome_and_show_no_secret() {
    let app = TestApp::spawn().await;
    let client = app.marketplace_client().await;
    let anonymous = app.anonymous_token(&client).await;
    let username = "metrics-user@example.com";
    let password = "a password for the metrics test";
    app.user(username, password).await;
    let login = app.login(&client, username, password).await.expect("login");
    let _ = app.login(&client, username, "not the password").await;
    let (integ_id, integ_secret, integ) = app.integration_login().await;
    let _ = app
        .issue(client_credentials(&integ_id, "a wrong secret"))
        .await;
    let http = Http::new(app.http_url());
    http.token(&[("grant_type", "client_credentials"), ("client_id", &client)])
        .await;

    let text = scrape(&app).await;
    for series in [
        r#"grpc_server_started_total{grpc_service="tessera.auth.v1.AuthService",grpc_method="IssueToken",grpc_type="unary"}"#,
        r#"grpc_server_handled_total{grpc_service="tessera.auth.v1.AuthService",grpc_method="IssueToken",grpc_type="unary",grpc_code="OK"}"#,
        r#"grpc_server_handled_total{grpc_service="tessera.auth.v1.AuthService",grpc_method="IssueToken",grpc_type="unary",grpc_code="Unauthenticated"}"#,
        "grpc_server_handling_seconds_bucket{",
        r#"http_server_requests_total{method="POST",route="/v1/auth/token",status="200"}"#,
        r#"tessera_tokens_issued_total{grant="client_credentials"}"#,
        r#"tessera_tokens_issued_total{grant="password"}"#,
        r#"tessera_logins_total{outcome="ok"}"#,
        r#"tessera_logins_total{outcome="invalid_grant"}"#,
        "tessera_revocation_lag_seconds ",
        "tessera_hashing_queue ",
        "tessera_database_up 1",
        "process_resident_memory_bytes ",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    for secret in [
        username,
        password,
        "not the password",
        "a wrong secret",
        integ_secret.as_str(),
        anonymous.as_str(),
        login.access_token.as_str(),
        login.refresh_token.as_str(),
        integ.access_token.as_str(),
        integ.refresh_token.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret in the metrics: {secret}");
    }
}

/// The value of one series in a scrape (0 when absent).
fn value_of(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}

/// A process of its own (the recorder is global: this binary's other tests count too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_known_mix_of_calls_the_series_of_every_service_match_exactly() {
    use tessera::domain::clients::{ClientKind, create_client};
    use tessera::grpc::pb::auth_service_client::AuthServiceClient;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let db = TestDb::new().await;
    let key = master_key(&db);
    let server = ServeProcess::start(&db, &key, "info");
    let store = tessera::store::Store::new(tessera::store::connect(&db.url).await.expect("db"));
    let market = create_client(&store, "web", ClientKind::Marketplace, false)
        .await
        .expect("client");
    let mut auth = AuthServiceClient::new(server.channel());
    for _ in 0..3 {
        auth.issue_token(client_credentials(&market.client_id, ""))
            .await
            .expect("anonymous token");
    }
    let refused = auth
        .issue_token(client_credentials("no-such-client", "a secret"))
        .await
        .expect_err("a client id of the wrong shape");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let mut health = HealthClient::new(server.channel());
    for _ in 0..2 {
        health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health");
    }
    // A stream its caller leaves: handled as Canceled when the server sees it go.
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    watch.message().await.expect("a status").expect("one");
    drop(watch);

    let metrics = Http::new(format!("http://{}", server.metrics_addr));
    let auth_labels =
        r#"grpc_service="tessera.auth.v1.AuthService",grpc_method="IssueToken",grpc_type="unary""#;
    let check = r#"grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_type="unary""#;
    let watch_labels =
        r#"grpc_service="grpc.health.v1.Health",grpc_method="Watch",grpc_type="server_stream""#;
    let expected = [
        (format!("grpc_server_started_total{{{auth_labels}}}"), 4.0),
        (
            format!(r#"grpc_server_handled_total{{{auth_labels},grpc_code="OK"}}"#),
            3.0,
        ),
        (
            format!(r#"grpc_server_handled_total{{{auth_labels},grpc_code="InvalidArgument"}}"#),
            1.0,
        ),
        (
            format!("grpc_server_handling_seconds_count{{{auth_labels}}}"),
            4.0,
        ),
        (format!("grpc_server_started_total{{{check}}}"), 2.0),
        (
            format!(r#"grpc_server_handled_total{{{check},grpc_code="OK"}}"#),
            2.0,
        ),
        (
            format!("grpc_server_handling_seconds_count{{{check}}}"),
            2.0,
        ),
        (format!("grpc_server_started_total{{{watch_labels}}}"), 1.0),
        (
            format!(r#"grpc_server_handled_total{{{watch_labels},grpc_code="Canceled"}}"#),
            1.0,
        ),
        (
            r#"tessera_tokens_issued_total{grant="client_credentials"}"#.to_owned(),
            3.0,
        ),
    ];
    // The stream's end reaches the server a moment after the caller leaves.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = scrape_at(&metrics).await;
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(series, want)| value_of(&text, series) != *want)
            .map(|(series, want)| format!("{series}: {} (want {want})", value_of(&text, series)))
            .collect();
        if wrong.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{wrong:#?}\nin:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn scrape_at(metrics: &Http) -> String {
    let answer = metrics.get("/metrics").await;
    assert_eq!(answer.status, 200);
    String::from_utf8(answer.raw.to_vec()).expect("text")
}
