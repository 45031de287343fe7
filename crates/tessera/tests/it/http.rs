//! The HTTP listener (SPEC §8): the Sharetribe token endpoint's shape over the same rules as
//! gRPC. Form requests, JSON answers, RFC 6749 §5.2 errors with their statuses, HTTP Basic,
//! the SDK's bearer-authenticated logout, health for load balancers, and CORS on both ports.
use std::time::Duration;

use http::Method;
use prost::Message as _;
use tessera::config::CorsOrigins;
use tessera::grpc::pb;

use crate::common::{TestApp, assert_inactive, client_credentials};
use crate::http_client::{Answer, Http, basic, bearer, encode};

const PASSWORD: &str = "correct horse battery staple";

fn http(app: &TestApp) -> Http {
    Http::new(app.http_url())
}

/// Asserts a successful token answer: JSON, never cached.
#[track_caller]
fn assert_token(answer: &Answer, scope: &str) {
    assert_eq!(answer.status.as_u16(), 200, "{answer:?}");
    assert_eq!(answer.header("content-type"), "application/json");
    assert_eq!(answer.header("cache-control"), "no-store");
    assert_eq!(answer.header("pragma"), "no-cache");
    assert!(answer.field("access_token").starts_with("v4.public."));
    assert_eq!(answer.field("token_type"), "bearer");
    assert_eq!(answer.field("scope"), scope);
    assert!(
        answer.json["expires_in"].as_i64().unwrap_or(0) > 0,
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_marketplace_client_gets_an_anonymous_token_with_its_client_id_alone() {
    let app = TestApp::spawn().await;
    let client_id = app.marketplace_client().await;
    let answer = http(&app)
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("scope", "public-read"),
        ])
        .await;
    assert_token(&answer, "public-read");
    assert!(answer.json.get("refresh_token").is_none(), "{answer:?}");
    let introspected = app.introspect(answer.field("access_token")).await;
    assert!(introspected.active);
    assert_eq!(introspected.client_id, client_id);
}

#[tokio::test]
async fn an_integration_client_authenticates_with_http_basic_or_the_form() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.integration_client().await;
    let http = http(&app);
    let with_basic = http
        .form(
            "/v1/auth/token",
            &[("authorization", &basic(&id, &secret))],
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_token(&with_basic, "integ");
    assert!(!with_basic.field("refresh_token").is_empty());
    let in_form = http
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "integ"),
        ])
        .await;
    assert_token(&in_form, "integ");
    // Refresh with Basic: rotated.
    let refreshed = http
        .form(
            "/v1/auth/token",
            &[("authorization", &basic(&id, &secret))],
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", with_basic.field("refresh_token")),
            ],
        )
        .await;
    assert_token(&refreshed, "integ");
    assert_ne!(
        refreshed.field("refresh_token"),
        with_basic.field("refresh_token")
    );
}

#[tokio::test]
async fn a_wrong_secret_is_a_401_invalid_client_challenged_with_basic_when_basic_was_used() {
    let app = TestApp::spawn().await;
    let (id, _) = app.integration_client().await;
    let http = http(&app);
    let with_basic = http
        .form(
            "/v1/auth/token",
            &[("authorization", &basic(&id, "wrong-secret"))],
            &[("grant_type", "client_credentials")],
        )
        .await;
    with_basic.assert_error(401, "invalid_client");
    assert!(
        with_basic.header("www-authenticate").starts_with("Basic "),
        "{with_basic:?}"
    );
    assert!(!String::from_utf8_lossy(&with_basic.raw).contains("wrong-secret"));
    let in_form = http
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", "wrong-secret"),
        ])
        .await;
    in_form.assert_error(401, "invalid_client");
    let unreadable_basic = http
        .form(
            "/v1/auth/token",
            &[("authorization", "Basic not-base64!")],
            &[("grant_type", "client_credentials")],
        )
        .await;
    unreadable_basic.assert_error(401, "invalid_client");
    let both_ways = http
        .form(
            "/v1/auth/token",
            &[("authorization", &basic(&id, "x"))],
            &[("grant_type", "client_credentials"), ("client_secret", "y")],
        )
        .await;
    both_ways.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn a_user_logs_in_refreshes_and_logs_out_with_a_bearer_as_the_sdk_does() {
    let app = TestApp::spawn().await;
    let client_id = app.marketplace_client().await;
    app.user("ada@example.com", PASSWORD).await;
    let http = http(&app);
    let login = http
        .token(&[
            ("client_id", &client_id),
            ("grant_type", "password"),
            ("username", "ada@example.com"),
            ("password", PASSWORD),
            ("scope", "user"),
        ])
        .await;
    assert_token(&login, "user");
    let refreshed = http
        .token(&[
            ("client_id", &client_id),
            ("grant_type", "refresh_token"),
            ("refresh_token", login.field("refresh_token")),
        ])
        .await;
    assert_token(&refreshed, "user");
    assert!(!app.introspect(login.field("refresh_token")).await.active);

    // The SDK's logout: the refresh token, the access token as a bearer, no client_id.
    let logout = http
        .form(
            "/v1/auth/revoke",
            &[("authorization", &bearer(refreshed.field("access_token")))],
            &[("token", refreshed.field("refresh_token"))],
        )
        .await;
    assert_eq!(logout.status.as_u16(), 200, "{logout:?}");
    assert_eq!(logout.json, serde_json::json!({}));
    assert_inactive(&app.introspect(refreshed.field("access_token")).await);
    assert_inactive(&app.introspect(refreshed.field("refresh_token")).await);
}

