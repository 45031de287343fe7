//! IssueToken with client_credentials, and every error-table row it reaches.
use tessera::grpc::pb::{self, issue_token_request::Grant};
use tessera_testkit::prelude::*;
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::{
    TestApp, assert_invalid_client, assert_invalid_request, assert_invalid_scope,
    client_credentials,
};

#[tokio::test]
async fn a_marketplace_client_gets_an_anonymous_public_read_token_without_refresh_token() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let r = app.issue(client_credentials(&id, "")).await.expect("token");
    assert!(r.access_token.starts_with("v4.public."));
    assert_eq!(r.token_type, "bearer");
    assert_eq!(r.expires_in, 600);
    assert_eq!(r.scope, "public-read");
    assert_eq!(r.refresh_token, "");
    assert_eq!(r.issued_token_type, "");
    let info = app.introspect(&r.access_token).await;
    assert!(info.active);
    assert_eq!(info.sub, id);
    assert_eq!(info.client_id, id);
    assert_eq!(info.sid, "", "anonymous tokens have no session");
}

#[tokio::test]
async fn an_integration_client_gets_an_integ_token_with_a_refresh_token_and_a_session() {
    let app = TestApp::spawn().await;
    let (id, _secret, r) = app.integration_login().await;
    assert_eq!(r.scope, "integ");
    assert_eq!(
        r.refresh_token.len(),
        64,
        "a time-ordered id and 256 random bits, URL-safe"
    );
    let access = app.introspect(&r.access_token).await;
    assert!(access.active);
    assert_eq!(access.client_id, id);
    assert_eq!(access.token_type, pb::TokenType::AccessToken as i32);
    assert!(!access.sid.is_empty());
    let session = app
        .store
        .find_session(&access.sid)
        .await
        .expect("query")
        .expect("session row");
    assert_eq!(session.client_id, id);
    let refresh = app.introspect(&r.refresh_token).await;
    assert!(refresh.active);
    assert_eq!(refresh.token_type, pb::TokenType::RefreshToken as i32);
    assert_eq!(refresh.sid, access.sid);
    assert_eq!(refresh.scope, "integ");
}

#[tokio::test]
async fn refresh_tokens_are_stored_only_as_hashes() {
    let app = TestApp::spawn().await;
    let (_, _, r) = app.integration_login().await;
    let hash = tessera::domain::random::refresh_token_key(&r.refresh_token);
    assert!(
        app.store
            .find_refresh_token(&hash)
            .await
            .expect("query")
            .is_some()
    );
    assert!(
        app.store
            .find_refresh_token(&r.refresh_token)
            .await
            .expect("query")
            .is_none()
    );
}

#[tokio::test]
async fn a_requested_scope_may_narrow_but_never_widen_the_grant() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let mut same = client_credentials(&id, "");
    same.scope = "public-read".into();
    assert_eq!(app.issue(same).await.expect("ok").scope, "public-read");
    for wider in ["user", "integ", "public-read user", "trusted:user", "admin"] {
        let mut req = client_credentials(&id, "");
        req.scope = wider.into();
        assert_invalid_scope(app.issue(req).await);
    }
    let (iid, secret) = app.integration_client().await;
    let mut req = client_credentials(&iid, &secret);
    req.scope = "public-read".into();
    assert_invalid_scope(app.issue(req).await);
}

#[tokio::test]
async fn unknown_disabled_and_badly_authenticated_clients_are_invalid_client() {
    let app = TestApp::spawn().await;
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_invalid_client(app.issue(client_credentials(&unknown, "")).await);

    let (id, secret) = app.integration_client().await;
    assert_invalid_client(app.issue(client_credentials(&id, "")).await);
    assert_invalid_client(app.issue(client_credentials(&id, "wrong-secret")).await);
    let other = app.integration_client().await.1;
    assert_invalid_client(app.issue(client_credentials(&id, &other)).await);
    app.issue(client_credentials(&id, &secret))
        .await
        .expect("the right secret works");

    // A marketplace client that sends a secret must send the right one.
    let market = app.marketplace_client().await;
    assert_invalid_client(app.issue(client_credentials(&market, "anything")).await);
    let (market_with, market_secret) = app.marketplace_client_with_secret().await;
    assert_invalid_client(app.issue(client_credentials(&market_with, "nope")).await);
    app.issue(client_credentials(&market_with, &market_secret))
        .await
        .expect("right secret");
    app.issue(client_credentials(&market_with, ""))
        .await
        .expect("no secret is fine for a public client");

    app.disable_client(&id).await;
    assert_invalid_client(app.issue(client_credentials(&id, &secret)).await);
}

