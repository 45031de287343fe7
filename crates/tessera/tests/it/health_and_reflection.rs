//! grpc.health.v1 and server reflection (v1 and v1alpha).
use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{v1, v1alpha};

use crate::common::{HealthWatch, TestApp, assert_error, client_credentials};

#[tokio::test]
async fn health_reports_serving_for_the_server_and_the_service() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(app.channel());
    for service in ["", "tessera.auth.v1.AuthService"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("check")
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn health_watch_streams_the_current_status() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(app.channel());
    let mut stream = health
        .watch(HealthCheckRequest { service: "".into() })
        .await
        .expect("watch")
        .into_inner();
    let first = stream.next().await.expect("an update").expect("ok");
    assert_eq!(first.status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn health_turns_not_serving_and_calls_unavailable_while_the_database_is_gone() {
    let app = TestApp::spawn_with_manual_clock(|_| {}).await;
    if !app.db.is_postgres() {
        // An open SQLite file cannot be taken away from a running process; the PostgreSQL
        // run of this suite covers it.
        return;
    }
    let id = app.marketplace_client().await;
    let token = app.anonymous_token(&id).await;
    let bearer = app.introspection_bearer().await;

    let mut health = HealthWatch::start(app.channel()).await;
    assert!(
        health
            .reports(ServingStatus::Serving, Duration::from_secs(10))
            .await
    );
    app.db.drop_now().await;
    assert!(
        health
            .reports(ServingStatus::NotServing, Duration::from_secs(10))
            .await,
        "still SERVING 10 s after the database went away"
    );
    // Neither introspection nor an anonymous token needs a query, but neither is answered
    // once this instance cannot learn of revocations (and disabled clients) from elsewhere:
    // once its revocation view is more than 1.5 s old. The follower cannot read the log any
    // more, so moving the clock past that makes the view stale.
    app.clock
        .as_ref()
        .expect("manual clock")
        .advance(Duration::from_secs(2));
    assert_error(
        app.introspect_as(Some(&bearer), &token).await,
        Code::Unavailable,
        "temporarily_unavailable",
    );
    assert_error(
        app.issue(client_credentials(&id, "")).await,
        Code::Unavailable,
        "temporarily_unavailable",
    );
}

/// What reflection `$version` answers to one request: v1 and v1alpha are the same service,
/// generated twice.
macro_rules! ask_reflection {
    ($version:ident, $app:expr, $request:expr) => {{
        use $version::{ServerReflectionRequest, server_reflection_client::ServerReflectionClient};
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some($request),
        };
        let mut responses = ServerReflectionClient::new($app.channel())
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("stream")
            .into_inner();
        let response = responses.next().await.expect("a response").expect("ok");
        response.message_response
    }};
}

#[tokio::test]
async fn reflection_v1_lists_every_service() {
    use v1::server_reflection_request::MessageRequest::ListServices;
    let app = TestApp::spawn().await;
    let answer = ask_reflection!(v1, app, ListServices(String::new()));
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = answer
    else {
        panic!("unexpected {answer:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "tessera.auth.v1.AuthService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn reflection_v1alpha_describes_the_auth_service_for_grpcurl() {
    use v1alpha::{
        server_reflection_request::MessageRequest::FileContainingSymbol,
        server_reflection_response::MessageResponse::FileDescriptorResponse,
    };
    let app = TestApp::spawn().await;
    let auth_service = FileContainingSymbol("tessera.auth.v1.AuthService".into());
    let answer = ask_reflection!(v1alpha, app, auth_service);
    let Some(FileDescriptorResponse(files)) = answer else {
        panic!("unexpected {answer:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    // ErrorInfo is described too, so grpcurl can print error details.
    assert!(matches!(
        ask_reflection!(
            v1alpha,
            app,
            FileContainingSymbol("google.rpc.ErrorInfo".into())
        ),
        Some(FileDescriptorResponse(_))
    ));
}

#[tokio::test]
async fn a_stopped_server_drains_and_exits_cleanly() {
    let mut app = TestApp::spawn().await;
    let id = app.marketplace_client().await;
    app.anonymous_token(&id).await;
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("stops within 10 s");
}