#[tokio::test]
async fn a_wrong_password_is_a_400_invalid_grant_that_says_nothing_of_the_user() {
    let app = TestApp::spawn().await;
    let client_id = app.marketplace_client().await;
    app.user("ada@example.com", PASSWORD).await;
    let http = http(&app);
    let wrong = http
        .token(&[
            ("client_id", &client_id),
            ("grant_type", "password"),
            ("username", "ada@example.com"),
            ("password", "not the password"),
        ])
        .await;
    wrong.assert_error(400, "invalid_grant");
    let unknown = http
        .token(&[
            ("client_id", &client_id),
            ("grant_type", "password"),
            ("username", "nobody@example.com"),
            ("password", "not the password"),
        ])
        .await;
    unknown.assert_error(400, "invalid_grant");
    assert_eq!(wrong.json, unknown.json);
}

#[tokio::test]
async fn repeated_failed_logins_are_a_429_slow_down_with_retry_after() {
    let app = TestApp::spawn().await;
    let client_id = app.marketplace_client().await;
    let http = http(&app);
    let params = [
        ("client_id", client_id.as_str()),
        ("grant_type", "password"),
        ("username", "locked@example.com"),
        ("password", "guess"),
    ];
    for _ in 0..5 {
        http.token(&params).await.assert_error(400, "invalid_grant");
    }
    let throttled = http.token(&params).await;
    throttled.assert_error(429, "slow_down");
    let retry_after: u64 = throttled.header("retry-after").parse().expect("seconds");
    assert!(retry_after >= 1, "{throttled:?}");
}

#[tokio::test]
async fn token_exchange_gives_a_trusted_user_token_under_either_grant_type_name() {
    let app = TestApp::spawn().await;
    let (client_id, secret) = app.marketplace_client_with_secret().await;
    let login = app
        .user_login(&client_id, "ada@example.com", PASSWORD)
        .await;
    let http = http(&app);
    for grant_type in [
        "token_exchange",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ] {
        let exchanged = http
            .token(&[
                ("client_id", &client_id),
                ("client_secret", &secret),
                ("grant_type", grant_type),
                ("subject_token", &login.access_token),
            ])
            .await;
        assert_token(&exchanged, "trusted:user");
        assert!(exchanged.json.get("refresh_token").is_none());
        assert_eq!(
            exchanged.field("issued_token_type"),
            "urn:ietf:params:oauth:token-type:access_token"
        );
    }
    // Without the secret: the client cannot prove it may exchange.
    http.token(&[
        ("client_id", &client_id),
        ("grant_type", "token_exchange"),
        ("subject_token", &login.access_token),
    ])
    .await
    .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn a_scope_wider_than_the_grant_is_a_400_invalid_scope() {
    let app = TestApp::spawn().await;
    let client_id = app.marketplace_client().await;
    http(&app)
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("scope", "integ"),
        ])
        .await
        .assert_error(400, "invalid_scope");
}

