//! TLS and mTLS on every listener (SPEC §9): the generated client over TLS, plaintext refused,
//! a certificate rotated on disk under an open stream, client certificates on each listener,
//! introspection by client certificate, `tessera health` over TLS, and one clear line for each
//! bad file at start-up.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use rcgen::ExtendedKeyUsagePurpose;
use tessera::{
    config::{IntrospectionAuth, TlsFiles},
    grpc::pb::{self, auth_service_client::AuthServiceClient, watch_revocations_response::Event},
    server::Application,
};
use tessera_testkit::tls::{
    Leaf, SERVER_NAME, TestCa, TestPki, client_tls, tls_channel, write_pem,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::{
    self, ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};
use tokio_stream::StreamExt;
use tonic::{Request, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::common::{TestApp, TestDb, client_credentials, revoke_request, test_config};

/// How long a test waits for what a loaded machine may take a while to do (the files are
/// read again every two seconds).
const PATIENCE: Duration = Duration::from_secs(30);

async fn health(channel: Channel) -> Result<(), tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|_| ())
}

/// Whether a gRPC call over TLS with `tls` gets through (the handshake or the first call
/// fails when the server refuses the client).
async fn grpc_gets_through(addr: SocketAddr, tls: tonic::transport::ClientTlsConfig) -> bool {
    match tls_channel(addr, tls).await {
        Ok(channel) => health(channel).await.is_ok(),
        Err(_) => false,
    }
}

/// A connected TLS channel; retried while the server says UNAVAILABLE, as a client would.
async fn connected(addr: SocketAddr, tls: tonic::transport::ClientTlsConfig) -> Channel {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tls_channel(addr, tls.clone()).await {
            Ok(channel) => return channel,
            Err(err) if tokio::time::Instant::now() < deadline => {
                eprintln!("retrying: {err:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("no TLS connection: {err:?}"),
        }
    }
}

async fn issue_on(channel: &Channel, request: pb::IssueTokenRequest) -> pb::IssueTokenResponse {
    AuthServiceClient::new(channel.clone())
        .issue_token(request)
        .await
        .expect("IssueToken over TLS")
        .into_inner()
}

fn with_bearer<T>(message: T, bearer: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(bearer) = bearer {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {bearer}").parse().expect("header"),
        );
    }
    request
}