#[tokio::test]
async fn no_client_secret_right_or_wrong_makes_the_server_run_argon2() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.integration_client().await;
    let before = app.tokens.hasher().completed();
    for _ in 0..20 {
        app.issue(client_credentials(&id, &secret))
            .await
            .expect("the right secret");
        assert_invalid_client(app.issue(client_credentials(&id, "a-wrong-secret")).await);
    }
    assert_eq!(
        app.tokens.hasher().completed(),
        before,
        "no argon2 work at all"
    );
}

#[tokio::test]
async fn a_secret_stored_as_argon2_by_an_earlier_release_works_and_is_replaced_by_its_digest() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    use tessera::store::entity::clients;
    let app = TestApp::spawn().await;
    let (id, secret) = app.integration_client().await;
    let legacy = app
        .tokens
        .hasher()
        .hash(secret.clone().into())
        .await
        .expect("argon2id");
    clients::Entity::update_many()
        .col_expr(clients::Column::SecretHash, Expr::value(legacy.clone()))
        .filter(clients::Column::ClientId.eq(id.clone()))
        .exec(app.store.connection())
        .await
        .expect("store the legacy hash");
    let stored = || async {
        clients::Entity::find_by_id(id.clone())
            .one(app.store.connection())
            .await
            .expect("read")
            .expect("client")
            .secret_hash
            .expect("a secret")
    };
    assert_invalid_client(app.issue(client_credentials(&id, "a-wrong-secret")).await);
    assert_eq!(stored().await, legacy, "a wrong secret changes nothing");
    app.issue(client_credentials(&id, &secret))
        .await
        .expect("the legacy secret works");
    let now = stored().await;
    assert!(now.starts_with("sha256:"), "{now}");
    let before = app.tokens.hasher().completed();
    app.issue(client_credentials(&id, &secret))
        .await
        .expect("and goes on working");
    assert_eq!(app.tokens.hasher().completed(), before);
}

#[tokio::test]
async fn a_rotated_secret_stops_working_at_once_even_when_cached() {
    let app = TestApp::spawn().await;
    let (id, old) = app.integration_client().await;
    // Twice, so that the second call is served by the verified-secret cache.
    app.issue(client_credentials(&id, &old))
        .await
        .expect("first");
    app.issue(client_credentials(&id, &old))
        .await
        .expect("cached");
    let new = app.rotate_secret(&id).await;
    assert_invalid_client(app.issue(client_credentials(&id, &old)).await);
    app.issue(client_credentials(&id, &new))
        .await
        .expect("new secret works");
}

#[tokio::test]
async fn malformed_requests_are_invalid_request_with_field_violations() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let cases: Vec<(pb::IssueTokenRequest, &str)> = vec![
        (
            pb::IssueTokenRequest {
                client_id: id.clone(),
                ..Default::default()
            },
            "grant",
        ),
        (client_credentials("", ""), "client_id"),
        (client_credentials("not-a-uuid", ""), "client_id"),
        (
            client_credentials(&"x".repeat(100_000 / 4), ""),
            "client_id",
        ),
        (client_credentials(&id, &"s".repeat(300)), "client_secret"),
        (
            pb::IssueTokenRequest {
                client_id: id.clone(),
                grant: Some(Grant::Password(pb::PasswordGrant {
                    username: "a@b.c".into(),
                    password: "p".repeat(129),
                })),
                ..Default::default()
            },
            "password.password",
        ),
        (
            pb::IssueTokenRequest {
                client_id: id.clone(),
                grant: Some(Grant::Password(pb::PasswordGrant {
                    username: "u".repeat(321),
                    password: "pw".into(),
                })),
                ..Default::default()
            },
            "password.username",
        ),
        (
            pb::IssueTokenRequest {
                client_id: id.clone(),
                grant: Some(Grant::RefreshToken(pb::RefreshTokenGrant {
                    refresh_token: "r".repeat(4097),
                })),
                ..Default::default()
            },
            "refresh_token.refresh_token",
        ),
        (
            pb::IssueTokenRequest {
                client_id: id.clone(),
                grant: Some(Grant::TokenExchange(pb::TokenExchangeGrant {
                    subject_token: "v4.public.x".into(),
                    subject_token_type: "urn:ietf:params:oauth:token-type:id_token".into(),
                })),
                ..Default::default()
            },
            "token_exchange.subject_token_type",
        ),
    ];
    for (request, field) in cases {
        let status = assert_invalid_request(app.issue(request).await);
        let bad = status.get_details_bad_request().expect("BadRequest detail");
        assert!(
            bad.field_violations.iter().any(|v| v.field == field),
            "{field} not in {bad:?}"
        );
    }
}