#[tokio::test]
async fn a_logout_with_an_expired_bearer_is_a_401_and_succeeds_after_a_refresh() {
    let app = TestApp::spawn_with_manual_clock(|_| {}).await;
    let client_id = app.marketplace_client().await;
    let login = app
        .user_login(&client_id, "ada@example.com", PASSWORD)
        .await;
    app.advance(Duration::from_secs(11 * 60)).await;
    let http = http(&app);
    let expired = http
        .form(
            "/v1/auth/revoke",
            &[("authorization", &bearer(&login.access_token))],
            &[("token", &login.refresh_token)],
        )
        .await;
    expired.assert_error(401, "invalid_token");
    assert!(
        expired
            .header("www-authenticate")
            .contains("error=\"invalid_token\""),
        "{expired:?}"
    );
    // What the SDK does next: refresh, then revoke again with the new pair.
    let refreshed = http
        .token(&[
            ("client_id", &client_id),
            ("grant_type", "refresh_token"),
            ("refresh_token", &login.refresh_token),
        ])
        .await;
    assert_token(&refreshed, "user");
    let logout = http
        .form(
            "/v1/auth/revoke",
            &[("authorization", &bearer(refreshed.field("access_token")))],
            &[("token", refreshed.field("refresh_token"))],
        )
        .await;
    assert_eq!(logout.status.as_u16(), 200, "{logout:?}");
    assert_inactive(&app.introspect(refreshed.field("refresh_token")).await);
}

#[tokio::test]
async fn an_integration_token_as_bearer_cannot_revoke_its_session_without_the_secret() {
    let app = TestApp::spawn().await;
    let (_, _, integ) = app.integration_login().await;
    http(&app)
        .form(
            "/v1/auth/revoke",
            &[("authorization", &bearer(&integ.access_token))],
            &[("token", &integ.access_token)],
        )
        .await
        .assert_error(401, "invalid_client");
    assert!(app.introspect(&integ.refresh_token).await.active);
}

#[tokio::test]
async fn a_bearer_cannot_revoke_a_token_of_another_session() {
    let app = TestApp::spawn().await;
    let client_id = app.marketplace_client().await;
    let ada = app
        .user_login(&client_id, "ada@example.com", PASSWORD)
        .await;
    let bob = app
        .user_login(&client_id, "bob@example.com", PASSWORD)
        .await;
    let http = http(&app);
    let refused = http
        .form(
            "/v1/auth/revoke",
            &[("authorization", &bearer(&ada.access_token))],
            &[("token", &bob.refresh_token)],
        )
        .await;
    refused.assert_error(400, "unauthorized_client");
    assert!(app.introspect(&bob.refresh_token).await.active);
    // A token that is not ours at all: RFC 7009's 200.
    let unknown = http
        .form(
            "/v1/auth/revoke",
            &[("authorization", &bearer(&ada.access_token))],
            &[("token", "no-such-token")],
        )
        .await;
    assert_eq!(unknown.status.as_u16(), 200, "{unknown:?}");
    // Neither client credentials nor a bearer.
    http.form("/v1/auth/revoke", &[], &[("token", &bob.refresh_token)])
        .await
        .assert_error(401, "invalid_client");
    // A bearer that is no token.
    http.form(
        "/v1/auth/revoke",
        &[("authorization", "Bearer garbage")],
        &[("token", &bob.refresh_token)],
    )
    .await
    .assert_error(401, "invalid_token");
    assert!(app.introspect(&bob.refresh_token).await.active);
}

