//! The `tessera` binary: client and key commands round-trip against a running server, and
//! bad configuration is one clear line and a non-zero exit.
use std::process::{Command, Output};

use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder, Statement};
use serde_json::Value;
use tessera::grpc::pb;
use tessera::store::entity::{revocation_log, users};
use tessera_migration::{Migrator, MigratorTrait, SchemaManager};

use crate::common::{
    TestApp, TestDb, assert_inactive, assert_invalid_client, assert_success, client_credentials,
    test_config,
};

fn tessera(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TESSERA_DATABASE_URL", database_url)
        .output()
        .expect("run tessera")
}

fn json_of(output: &Output) -> Value {
    assert_success(output);
    serde_json::from_slice(&output.stdout).expect("one JSON value on stdout")
}

/// `tessera client create --name <name> --kind <kind> <flags> --json`: the client it made.
fn create_client(database_url: &str, name: &str, kind: &str, flags: &[&str]) -> Value {
    let mut args = vec!["client", "create", "--name", name, "--kind", kind];
    args.extend_from_slice(flags);
    args.push("--json");
    json_of(&tessera(database_url, &args))
}

#[tokio::test]
async fn clients_made_by_the_cli_get_tokens_and_show_in_the_list_without_secrets() {
    let app = TestApp::spawn().await;
    let url = app.db.url.clone();
    let market = create_client(&url, "web", "marketplace", &[]);
    let market_id = market["client_id"].as_str().expect("client_id").to_owned();
    assert!(
        market.get("client_secret").is_none(),
        "a public client gets no secret unless asked"
    );
    let integ = create_client(&url, "jobs", "integration", &[]);
    let integ_id = integ["client_id"].as_str().expect("client_id").to_owned();
    let secret = integ["client_secret"].as_str().expect("secret").to_owned();
    assert!(secret.len() >= 43);

    app.issue(client_credentials(&market_id, ""))
        .await
        .expect("anonymous token");
    let r = app
        .issue(client_credentials(&integ_id, &secret))
        .await
        .expect("integ token");
    assert_eq!(r.scope, "integ");

    let list_output = tessera(&url, &["client", "list", "--json"]);
    let list = json_of(&list_output);
    let text = String::from_utf8_lossy(&list_output.stdout);
    assert!(
        !text.contains(&secret) && !text.contains("argon2"),
        "no secret or hash in the list"
    );
    let rows = list.as_array().expect("array");
    assert!(
        rows.iter()
            .any(|c| c["client_id"] == market_id.as_str() && c["kind"] == "marketplace")
    );
    assert!(rows.iter().any(|c| c["client_id"] == integ_id.as_str()
        && c["kind"] == "integration"
        && c["has_secret"] == true));
}

#[tokio::test]
async fn a_marketplace_client_can_be_made_with_a_secret() {
    let db = TestDb::new().await;
    let c = create_client(&db.url, "ssr", "marketplace", &["--with-secret"]);
    assert!(c["client_secret"].as_str().is_some_and(|s| s.len() >= 43));
}

#[tokio::test]
async fn rotate_secret_and_disable_take_effect_at_once_on_a_running_server() {
    let app = TestApp::spawn().await;
    let url = app.db.url.clone();
    let integ = create_client(&url, "jobs", "integration", &[]);
    let id = integ["client_id"].as_str().expect("id").to_owned();
    let old = integ["client_secret"].as_str().expect("secret").to_owned();
    let before = app
        .issue(client_credentials(&id, &old))
        .await
        .expect("token");

    let rotated = json_of(&tessera(&url, &["client", "rotate-secret", &id, "--json"]));
    assert_eq!(rotated["client_id"], id.as_str());
    let new = rotated["client_secret"]
        .as_str()
        .expect("new secret")
        .to_owned();
    assert_ne!(new, old);
    assert_invalid_client(app.issue(client_credentials(&id, &old)).await);
    app.issue(client_credentials(&id, &new))
        .await
        .expect("new secret works");

    let disabled = tessera(&url, &["client", "disable", &id]);
    assert_success(&disabled);
    assert_invalid_client(app.issue(client_credentials(&id, &new)).await);
    app.assert_inactive_within_a_second(&before.access_token)
        .await;
    assert_inactive(&app.introspect(&before.refresh_token).await);
}

#[tokio::test]
async fn commands_on_an_unknown_client_fail_with_one_line() {
    let db = TestDb::new().await;
    let id = uuid::Uuid::new_v4().to_string();
    for args in [
        vec!["client", "disable", id.as_str()],
        vec!["client", "rotate-secret", id.as_str()],
    ] {
        let out = tessera(&db.url, &args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("no client"), "{stderr}");
    }
}

