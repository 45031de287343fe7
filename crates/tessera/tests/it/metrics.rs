//! Metrics (SPEC §9): `/metrics` in the Prometheus text format, with the grpc-ecosystem series,
//! their HTTP equivalents, Tessera's own and the process's; no label holds a secret, a token or
//! a username.
use crate::common::{TestApp, client_credentials};
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