#[tokio::test]
async fn a_password_of_128_characters_is_not_refused_for_its_length() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let request = pb::IssueTokenRequest {
        client_id: id,
        grant: Some(Grant::Password(pb::PasswordGrant {
            username: "a@b.c".into(),
            password: "é".repeat(128),
        })),
        ..Default::default()
    };
    let status = app.issue(request).await.expect_err("no users yet");
    assert_ne!(status.code(), Code::InvalidArgument, "{status:?}");
}

#[tokio::test]
async fn requests_over_64_kib_are_refused_before_decoding() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let mut request = client_credentials(&id, "");
    request.scope = "x".repeat(70 * 1024);
    let status = app.issue(request).await.expect_err("too large");
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
}

#[tokio::test]
async fn no_well_formed_request_yields_internal_or_unknown() {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let strings = [
        "",
        " ",
        "\u{0}",
        "💥",
        "v4.public.",
        "null",
        &"z".repeat(4096),
    ];
    for client_id in [
        id.as_str(),
        "",
        "💥",
        "00000000-0000-0000-0000-000000000000",
    ] {
        for s in strings {
            for grant in [
                None,
                Some(Grant::ClientCredentials(pb::ClientCredentialsGrant {})),
                Some(Grant::Password(pb::PasswordGrant {
                    username: s.into(),
                    password: s.into(),
                })),
                Some(Grant::TokenExchange(pb::TokenExchangeGrant {
                    subject_token: s.into(),
                    subject_token_type: s.into(),
                })),
                Some(Grant::RefreshToken(pb::RefreshTokenGrant {
                    refresh_token: s.into(),
                })),
            ] {
                // With and without a secret, so that the grants themselves are reached too.
                for (secret, scope) in [(s, s), ("", ""), ("", s)] {
                    let request = pb::IssueTokenRequest {
                        client_id: client_id.into(),
                        client_secret: secret.into(),
                        scope: scope.into(),
                        grant: grant.clone(),
                    };
                    if let Err(status) = app.issue(request).await {
                        assert!(
                            !matches!(status.code(), Code::Internal | Code::Unknown),
                            "{status:?}"
                        );
                        assert!(status.get_details_error_info().is_some(), "{status:?}");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn a_marketplace_client_disabled_on_another_instance_stops_getting_anonymous_tokens_within_a_second()
 {
    let app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    let other = app.sibling().await;
    // Both instances have now seen the client enabled.
    app.issue(client_credentials(&id, "")).await.expect("token");
    other
        .issue(client_credentials(&id, ""))
        .await
        .expect("token");

    app.disable_client(&id).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match other.issue(client_credentials(&id, "")).await {
            Err(status) => {
                assert_invalid_client(Err::<(), _>(status));
                break;
            }
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Ok(_) => panic!("a disabled client still got tokens after a second"),
        }
    }
}

/// A message whose field 1 is a number where IssueTokenRequest has a string.
#[derive(Clone, PartialEq, prost::Message)]
struct NotAnIssueTokenRequest {
    #[prost(uint64, tag = "1")]
    client_id: u64,
}

#[tokio::test]
async fn a_request_that_is_not_valid_protobuf_is_invalid_request_not_internal() {
    let app = TestApp::spawn().await;
    let mut grpc = tonic::client::Grpc::new(app.channel());
    grpc.ready().await.expect("ready");
    let codec =
        tonic_prost::ProstCodec::<NotAnIssueTokenRequest, pb::IssueTokenResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/tessera.auth.v1.AuthService/IssueToken",
    );
    let result = grpc
        .unary(
            tonic::Request::new(NotAnIssueTokenRequest { client_id: 7 }),
            path,
            codec,
        )
        .await;
    assert_invalid_request(result);
}