#[tokio::test]
async fn keys_list_shows_what_get_key_set_serves() {
    let app = TestApp::spawn().await;
    let keys = json_of(&tessera(&app.db.url, &["keys", "list", "--json"]));
    let served = app
        .client()
        .await
        .get_key_set(pb::GetKeySetRequest {})
        .await
        .expect("key set")
        .into_inner();
    let listed = keys.as_array().expect("array");
    assert_eq!(listed.len(), served.keys.len());
    assert_eq!(served.keys.len(), 1);
    let key = &served.keys[0];
    assert_eq!(listed[0]["kid"], key.kid.as_str());
    assert_eq!(listed[0]["paserk"], key.paserk.as_str());
    assert!(key.signing);
    assert!(key.kid.starts_with("k4.pid.") && key.paserk.starts_with("k4.public."));
    assert!(key.create_time.is_some() && key.retire_time.is_none());
}

#[tokio::test]
async fn migrate_applies_the_schema_and_is_idempotent() {
    let db = TestDb::new().await;
    for _ in 0..2 {
        let out = tessera(&db.url, &["migrate"]);
        assert_success(&out);
    }
}

#[tokio::test]
async fn migrations_go_down_all_the_way_and_up_again_on_a_fresh_database() {
    let db = TestDb::new().await;
    let conn = tessera::store::connect(&db.url).await.expect("connect");
    Migrator::up(&conn, None).await.expect("up");
    Migrator::down(&conn, None).await.expect("down");
    assert!(
        Migrator::get_applied_migrations(&conn)
            .await
            .expect("applied")
            .is_empty()
    );
    let schema = SchemaManager::new(&conn);
    for table in ["clients", "users", "sessions", "revocation_log"] {
        assert!(
            !schema.has_table(table).await.expect("has_table"),
            "{table}"
        );
    }
    Migrator::up(&conn, None).await.expect("up again");
    assert!(
        Migrator::get_pending_migrations(&conn)
            .await
            .expect("pending")
            .is_empty()
    );
    drop(conn);
    let config = test_config(&db);
    let app = TestApp::spawn_on(std::sync::Arc::new(db), config).await;
    let client = app.marketplace_client().await;
    let token = app.anonymous_token(&client).await;
    assert!(app.introspect(&token).await.active);
}

async fn query_i64(conn: &DatabaseConnection, sql: &str) -> i64 {
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("a row");
    row.try_get("", "n").expect("n")
}

#[tokio::test]
async fn dropping_the_dead_schema_keeps_user_versions_and_comes_back_down() {
    let db = TestDb::new().await;
    let conn = tessera::store::connect(&db.url).await.expect("connect");
    // Everything before the migration that drops the dead schema (000005).
    let before: usize = 4;
    Migrator::up(&conn, Some(u32::try_from(before).expect("few")))
        .await
        .expect("up to the one before");
    for sql in [
        "INSERT INTO clients (client_id, name, kind, disabled_at, tokens_valid_after, created_at, updated_at) \
         VALUES ('c1', 'web', 'marketplace', 7, 7, 1, 7), ('c2', 'app', 'marketplace', NULL, 0, 1, 1)",
        "INSERT INTO users (user_id, username, password_hash, tokens_valid_after, created_at, updated_at) \
         VALUES ('u1', 'ann@example.com', 'x', 42, 1, 42)",
        "INSERT INTO revocation_events (kind, subject, at) \
         VALUES ('client', 'c1', 7), ('session', 's1', 8), ('token', 't1', 9)",
        "INSERT INTO revoked_tokens (jti, client_id, revoked_at, expires_at) VALUES ('t1', 'c2', 9, 99)",
    ] {
        conn.execute_unprepared(sql).await.expect(sql);
    }

    Migrator::up(&conn, None).await.expect("up");
    let user = users::Entity::find_by_id("u1".to_owned())
        .one(&conn)
        .await
        .expect("read user")
        .expect("the user");
    assert_eq!(user.version, 42);
    // The old log's events live on in the commit-ordered one, numbered in their order.
    let events: Vec<(i64, String)> = revocation_log::Entity::find()
        .order_by_asc(revocation_log::Column::Sequence)
        .all(&conn)
        .await
        .expect("read events")
        .into_iter()
        .map(|e| (e.sequence, e.kind))
        .collect();
    assert_eq!(events, [(1, "session".to_owned()), (2, "token".to_owned())]);
    let counter = "SELECT last AS n FROM revocation_sequence WHERE id = 1";
    assert_eq!(query_i64(&conn, counter).await, 2);
    let schema = SchemaManager::new(&conn);
    assert!(!schema.has_table("revoked_tokens").await.expect("has_table"));
    assert!(
        !schema
            .has_column("clients", "tokens_valid_after")
            .await
            .expect("has_column")
    );

    // Back down through 000005, the later migrations first.
    let after = u32::try_from(Migrator::migrations().len() - before).expect("few");
    Migrator::down(&conn, Some(after)).await.expect("down");
    assert!(schema.has_table("revoked_tokens").await.expect("has_table"));
    assert!(
        schema
            .has_table("revocation_events")
            .await
            .expect("has_table")
    );
    assert!(
        schema
            .has_column("clients", "tokens_valid_after")
            .await
            .expect("has_column")
    );
    let user_valid_after = "SELECT tokens_valid_after AS n FROM users WHERE user_id = 'u1'";
    assert_eq!(query_i64(&conn, user_valid_after).await, 42);
    let client_valid_after = "SELECT tokens_valid_after AS n FROM clients WHERE client_id = ";
    assert_eq!(
        query_i64(&conn, &format!("{client_valid_after}'c1'")).await,
        7
    );
    assert_eq!(
        query_i64(&conn, &format!("{client_valid_after}'c2'")).await,
        0
    );
}

