//! Nothing secret in any log line: a real `tessera serve` at the most verbose level, driven
//! through successes and failures, then its whole log searched for every secret it saw.
use std::time::Duration;

use secrecy::ExposeSecret;
use tessera::grpc::pb::{self, auth_service_client::AuthServiceClient};
use tonic::{Request, transport::Channel};

use crate::common::{ServeProcess, TestDb, client_credentials, master_key};

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
    let mut client = AuthServiceClient::new(channel);

    let store = tessera::store::Store::new(tessera::store::connect(&db.url).await.expect("db"));
    let hasher = tessera::domain::hashing::HashingPool::new(
        tessera::domain::hashing::HashCost::OWASP,
        1,
        Duration::from_secs(30),
    )
    .expect("hasher");
    use tessera::domain::clients::{ClientKind, create_client};
    let integ = create_client(&store, &hasher, "jobs", ClientKind::Integration, false)
        .await
        .expect("client");
    let secret = integ
        .client_secret
        .expect("secret")
        .expose_secret()
        .to_owned();
    let market = create_client(&store, &hasher, "web", ClientKind::Marketplace, true)
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
        .issue_token(pb::IssueTokenRequest {
            client_id: market.client_id.clone(),
            grant: Some(pb::issue_token_request::Grant::Password(
                pb::PasswordGrant {
                    username: "someone@example.com".into(),
                    password: password.into(),
                },
            )),
            ..Default::default()
        })
        .await;
    let mut introspect = Request::new(pb::IntrospectTokenRequest {
        token: anon.access_token.clone(),
        token_type_hint: 0,
    });
    introspect.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", integ_token.access_token)
            .parse()
            .expect("header"),
    );
    assert!(
        client
            .introspect_token(introspect)
            .await
            .expect("introspect")
            .into_inner()
            .active
    );
    let mut refresh = Request::new(pb::IntrospectTokenRequest {
        token: integ_token.refresh_token.clone(),
        token_type_hint: 0,
    });
    refresh.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", anon.access_token)
            .parse()
            .expect("header"),
    );
    let _ = client.introspect_token(refresh).await;
    client
        .revoke_token(pb::RevokeTokenRequest {
            token: integ_token.refresh_token.clone(),
            token_type_hint: 0,
            client_id: integ.client_id.clone(),
            client_secret: secret.clone(),
        })
        .await
        .expect("revoke");

    let log = server.log();
    drop(server);
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
