//! Nothing secret in any log line: a real `tessera serve` at the most verbose level, driven
//! through successes and failures, then its whole log searched for every secret it saw.

use secrecy::ExposeSecret;
use tessera::grpc::pb::auth_service_client::AuthServiceClient;
use tonic::transport::Channel;

use crate::http_client::{Http, basic, bearer};

use crate::common::{
    ServeProcess, TestDb, client_credentials, introspect_on, master_key, password_grant,
    revoke_request,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_token_or_key_appears_in_any_log_line() {
    let db = TestDb::new().await;
    let master_key = master_key(&db);
    let server = ServeProcess::start(&db, &master_key, "trace");
    let addr = server.addr.clone();
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = AuthServiceClient::new(channel.clone());

    let store = tessera::store::Store::new(tessera::store::connect(&db.url).await.expect("db"));
    use tessera::domain::clients::{ClientKind, create_client};
    let integ = create_client(&store, "jobs", ClientKind::Integration, false)
        .await
        .expect("client");
    let secret = integ
        .client_secret
        .expect("secret")
        .expose_secret()
        .to_owned();
    let market = create_client(&store, "web", ClientKind::Marketplace, true)
        .await
        .expect("client");
    let market_secret = market
        .client_secret
        .expect("secret")
        .expose_secret()
        .to_owned();
    let wrong_secret = "wrong-secret-that-must-not-be-logged-0123456789";
    let password = "a-password-that-must-not-be-logged";

    let integ_token = client
        .issue_token(client_credentials(&integ.client_id, &secret))
        .await
        .expect("token")
        .into_inner();
    client
        .issue_token(client_credentials(&integ.client_id, &secret))
        .await
        .expect("cached secret");
    let anon = client
        .issue_token(client_credentials(&market.client_id, &market_secret))
        .await
        .expect("anon")
        .into_inner();
    let _ = client
        .issue_token(client_credentials(&integ.client_id, wrong_secret))
        .await;
    let _ = client
        .issue_token(password_grant(
            &market.client_id,
            "someone@example.com",
            password,
        ))
        .await;
    assert!(
        introspect_on(
            &channel,
            Some(&integ_token.access_token),
            &anon.access_token
        )
        .await
        .expect("introspect")
        .active
    );
    let _ = introspect_on(
        &channel,
        Some(&anon.access_token),
        &integ_token.refresh_token,
    )
    .await;
    client
        .revoke_token(revoke_request(
            &integ.client_id,
            &secret,
            &integ_token.refresh_token,
        ))
        .await
        .expect("revoke");

    // The same over HTTP: Basic credentials, a wrong secret, a login, a bearer logout.
    let http = Http::new(format!("http://{}", server.http_addr));
    let over_http = http
        .form(
            "/v1/auth/token",
            &[("authorization", &basic(&integ.client_id, &secret))],
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(over_http.status.as_u16(), 200, "{over_http:?}");
    let http_refresh = over_http.field("refresh_token").to_owned();
    let _ = http
        .form(
            "/v1/auth/token",
            &[("authorization", &basic(&integ.client_id, wrong_secret))],
            &[("grant_type", "client_credentials")],
        )
        .await;
    let _ = http
        .token(&[
            ("grant_type", "password"),
            ("client_id", &market.client_id),
            ("username", "someone@example.com"),
            ("password", password),
        ])
        .await;
    let _ = http
        .form(
            "/v1/auth/revoke",
            &[("authorization", &bearer(&anon.access_token))],
            &[("token", &http_refresh)],
        )
        .await;
    let _ = http
        .form(
            "/v1/auth/introspect",
            &[("authorization", &bearer(over_http.field("access_token")))],
            &[("token", &anon.access_token)],
        )
        .await;

    let log = server.log();
    drop(server);
    assert!(
        log.contains("request finished"),
        "the log captured HTTP requests"
    );
    assert!(
        log.contains("\"route\":\"POST /v1/auth/token\""),
        "HTTP spans name the route"
    );
    assert!(log.contains("rpc finished"), "the log captured the calls");
    assert!(
        log.contains("\"method\":\"IssueToken\""),
        "spans name the method"
    );
    assert!(log.contains(&integ.client_id), "spans name the client");
    let key_file = tessera::server::dev_master_key_path(&db.url)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let signature_part = |token: &str| {
        token
            .trim_start_matches("v4.public.")
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let secrets = [
        ("integration client secret", secret.clone()),
        ("marketplace client secret", market_secret),
        ("wrong secret", wrong_secret.to_owned()),
        ("password", password.to_owned()),
        ("access token", signature_part(&integ_token.access_token)),
        ("anonymous token", signature_part(&anon.access_token)),
        ("refresh token", integ_token.refresh_token.clone()),
        ("refresh token over HTTP", http_refresh),
        (
            "access token over HTTP",
            signature_part(over_http.field("access_token")),
        ),
        ("master key", master_key.trim().to_owned()),
        ("dev master key file", key_file.trim().to_owned()),
        ("argon2 hash", "$argon2id$".to_owned()),
    ];
    for (what, value) in secrets {
        if value.is_empty() {
            continue;
        }
        assert!(!log.contains(&value), "the {what} appears in the log");
    }
}