#[tokio::test]
async fn revoking_with_client_credentials_ends_the_session_and_unknown_tokens_are_fine() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.integration_client().await;
    let issued = app
        .issue(client_credentials(&id, &secret))
        .await
        .expect("integ token");
    let http = http(&app);
    let revoked = http
        .form(
            "/v1/auth/revoke",
            &[("authorization", &basic(&id, &secret))],
            &[
                ("token", &issued.refresh_token),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await;
    assert_eq!(revoked.status.as_u16(), 200, "{revoked:?}");
    assert_eq!(revoked.header("cache-control"), "no-store");
    assert_inactive(&app.introspect(&issued.access_token).await);
    let unknown = http
        .form(
            "/v1/auth/revoke",
            &[],
            &[
                ("client_id", &id),
                ("client_secret", &secret),
                ("token", "unknown"),
            ],
        )
        .await;
    assert_eq!(unknown.status.as_u16(), 200, "{unknown:?}");
    // An integration client without its secret.
    http.form(
        "/v1/auth/revoke",
        &[],
        &[("client_id", &id), ("token", "unknown")],
    )
    .await
    .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn introspection_over_http_needs_an_integ_bearer_and_follows_rfc_7662() {
    let app = TestApp::spawn().await;
    let client_id = app.marketplace_client().await;
    let login = app
        .user_login(&client_id, "ada@example.com", PASSWORD)
        .await;
    let caller = app.introspection_bearer().await;
    let http = http(&app);
    let active = http
        .form(
            "/v1/auth/introspect",
            &[("authorization", &bearer(&caller))],
            &[("token", &login.access_token)],
        )
        .await;
    assert_eq!(active.status.as_u16(), 200, "{active:?}");
    assert_eq!(active.json["active"], true);
    assert_eq!(active.field("scope"), "user");
    assert_eq!(active.field("client_id"), client_id);
    assert_eq!(active.field("token_type"), "access_token");
    assert!(!active.field("sid").is_empty() && !active.field("jti").is_empty());
    assert!(active.json["exp"].as_i64() > active.json["iat"].as_i64());
    let refresh = http
        .form(
            "/v1/auth/introspect",
            &[("authorization", &bearer(&caller))],
            &[("token", &login.refresh_token)],
        )
        .await;
    assert_eq!(refresh.field("token_type"), "refresh_token");
    let inactive = http
        .form(
            "/v1/auth/introspect",
            &[("authorization", &bearer(&caller))],
            &[("token", "v4.public.not-a-token")],
        )
        .await;
    assert_eq!(inactive.status.as_u16(), 200);
    assert_eq!(inactive.json, serde_json::json!({"active": false}));

    let without = http
        .form(
            "/v1/auth/introspect",
            &[],
            &[("token", &login.access_token)],
        )
        .await;
    without.assert_error(401, "invalid_client");
    assert!(without.header("www-authenticate").starts_with("Bearer "));
    // A user's token proves nothing here.
    http.form(
        "/v1/auth/introspect",
        &[("authorization", &bearer(&login.access_token))],
        &[("token", &login.access_token)],
    )
    .await
    .assert_error(401, "invalid_token");
}

#[tokio::test]
async fn the_key_set_is_served_as_json() {
    let app = TestApp::spawn().await;
    let http = http(&app);
    let keys = http.get("/v1/auth/keys").await;
    assert_eq!(keys.status.as_u16(), 200, "{keys:?}");
    let list = keys.json["keys"].as_array().expect("keys");
    let signing: Vec<_> = list.iter().filter(|k| k["signing"] == true).collect();
    assert_eq!(signing.len(), 1, "{keys:?}");
    assert!(
        signing[0]["paserk"]
            .as_str()
            .unwrap_or("")
            .starts_with("k4.public.")
    );
    assert!(
        signing[0]["kid"]
            .as_str()
            .unwrap_or("")
            .starts_with("k4.pid.")
    );
    assert!(
        signing[0]["create_time"]
            .as_str()
            .unwrap_or("")
            .ends_with('Z')
    );
    let post = http.send(Method::POST, "/v1/auth/keys", &[], "").await;
    post.assert_error(405, "invalid_request");
    assert_eq!(post.header("allow"), "GET");
}

#[tokio::test]
async fn every_bad_request_gets_a_clear_status_and_an_oauth_error_code() {
    let app = TestApp::spawn().await;
    let client_id = app.marketplace_client().await;
    let http = http(&app);
    let form_type = ("content-type", "application/x-www-form-urlencoded");

    // The wrong method, content type, size.
    let get = http.get("/v1/auth/token").await;
    get.assert_error(405, "invalid_request");
    assert_eq!(get.header("allow"), "POST");
    let json_body = serde_json::json!({"grant_type": "client_credentials", "client_id": client_id});
    http.send(
        Method::POST,
        "/v1/auth/token",
        &[("content-type", "application/json")],
        json_body.to_string(),
    )
    .await
    .assert_error(415, "invalid_request");
    http.send(
        Method::POST,
        "/v1/auth/token",
        &[],
        "grant_type=client_credentials",
    )
    .await
    .assert_error(415, "invalid_request");
    let huge = format!(
        "grant_type=client_credentials&client_id={client_id}&pad={}",
        "a".repeat(1024 * 1024)
    );
    http.send(Method::POST, "/v1/auth/token", &[form_type], huge)
        .await
        .assert_error(413, "invalid_request");
    let just_over = "a".repeat(64 * 1024 + 1);
    http.send(Method::POST, "/v1/auth/revoke", &[form_type], just_over)
        .await
        .assert_error(413, "invalid_request");
    http.get("/v1/nothing-here")
        .await
        .assert_error(404, "invalid_request");

    // Bad forms.
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (vec![("client_id", &client_id)], 400, "invalid_request"),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
            ],
            400,
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "client_credentials")],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "not-a-uuid"),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![("grant_type", "password"), ("client_id", &client_id)],
            400,
            "invalid_request",
        ),
        (
            vec![("grant_type", "refresh_token"), ("client_id", &client_id)],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "00000000-0000-4000-8000-000000000000"),
            ],
            401,
            "invalid_client",
        ),
    ];
    for (params, status, code) in cases {
        http.token(&params).await.assert_error(status, code);
    }
    let long_token = "x".repeat(5000);
    let oversized = http
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", &long_token),
        ])
        .await;
    oversized.assert_error(400, "invalid_request");
    assert!(
        oversized
            .field("error_description")
            .contains("refresh_token")
    );
    let long_password = "p".repeat(129);
    http.token(&[
        ("grant_type", "password"),
        ("client_id", &client_id),
        ("username", "ada@example.com"),
        ("password", &long_password),
    ])
    .await
    .assert_error(400, "invalid_request");
    // Repeated parameters (RFC 6749 §3.2), junk encodings, a body that is no form at all.
    for body in [
        format!("grant_type=client_credentials&client_id={client_id}&client_id={client_id}"),
        "grant_type=%ZZ&client_id=%FF%FE".to_owned(),
        "\u{0}\u{1}binary&&&===".to_owned(),
    ] {
        let answer = http
            .send(Method::POST, "/v1/auth/token", &[form_type], body.clone())
            .await;
        assert!(
            answer.status.is_client_error(),
            "{body:?} answered {answer:?}"
        );
        assert!(!answer.field("error").is_empty(), "{answer:?}");
    }
    http.form("/v1/auth/revoke", &[], &[("client_id", &client_id)])
        .await
        .assert_error(400, "invalid_request");
    // The server is still well.
    assert_token(
        &http
            .token(&[
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
            ])
            .await,
        "public-read",
    );
}