async fn watch_on(
    channel: &Channel,
    bearer: Option<&str>,
) -> Result<tonic::Streaming<pb::WatchRevocationsResponse>, tonic::Status> {
    AuthServiceClient::new(channel.clone())
        .watch_revocations(with_bearer(
            pb::WatchRevocationsRequest { after_sequence: 0 },
            bearer,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// The next event that is not a heartbeat.
async fn next_event(stream: &mut tonic::Streaming<pb::WatchRevocationsResponse>) -> Event {
    loop {
        let event = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("an event")
            .expect("the stream goes on")
            .expect("no error")
            .event
            .expect("an event");
        if !matches!(event, Event::Heartbeat(_)) {
            return event;
        }
    }
}

async fn introspect_on(
    channel: &Channel,
    bearer: Option<&str>,
    token: &str,
) -> Result<pb::IntrospectTokenResponse, tonic::Status> {
    AuthServiceClient::new(channel.clone())
        .introspect_token(with_bearer(
            pb::IntrospectTokenRequest {
                token: token.to_owned(),
                token_type_hint: 0,
            },
            bearer,
        ))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn the_generated_client_works_over_tls_and_a_plaintext_client_is_refused() {
    let pki = TestPki::new();
    let app = TestApp::spawn_with(|c| c.tls = Some(pki.files())).await;
    let channel = connected(app.addr, client_tls(&pki.ca, None)).await;
    let client = app.marketplace_client().await;
    let token = issue_on(&channel, client_credentials(&client, "")).await;
    assert!(token.access_token.starts_with("v4.public."));

    let plaintext = Channel::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .connect()
        .await;
    if let Ok(plaintext) = plaintext {
        let answer = health(plaintext).await;
        assert!(answer.is_err(), "plaintext h2c got an answer: {answer:?}");
    }
    // A client that trusts another CA does not accept the server's certificate.
    let stranger = TestCa::new("another CA");
    assert!(!grpc_gets_through(app.addr, client_tls(&stranger, None)).await);

    // gRPC-Web over HTTP/1.1 (browsers) on the same port, inside TLS.
    let tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let mut tls = tokio_rustls::TlsConnector::from(rustls_client(&pki.ca, None, &[b"http/1.1"]))
        .connect(ServerName::try_from(SERVER_NAME).expect("name"), tcp)
        .await
        .expect("handshake");
    let empty_frame = [0u8; 5];
    tls.write_all(
        format!(
            "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\
             Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n\
             Content-Length: 5\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    tls.write_all(&empty_frame).await.expect("write");
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("grpc-status:0"), "{answer}");
}

#[tokio::test]
async fn a_certificate_rotated_on_disk_reaches_new_connections_while_an_open_stream_lives_on() {
    let pki = TestPki::new();
    let app = TestApp::spawn_with(|c| c.tls = Some(pki.files())).await;
    let old = connected(app.addr, client_tls(&pki.ca, None)).await;
    let (integ_id, integ_secret) = app.integration_client().await;
    let bearer = issue_on(&old, client_credentials(&integ_id, &integ_secret))
        .await
        .access_token;
    let mut stream = watch_on(&old, Some(&bearer)).await.expect("stream opens");
    assert!(matches!(next_event(&mut stream).await, Event::Snapshot(_)));

    let next_ca = TestCa::new("the next CA");
    pki.install(&next_ca.server());
    // New connections get the new certificate: a client trusting only the new CA gets through.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !grpc_gets_through(app.addr, client_tls(&next_ca, None)).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was not served within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !grpc_gets_through(app.addr, client_tls(&pki.ca, None)).await,
        "a new connection still got the old certificate"
    );

    // The stream opened before the rotation lives on: it sees a revocation made after it.
    let new = connected(app.addr, client_tls(&next_ca, None)).await;
    let client = app.marketplace_client().await;
    let anonymous = issue_on(&new, client_credentials(&client, "")).await;
    AuthServiceClient::new(new.clone())
        .revoke_token(revoke_request(&client, "", &anonymous.access_token))
        .await
        .expect("revoked");
    assert!(matches!(
        next_event(&mut stream).await,
        Event::Revocation(_)
    ));
    // And so does the old connection itself.
    health(old).await.expect("the old connection still answers");
}

#[tokio::test]
async fn with_a_client_ca_the_grpc_port_refuses_callers_without_a_certificate_or_with_another_cas()
{
    let pki = TestPki::new();
    let clients = TestCa::new("clients");
    let strangers = TestCa::new("strangers");
    let app = TestApp::spawn_with(|c| c.tls = Some(pki.files_with_client_ca(&clients))).await;
    let member = clients.client("billing");
    assert!(grpc_gets_through(app.addr, client_tls(&pki.ca, Some(&member))).await);
    assert!(!grpc_gets_through(app.addr, client_tls(&pki.ca, None)).await);
    let stranger = strangers.client("billing");
    assert!(!grpc_gets_through(app.addr, client_tls(&pki.ca, Some(&stranger))).await);
}

#[tokio::test]
async fn a_certificate_from_the_client_ca_not_made_for_client_authentication_is_refused_at_the_handshake()
 {
    let pki = TestPki::new();
    let clients = TestCa::new("clients");
    let app = TestApp::spawn_with(|c| {
        c.tls = Some(pki.files_with_client_ca(&clients));
        c.introspection_auth = IntrospectionAuth::Mtls;
    })
    .await;
    let member = clients.client("billing");
    assert!(grpc_gets_through(app.addr, client_tls(&pki.ca, Some(&member))).await);
    let without_usage = clients.leaf_for("billing", Vec::new());
    assert!(!grpc_gets_through(app.addr, client_tls(&pki.ca, Some(&without_usage))).await);
    let for_servers = clients.leaf_for("billing", vec![ExtendedKeyUsagePurpose::ServerAuth]);
    assert!(!grpc_gets_through(app.addr, client_tls(&pki.ca, Some(&for_servers))).await);
    // Nor does the metrics listener take them.
    let metrics = app.metrics_addr.expect("metrics listener");
    let h1: &[&[u8]] = &[b"http/1.1"];
    let scraped = https_get(
        metrics,
        rustls_client(&pki.ca, Some(&without_usage), h1),
        "/metrics",
    )
    .await;
    assert!(!is_ok(&scraped), "{scraped:?}");
}

#[tokio::test]
async fn mtls_introspection_answers_callers_with_a_certificate_and_no_bearer() {
    let pki = TestPki::new();
    let clients = TestCa::new("clients");
    let app = TestApp::spawn_with(|c| {
        c.tls = Some(pki.files_with_client_ca(&clients));
        c.introspection_auth = IntrospectionAuth::Mtls;
    })
    .await;
    let channel = connected(
        app.addr,
        client_tls(&pki.ca, Some(&clients.client("billing"))),
    )
    .await;
    let client = app.marketplace_client().await;
    let token = issue_on(&channel, client_credentials(&client, "")).await;
    let answer = introspect_on(&channel, None, &token.access_token)
        .await
        .expect("introspection by client certificate");
    assert!(answer.active);
    assert_eq!(answer.client_id, client);
    // A bearer is not needed, and a bad one does not stand in the way of the certificate.
    assert!(
        introspect_on(&channel, Some("not a token"), &token.access_token)
            .await
            .expect("the certificate is enough")
            .active
    );
    let mut stream = watch_on(&channel, None).await.expect("stream opens");
    assert!(matches!(next_event(&mut stream).await, Event::Snapshot(_)));
    // Without a client certificate, the port does not answer at all.
    assert!(!grpc_gets_through(app.addr, client_tls(&pki.ca, None)).await);
}

#[tokio::test]
async fn with_bearer_introspection_a_client_certificate_alone_is_not_enough() {
    let pki = TestPki::new();
    let clients = TestCa::new("clients");
    let app = TestApp::spawn_with(|c| c.tls = Some(pki.files_with_client_ca(&clients))).await;
    let channel = connected(
        app.addr,
        client_tls(&pki.ca, Some(&clients.client("billing"))),
    )
    .await;
    let refused = introspect_on(&channel, None, "v4.public.whatever")
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn a_silent_client_does_not_hold_up_the_handshakes_of_others() {
    let pki = TestPki::new();
    let app = TestApp::spawn_with(|c| c.tls = Some(pki.files())).await;
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(
            tokio::net::TcpStream::connect(app.addr)
                .await
                .expect("connect"),
        );
    }
    let mut half = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    // The first bytes of a ClientHello, and then nothing.
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("write");
    let channel = connected(app.addr, client_tls(&pki.ca, None)).await;
    health(channel)
        .await
        .expect("served beside the silent ones");
    drop((silent, half));
}

/// rustls's client side: trusting `ca`, presenting `identity` if given, offering `alpn`.
fn rustls_client(ca: &TestCa, identity: Option<&Leaf>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).expect("CA PEM"))
        .expect("root");
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
    let mut config = match identity {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("key"),
            )
            .expect("identity"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A client that has certificates to offer and notes whether a server asked for one.
#[derive(Debug, Default)]
struct AskedForCertificate(std::sync::atomic::AtomicBool);

impl rustls::client::ResolvesClientCert for AskedForCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        None
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// An HTTP/1.1 GET over TLS: the protocol ALPN chose and the whole answer, or the error
/// that ended the connection.
async fn https_get(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    path: &str,
) -> std::io::Result<(Option<Vec<u8>>, String)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from(SERVER_NAME).expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await?;
    Ok((alpn, String::from_utf8_lossy(&answer).into_owned()))
}

fn is_ok(answer: &std::io::Result<(Option<Vec<u8>>, String)>) -> bool {
    answer
        .as_ref()
        .is_ok_and(|(_, text)| text.starts_with("HTTP/1.1 200"))
}

#[tokio::test]
async fn the_http_listener_speaks_tls_with_alpn_and_never_asks_for_a_client_certificate() {
    let pki = TestPki::new();
    let clients = TestCa::new("clients");
    let app = TestApp::spawn_with(|c| c.tls = Some(pki.files_with_client_ca(&clients))).await;
    let http = app.http_addr.expect("HTTP listener");
    let h1: &[&[u8]] = &[b"http/1.1"];

    let answer = https_get(http, rustls_client(&pki.ca, None, h1), "/v1/auth/keys").await;
    assert!(is_ok(&answer), "{answer:?}");
    assert_eq!(answer.expect("answer").0.as_deref(), Some(&b"http/1.1"[..]));
    // Even with a client CA, no certificate is asked for (a browser would show a picker).
    let asked = Arc::new(AskedForCertificate::default());
    let mut client = (*rustls_client(&pki.ca, None, h1)).clone();
    client.client_auth_cert_resolver = asked.clone();
    let answer = https_get(http, Arc::new(client), "/healthz").await;
    assert!(is_ok(&answer), "{answer:?}");
    assert!(!asked.0.load(std::sync::atomic::Ordering::SeqCst));

    // HTTP/2 is offered too (a browser's fetch negotiates it).
    let both: &[&[u8]] = &[b"h2", b"http/1.1"];
    let tcp = tokio::net::TcpStream::connect(http).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(rustls_client(&pki.ca, None, both))
        .connect(ServerName::try_from(SERVER_NAME).expect("name"), tcp)
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    // Plaintext is refused.
    let mut plain = tokio::net::TcpStream::connect(http).await.expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(!answer.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn the_metrics_listener_speaks_tls_and_requires_a_client_certificate_from_the_client_ca() {
    let pki = TestPki::new();
    let clients = TestCa::new("clients");
    let app = TestApp::spawn_with(|c| c.tls = Some(pki.files_with_client_ca(&clients))).await;
    let metrics = app.metrics_addr.expect("metrics listener");
    let h1: &[&[u8]] = &[b"http/1.1"];
    let prometheus = clients.client("prometheus");
    let scraped = https_get(
        metrics,
        rustls_client(&pki.ca, Some(&prometheus), h1),
        "/metrics",
    )
    .await;
    assert!(is_ok(&scraped), "{scraped:?}");
    let anonymous = https_get(metrics, rustls_client(&pki.ca, None, h1), "/metrics").await;
    assert!(!is_ok(&anonymous), "{anonymous:?}");
}

async fn tessera(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env_remove("TESSERA_LISTEN")
        .output()
        .await
        .expect("run tessera")
}

#[tokio::test]
async fn tessera_health_checks_a_server_over_tls_and_with_a_client_certificate() {
    let pki = TestPki::new();
    let clients = TestCa::new("clients");
    let app = TestApp::spawn_with(|c| c.tls = Some(pki.files_with_client_ca(&clients))).await;
    let dir = pki.dir.path();
    let ca = write_pem(dir, "ca.pem", &pki.ca.pem);
    let probe = clients.client("health");
    let cert = write_pem(dir, "probe.pem", &probe.cert);
    let key = write_pem(dir, "probe.key", &probe.key);
    let addr = app.addr.to_string();
    let path = |p: &std::path::Path| p.display().to_string();
    let with_certificate = tessera(&[
        "health",
        "--addr",
        &addr,
        "--tls-ca",
        &path(&ca),
        "--tls-cert",
        &path(&cert),
        "--tls-key",
        &path(&key),
    ])
    .await;
    crate::common::assert_success(&with_certificate);
    assert_eq!(
        String::from_utf8_lossy(&with_certificate.stdout),
        "SERVING\n"
    );
    // The certificate names 127.0.0.1 too, and localhost can be asked for by name.
    let by_name = tessera(&[
        "health",
        "--addr",
        &addr,
        "--tls-ca",
        &path(&ca),
        "--tls-server-name",
        SERVER_NAME,
        "--tls-cert",
        &path(&cert),
        "--tls-key",
        &path(&key),
    ])
    .await;
    crate::common::assert_success(&by_name);
    let without = tessera(&["health", "--addr", &addr, "--tls-ca", &path(&ca)]).await;
    assert!(!without.status.success());
    let plaintext = tessera(&["health", "--addr", &addr]).await;
    assert!(!plaintext.status.success());
}

/// The error `Application::build` gives for these TLS settings, as `tessera serve` prints it.
async fn startup_error(tweak: impl FnOnce(&mut tessera::config::Config)) -> String {
    let db = TestDb::new().await;
    let mut config = test_config(&db);
    tweak(&mut config);
    match Application::build(config).await {
        Ok(_) => panic!("the application started"),
        Err(err) => format!("{err:#}"),
    }
}

#[tokio::test]
async fn startup_names_the_setting_of_a_missing_non_pem_or_mismatched_file() {
    let pki = TestPki::new();
    let dir = pki.dir.path();
    let files = pki.files();
    let missing = startup_error(|c| {
        c.tls = Some(TlsFiles::new(dir.join("nowhere.pem"), &files.key));
    })
    .await;
    assert!(
        missing.contains("TESSERA_TLS_CERT") && missing.contains("readable"),
        "{missing}"
    );

    let garbage = write_pem(dir, "garbage.pem", "not PEM at all\n");
    let bad_key = startup_error(|c| c.tls = Some(TlsFiles::new(&files.cert, &garbage))).await;
    assert!(
        bad_key.contains("TESSERA_TLS_KEY") && bad_key.contains("PEM"),
        "{bad_key}"
    );
    // A key where the certificate should be.
    let key_as_cert = startup_error(|c| c.tls = Some(TlsFiles::new(&files.key, &files.key))).await;
    assert!(key_as_cert.contains("TESSERA_TLS_CERT"), "{key_as_cert}");

    let other = pki.ca.server();
    let other_key = write_pem(dir, "other.key", &other.key);
    let mismatched = startup_error(|c| c.tls = Some(TlsFiles::new(&files.cert, &other_key))).await;
    assert!(
        mismatched.contains("TESSERA_TLS_KEY") && mismatched.contains("do not match"),
        "{mismatched}"
    );

    let bad_ca = startup_error(|c| c.tls = Some(pki.files().with_client_ca(&garbage))).await;
    assert!(bad_ca.contains("TESSERA_TLS_CLIENT_CA"), "{bad_ca}");

    let mtls_without_ca = startup_error(|c| {
        c.tls = Some(pki.files());
        c.introspection_auth = IntrospectionAuth::Mtls;
    })
    .await;
    assert!(
        mtls_without_ca.contains("TESSERA_INTROSPECTION_AUTH"),
        "{mtls_without_ca}"
    );

    for message in [
        missing,
        bad_key,
        key_as_cert,
        mismatched,
        bad_ca,
        mtls_without_ca,
    ] {
        assert!(!message.contains('\n'), "one line: {message}");
        assert!(
            !message.contains("PRIVATE KEY"),
            "no key material: {message}"
        );
    }
}

#[tokio::test]
async fn tessera_serve_stops_with_one_line_naming_the_setting_before_serving() {
    let pki = TestPki::new();
    let dir = pki.dir.path();
    let other_key = write_pem(dir, "other.key", &pki.ca.server().key);
    let db = TestDb::new().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("serve")
        .env("TESSERA_DATABASE_URL", &db.url)
        .env("TESSERA_LISTEN", "127.0.0.1:0")
        .env("TESSERA_HTTP_LISTEN", "127.0.0.1:0")
        .env("TESSERA_METRICS_LISTEN", "127.0.0.1:0")
        .env("TESSERA_TLS_CERT", pki.files().cert)
        .env("TESSERA_TLS_KEY", &other_key)
        .output()
        .await
        .expect("run tessera serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("tessera: invalid TESSERA_TLS_KEY") && last.contains("do not match"),
        "{stderr}"
    );
    assert!(!stderr.contains("serving"), "{stderr}");

    let half = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("serve")
        .env("TESSERA_DATABASE_URL", &db.url)
        .env("TESSERA_TLS_CERT", pki.files().cert)
        .env_remove("TESSERA_TLS_KEY")
        .output()
        .await
        .expect("run tessera serve");
    assert!(!half.status.success());
    assert!(
        String::from_utf8_lossy(&half.stderr).contains("invalid TESSERA_TLS_KEY"),
        "{}",
        String::from_utf8_lossy(&half.stderr)
    );
}