fn serve_with(envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Never the default 8080 or 9464: tests run side by side.
        .env("TESSERA_HTTP_LISTEN", "127.0.0.1:0")
        .env("TESSERA_METRICS_LISTEN", "127.0.0.1:0");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    // Bad configuration must exit by itself; a server that started would hang here, so
    // bound the wait.
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id().to_string();
    let (exited, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || exited.send(child.wait_with_output()));
    match exit.recv_timeout(std::time::Duration::from_secs(20)) {
        Ok(output) => output.expect("output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("tessera serve kept running with envs {envs:?}");
        }
    }
}

#[tokio::test]
async fn a_bad_configuration_prints_one_clear_line_and_exits_non_zero() {
    let db = TestDb::new().await;
    let url = db.url.as_str();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("TESSERA_DATABASE_URL", url),
                ("TESSERA_ACCESS_TOKEN_TTL", "ten minutes"),
            ],
            "TESSERA_ACCESS_TOKEN_TTL",
        ),
        (
            &[("TESSERA_DATABASE_URL", url), ("TESSERA_LISTEN", "nowhere")],
            "TESSERA_LISTEN",
        ),
        (
            &[
                ("TESSERA_DATABASE_URL", url),
                ("TESSERA_HTTP_LISTEN", "8080"),
            ],
            "TESSERA_HTTP_LISTEN",
        ),
        (
            &[
                ("TESSERA_DATABASE_URL", url),
                ("TESSERA_METRICS_LISTEN", "metrics"),
            ],
            "TESSERA_METRICS_LISTEN",
        ),
        (
            &[
                ("TESSERA_DATABASE_URL", url),
                ("TESSERA_GRPC_MAX_STREAMS_PER_CONNECTION", "0"),
            ],
            "TESSERA_GRPC_MAX_STREAMS_PER_CONNECTION",
        ),
        (
            &[
                ("TESSERA_DATABASE_URL", url),
                ("TESSERA_KEEPALIVE_INTERVAL", "often"),
            ],
            "TESSERA_KEEPALIVE_INTERVAL",
        ),
        // Past its upper bound: it would overflow hyper's clock (a panic per connection).
        (
            &[
                ("TESSERA_DATABASE_URL", url),
                ("TESSERA_GRPC_MAX_CONNECTION_AGE", "300000000000y"),
            ],
            "TESSERA_GRPC_MAX_CONNECTION_AGE",
        ),
        (
            &[
                ("TESSERA_DATABASE_URL", url),
                ("TESSERA_KEEPALIVE_TIMEOUT", "1m"),
            ],
            "TESSERA_KEEPALIVE_TIMEOUT",
        ),
        (
            &[
                ("TESSERA_DATABASE_URL", url),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            &[
                ("TESSERA_DATABASE_URL", url),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            &[
                ("TESSERA_DATABASE_URL", url),
                ("TESSERA_CORS_ORIGINS", "app.example.com"),
            ],
            "TESSERA_CORS_ORIGINS",
        ),
        (
            &[
                ("TESSERA_DATABASE_URL", url),
                ("TESSERA_INTROSPECTION_AUTH", "maybe"),
            ],
            "TESSERA_INTROSPECTION_AUTH",
        ),
        (
            &[
                ("TESSERA_DATABASE_URL", url),
                ("TESSERA_CLOCK_LEEWAY", "-5s"),
            ],
            "TESSERA_CLOCK_LEEWAY",
        ),
        (
            &[
                ("TESSERA_DATABASE_URL", url),
                ("TESSERA_MASTER_KEY", "c2hvcnQ="),
            ],
            "TESSERA_MASTER_KEY",
        ),
        (
            &[("TESSERA_DATABASE_URL", "mysql://x/y")],
            "TESSERA_DATABASE_URL",
        ),
        (
            &[(
                "TESSERA_DATABASE_URL",
                "postgres://postgres@127.0.0.1:1/none",
            )],
            "TESSERA_MASTER_KEY is required",
        ),
    ];
    for (envs, expected) in cases {
        let out = serve_with(envs);
        assert!(!out.status.success(), "{envs:?} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line for {envs:?}, got: {stderr}");
        assert!(lines[0].contains(expected), "{expected} not in {stderr}");
    }
}

#[tokio::test]
async fn a_wrong_master_key_refuses_to_start() {
    let app = TestApp::spawn().await;
    let url = app.db.url.clone();
    let other = tessera::domain::master_key::MasterKey::generate().1;
    let out = serve_with(&[
        ("TESSERA_DATABASE_URL", url.as_str()),
        ("TESSERA_MASTER_KEY", other.as_str()),
        ("TESSERA_LISTEN", "127.0.0.1:0"),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TESSERA_MASTER_KEY does not open the signing keys"),
        "{stderr}"
    );
}