#[tokio::test]
async fn health_for_load_balancers_is_served_on_the_http_listener() {
    let app = TestApp::spawn().await;
    let http = http(&app);
    let live = http.get("/healthz").await;
    assert_eq!(live.status.as_u16(), 200);
    assert_eq!(live.field("status"), "serving");
    let ready = http.get("/readyz").await;
    assert_eq!(ready.status.as_u16(), 200);
}

#[tokio::test]
async fn the_http_listener_speaks_http_2_without_tls_too() {
    let app = TestApp::spawn().await;
    let client_id = app.marketplace_client().await;
    let h2c = Http::new_h2c(app.http_url());
    // Eight requests at once on the one connection the client keeps.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (h2c, client_id) = (h2c.clone(), client_id.clone());
        calls.spawn(async move {
            h2c.token(&[
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
            ])
            .await
        });
    }
    while let Some(answer) = calls.join_next().await {
        assert_token(&answer.expect("call"), "public-read");
    }
}

#[tokio::test]
async fn the_http_listener_can_be_turned_off() {
    let app = TestApp::spawn_with(|config| config.http_listen = None).await;
    assert!(app.http_addr.is_none());
    assert!(
        app.introspect(&app.introspection_bearer().await)
            .await
            .active
    );
}

const ALLOWED: &str = "https://app.example.com";

async fn preflight(base: &str, path: &str, origin: &str) -> Answer {
    Http::new(base.to_owned())
        .send(
            Method::OPTIONS,
            path,
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
            ],
            "",
        )
        .await
}

#[tokio::test]
async fn cors_preflights_pass_from_allowed_origins_only_on_both_listeners() {
    let app = TestApp::spawn_with(|config| {
        config.cors_origins = CorsOrigins::List(vec![ALLOWED.to_owned()]);
    })
    .await;
    let grpc_web_path = "/tessera.auth.v1.AuthService/IssueToken";
    for (base, path) in [
        (app.http_url(), "/v1/auth/token"),
        (app.endpoint(), grpc_web_path),
    ] {
        let allowed = preflight(&base, path, ALLOWED).await;
        assert!(allowed.status.is_success(), "{allowed:?}");
        assert_eq!(allowed.header("access-control-allow-origin"), ALLOWED);
        let headers = allowed
            .header("access-control-allow-headers")
            .to_lowercase();
        assert!(headers.contains("authorization") && headers.contains("content-type"));
        assert!(
            allowed
                .header("access-control-allow-methods")
                .contains("POST")
        );
        assert_ne!(allowed.header("access-control-allow-credentials"), "true");
        let refused = preflight(&base, path, "https://evil.example.com").await;
        assert!(
            refused.headers.get("access-control-allow-origin").is_none(),
            "{refused:?}"
        );
    }
    // The answer itself carries the origin for the browser.
    let client_id = app.marketplace_client().await;
    let answer = http(&app)
        .form(
            "/v1/auth/token",
            &[("origin", ALLOWED)],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
            ],
        )
        .await;
    assert_eq!(answer.header("access-control-allow-origin"), ALLOWED);
}

