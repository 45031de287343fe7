//! OTLP traces (SPEC §9): a real `tessera serve` process with OTEL_EXPORTER_OTLP_ENDPOINT set
//! exports its spans to an in-process OTLP collector; a trusted proxy's W3C `traceparent` makes
//! the request's span a child of the caller's, anyone else's only a link; span names come from
//! a fixed set; no span holds a secret, token, password or username.
//! (A process of its own: the tracing subscriber is global, and this binary's other tests must
//! not export.)
use std::time::Duration;

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
    trace::v1::Span,
};
use secrecy::ExposeSecret;
use tessera::domain::{
    clients::{ClientKind, create_client},
    hashing::{HashCost, HashingPool},
    users::create_user,
};
use tessera::grpc::pb::{self, auth_service_client::AuthServiceClient};
use tokio::sync::mpsc;
use tonic::{
    Request, Response, Status,
    transport::{Channel, server::TcpIncoming},
};

use crate::common::{ServeProcess, TestDb, master_key, password_grant};
use crate::http_client::Http;

/// An OTLP collector that hands every span it receives to the test.
struct Collector(mpsc::UnboundedSender<Span>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        for span in spans {
            let _ = self.0.send(span);
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts a collector on 127.0.0.1:0: its endpoint URL and the spans it receives.
async fn collector() -> (String, mpsc::UnboundedReceiver<Span>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(tx)))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    (format!("http://{addr}"), rx)
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// Every attribute and event of a span, as text.
fn everything_in(span: &Span) -> String {
    let pairs = |kvs: &[KeyValue]| {
        kvs.iter()
            .map(|kv| format!("{}={} ", kv.key, text(&kv.value)))
            .collect::<String>()
    };
    let mut all = format!("{} {}", span.name, pairs(&span.attributes));
    for event in &span.events {
        all += &format!("{} {}", event.name, pairs(&event.attributes));
    }
    all
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const TRUSTED_TRACE_ID: &str = "5bf92f3577b34da6a3ce929d0e0e4737";
const TRUSTED_PARENT_ID: &str = "10f067aa0ba902b8";
const HTTP_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const HTTP_PARENT_ID: &str = "b7ad6b7169203331";
const UNTRUSTED_HTTP_TRACE_ID: &str = "1af7651916cd43dd8448eb211c80319d";
/// The trusted proxy: a loopback address of its own (callers leave from 127.0.0.1).
const PROXY: &str = "127.0.0.2";

/// Whether `span` links to the caller's span `trace_id`/`span_id`, without its tracestate.
fn links_to(span: &Span, trace_id: &str, span_id: &str) -> bool {
    span.links.iter().any(|link| {
        hex::encode(&link.trace_id) == trace_id
            && hex::encode(&link.span_id) == span_id
            && link.trace_state.is_empty()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_collector_in_a_trusted_callers_trace_only_without_secrets() {
    let (endpoint, mut spans) = collector().await;
    let db = TestDb::new().await;
    let key = master_key(&db);
    let mut server = ServeProcess::start_with_env(
        &db,
        &key,
        "info",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SERVICE_NAME", "tessera-under-test"),
            ("TESSERA_TRUSTED_PROXIES", PROXY),
        ],
    );
    let store = tessera::store::Store::new(tessera::store::connect(&db.url).await.expect("db"));
    let market = create_client(&store, "web", ClientKind::Marketplace, true)
        .await
        .expect("client");
    let client_secret = market
        .client_secret
        .expect("secret")
        .expose_secret()
        .to_owned();
    let username = "traced-user@example.com";
    let password = "a password that must not be traced";
    let hasher = HashingPool::new(HashCost::OWASP, 1, Duration::from_secs(30)).expect("hasher");
    create_user(&store, &hasher, username, password.to_owned().into())
        .await
        .expect("user");

    // An untrusted caller asks for its login not to be sampled (`-00`), in a trace of its
    // choosing: it is recorded all the same, in a trace of ours, linked to its own.
    let mut login = Request::new(password_grant(&market.client_id, username, password));
    login.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{PARENT_ID}-00")
            .parse()
            .expect("value"),
    );
    login
        .metadata_mut()
        .insert("tracestate", "vendor=opaque".parse().expect("value"));
    login.get_mut().client_secret = client_secret.clone();
    let mut client = AuthServiceClient::new(server.channel());
    let tokens = client.issue_token(login).await.expect("login").into_inner();
    // A traceparent that does not parse is ignored: the call gets a trace of its own.
    let mut keys = Request::new(pb::GetKeySetRequest {});
    keys.metadata_mut()
        .insert("traceparent", "00-not-a-trace-01".parse().expect("value"));
    client.get_key_set(keys).await.expect("key set");
    // The trusted proxy's context is adopted, tracestate included.
    let proxy = PROXY.parse().expect("ip");
    let proxied = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .local_address(Some(proxy))
        .connect_lazy();
    let mut keys = Request::new(pb::GetKeySetRequest {});
    keys.metadata_mut().insert(
        "traceparent",
        format!("00-{TRUSTED_TRACE_ID}-{TRUSTED_PARENT_ID}-01")
            .parse()
            .expect("value"),
    );
    keys.metadata_mut()
        .insert("tracestate", "vendor=opaque".parse().expect("value"));
    AuthServiceClient::new(proxied)
        .get_key_set(keys)
        .await
        .expect("key set through the proxy");

    // The HTTP listener: the same rule.
    let base = format!("http://{}", server.http_addr);
    let client_credentials = [
        ("grant_type", "client_credentials"),
        ("client_id", market.client_id.as_str()),
    ];
    let trusted = format!("00-{HTTP_TRACE_ID}-{HTTP_PARENT_ID}-01");
    let answer = Http::new_from(base.clone(), proxy)
        .form(
            "/v1/auth/token",
            &[("traceparent", &trusted)],
            &client_credentials,
        )
        .await;
    assert_eq!(answer.status, 200);
    let http = Http::new(base);
    let untrusted = format!("00-{UNTRUSTED_HTTP_TRACE_ID}-{HTTP_PARENT_ID}-00");
    let answer = http
        .form(
            "/v1/auth/token",
            &[("traceparent", &untrusted)],
            &client_credentials,
        )
        .await;
    assert_eq!(answer.status, 200);
    // Methods and paths of the caller's own invention name no span.
    let brew = http::Method::from_bytes(b"BREW-QQZZXXJJ").expect("a method");
    http.send(brew, "/v1/auth/token", &[], "").await;
    http.get("/no/such/route-QQZZXXJJ").await;

    // SIGTERM: the server drains and flushes its last spans before it exits.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        let exit = server.child.wait().expect("wait");
        (exit, server)
    });
    let (exit, server) = tokio::time::timeout(Duration::from_secs(30), exit)
        .await
        .expect("the server stops within 30 s")
        .expect("join");
    assert!(exit.success(), "log: {}", server.log());

    let mut received = Vec::new();
    while let Ok(span) = spans.try_recv() {
        received.push(span);
    }
    let names: Vec<&str> = received.iter().map(|s| s.name.as_str()).collect();
    let by_name = |name: &str| {
        received
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} among {names:?}"))
    };

    let issue = by_name("tessera.auth.v1.AuthService/IssueToken");
    assert_ne!(
        hex::encode(&issue.trace_id),
        TRACE_ID,
        "an untrusted caller's trace id is not adopted"
    );
    assert!(issue.parent_span_id.is_empty(), "a root: {issue:?}");
    assert!(issue.trace_state.is_empty(), "its tracestate is dropped");
    assert!(
        links_to(issue, TRACE_ID, PARENT_ID),
        "linked to the caller's span: {:?}",
        issue.links
    );
    assert_eq!(issue.kind, 2, "a server span");
    assert_eq!(
        attribute(issue, "rpc.system"),
        Some(&Value::StringValue("grpc".into()))
    );
    assert_eq!(
        attribute(issue, "rpc.method"),
        Some(&Value::StringValue("IssueToken".into()))
    );
    assert_eq!(
        attribute(issue, "rpc.grpc.status_code"),
        Some(&Value::IntValue(0))
    );
    // The handler's span (method, client, outcome) is a child of the call's.
    let rpc = received
        .iter()
        .find(|s| s.name == "rpc" && s.parent_span_id == issue.span_id)
        .unwrap_or_else(|| panic!("no rpc span under IssueToken among {names:?}"));
    assert_eq!(
        attribute(rpc, "outcome"),
        Some(&Value::StringValue("ok".into()))
    );
    assert_eq!(
        attribute(rpc, "client_id"),
        Some(&Value::StringValue(market.client_id.clone()))
    );

    // Inner spans: the password's hashing and the database's queries, in the same trace.
    for inner in ["argon2.verify", "db.find_user_by_username"] {
        let span = by_name(inner);
        assert_eq!(span.trace_id, issue.trace_id, "{inner}");
        assert!(
            span.attributes.iter().all(|kv| kv.key.starts_with("code.")),
            "{inner} holds only its code location: {:?}",
            span.attributes
        );
    }

    let key_sets: Vec<&Span> = received
        .iter()
        .filter(|s| s.name == "tessera.auth.v1.AuthService/GetKeySet")
        .collect();
    let proxied = key_sets
        .iter()
        .find(|s| hex::encode(&s.trace_id) == TRUSTED_TRACE_ID)
        .unwrap_or_else(|| panic!("the trusted proxy's trace is not adopted: {key_sets:?}"));
    assert_eq!(hex::encode(&proxied.parent_span_id), TRUSTED_PARENT_ID);
    assert_eq!(proxied.trace_state, "vendor=opaque");
    assert!(proxied.links.is_empty());
    let invalid = key_sets
        .iter()
        .find(|s| hex::encode(&s.trace_id) != TRUSTED_TRACE_ID)
        .unwrap_or_else(|| panic!("no GetKeySet of the invalid traceparent: {key_sets:?}"));
    assert!(
        invalid.parent_span_id.is_empty() && invalid.links.is_empty(),
        "an invalid traceparent starts a trace, linked to nothing"
    );
    assert_ne!(hex::encode(&invalid.trace_id), "0".repeat(32));

    let tokens_over_http: Vec<&Span> = received
        .iter()
        .filter(|s| s.name == "POST /v1/auth/token")
        .collect();
    let proxied = tokens_over_http
        .iter()
        .find(|s| hex::encode(&s.trace_id) == HTTP_TRACE_ID)
        .unwrap_or_else(|| panic!("the proxy's HTTP trace is not adopted: {tokens_over_http:?}"));
    assert_eq!(hex::encode(&proxied.parent_span_id), HTTP_PARENT_ID);
    assert_eq!(
        attribute(proxied, "http.response.status_code"),
        Some(&Value::IntValue(200))
    );
    let direct = tokens_over_http
        .iter()
        .find(|s| links_to(s, UNTRUSTED_HTTP_TRACE_ID, HTTP_PARENT_ID))
        .unwrap_or_else(|| panic!("no untrusted HTTP call, linked: {tokens_over_http:?}"));
    assert_ne!(hex::encode(&direct.trace_id), UNTRUSTED_HTTP_TRACE_ID);
    assert!(direct.parent_span_id.is_empty());

    let other = by_name("HTTP");
    assert_eq!(
        attribute(other, "http.request.method"),
        Some(&Value::StringValue("_OTHER".into()))
    );
    assert!(
        received
            .iter()
            .any(|s| s.name == "GET" && attribute(s, "http.route").is_none()),
        "no span of the unmatched path among {names:?}"
    );

    for span in &received {
        let all = everything_in(span);
        assert!(
            !all.contains("QQZZXXJJ"),
            "a caller's method or path in span {}: {all}",
            span.name
        );
        for secret in [
            username,
            password,
            client_secret.as_str(),
            tokens.access_token.as_str(),
            tokens.refresh_token.as_str(),
        ] {
            assert!(
                !all.contains(secret),
                "a secret in span {}: {all}",
                span.name
            );
        }
    }
}