#[tokio::test]
async fn without_cors_origins_no_origin_is_allowed() {
    let app = TestApp::spawn().await;
    let answer = preflight(&app.http_url(), "/v1/auth/token", ALLOWED).await;
    assert!(
        answer.headers.get("access-control-allow-origin").is_none(),
        "{answer:?}"
    );
}

#[tokio::test]
async fn the_grpc_port_answers_grpc_web_over_http_1_1() {
    let app = TestApp::spawn().await;
    let client_id = app.marketplace_client().await;
    let message = client_credentials(&client_id, "").encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).expect("len").to_be_bytes());
    framed.extend_from_slice(&message);
    let answer = Http::new(app.endpoint())
        .send(
            Method::POST,
            "/tessera.auth.v1.AuthService/IssueToken",
            &[
                ("content-type", "application/grpc-web+proto"),
                ("x-grpc-web", "1"),
            ],
            framed,
        )
        .await;
    assert_eq!(answer.status.as_u16(), 200, "{answer:?}");
    let body = &answer.raw;
    assert_eq!(body[0], 0, "a data frame first");
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let response = pb::IssueTokenResponse::decode(&body[5..5 + len]).expect("message");
    assert_eq!(response.scope, "public-read");
    let trailers = String::from_utf8_lossy(&body[5 + len + 5..]);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
}

#[tokio::test]
async fn form_encoded_special_characters_reach_the_domain_intact() {
    let app = TestApp::spawn().await;
    let client_id = app.marketplace_client().await;
    let password = "p&ss=w+rd %20 ünï ✓";
    app.user("ada+tag@example.com", password).await;
    let answer = http(&app)
        .send(
            Method::POST,
            "/v1/auth/token",
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            encode(&[
                ("grant_type", "password"),
                ("client_id", &client_id),
                ("username", "ada+tag@example.com"),
                ("password", password),
            ]),
        )
        .await;
    assert_token(&answer, "user");
}

#[tokio::test]
async fn http_logins_are_throttled_by_the_peer_or_the_address_a_trusted_proxy_forwards() {
    use tessera_testkit::prelude::*;
    let wrong_login = |app: &TestApp, client_id: String| {
        let http = http(app);
        async move {
            http.form(
                "/v1/auth/token",
                &[("x-forwarded-for", "203.0.113.7, 10.0.0.1")],
                &[
                    ("grant_type", "password"),
                    ("client_id", &client_id),
                    ("username", "someone@example.com"),
                    ("password", "wrong-password"),
                ],
            )
            .await
            .assert_error(400, "invalid_grant");
        }
    };
    let failures = |app: &TestApp, key: &'static str| {
        let store = app.store.clone();
        async move {
            store
                .read_counter(key)
                .await
                .expect("read")
                .map(|c| c.failures)
        }
    };
    // Behind a trusted proxy (this test, on 127.0.0.1, and 10.0.0.0/8): the forwarded address.
    let behind_proxy = TestApp::spawn_with(|config| {
        config.trusted_proxies =
            tessera::config::trusted_proxies("127.0.0.1, 10.0.0.0/8").expect("proxies");
    })
    .await;
    wrong_login(&behind_proxy, behind_proxy.marketplace_client().await).await;
    assert_eq!(failures(&behind_proxy, "addr:203.0.113.7").await, Some(1));
    assert_eq!(failures(&behind_proxy, "addr:127.0.0.1").await, None);
    // From anyone else, the header is ignored: the peer is charged.
    let direct = TestApp::spawn().await;
    wrong_login(&direct, direct.marketplace_client().await).await;
    assert_eq!(failures(&direct, "addr:203.0.113.7").await, None);
    assert_eq!(failures(&direct, "addr:127.0.0.1").await, Some(1));
}
