//! What the tests share: the listings example service on port 0 behind the layer, a transport
//! to Tessera that counts calls by method (and can refuse the revocation feed), a TCP proxy
//! that can be cut and pointed elsewhere, and logins of every kind.
use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tessera_client::{TokenSource, Verifier, VerifierBuilder};
use tessera_proto::pb::{self, issue_token_request::Grant};
use tessera_testkit::{PASSWORD, TestApp, revoke_request};
use tokio::{
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};
use tonic::{
    Request, Status,
    body::Body,
    transport::{Channel, Server, server::TcpIncoming},
};

pub use crate::listings::{ListingRequest, ListingsClient, ListingsServer, auth_layer};

/// A verifier's feed settings that keep tests fast: a heartbeat every 200 ms is expected, and
/// five missed ones (a second) make it stale.
pub fn quick(builder: VerifierBuilder) -> VerifierBuilder {
    builder
        .heartbeat_interval(Duration::from_millis(200))
        .missed_heartbeats(5)
        .key_refetch_interval(Duration::from_millis(300))
}

/// Calls to Tessera by method name, seen by a [`Counted`] transport.
#[derive(Clone, Default)]
pub struct Calls {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    feed_refused: Arc<AtomicBool>,
}

impl Calls {
    pub fn count(&self, method: &str) -> usize {
        self.counts
            .lock()
            .expect("lock")
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// From now on WatchRevocations calls are answered UNAVAILABLE without reaching Tessera.
    pub fn refuse_feed(&self) {
        self.feed_refused.store(true, Ordering::SeqCst);
    }

    /// A transport over `channel` that counts into these calls.
    pub fn transport(&self, channel: Channel) -> Counted {
        Counted {
            inner: channel,
            calls: self.clone(),
        }
    }
}

/// A channel that counts its calls.
#[derive(Clone)]
pub struct Counted {
    inner: Channel,
    calls: Calls,
}

impl tower::Service<http::Request<Body>> for Counted {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Body>, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let refused =
            method == "WatchRevocations" && self.calls.feed_refused.load(Ordering::SeqCst);
        *self
            .calls
            .counts
            .lock()
            .expect("lock")
            .entry(method)
            .or_default() += 1;
        if refused {
            return Box::pin(async { Ok(Status::unavailable("feed refused").into_http()) });
        }
        Box::pin(self.inner.call(request))
    }
}

/// The listings service behind the layer, on 127.0.0.1:0; a channel to it.
pub async fn serve_listings(verifier: Verifier) -> Channel {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        Server::builder()
            .layer(auth_layer(verifier))
            .add_service(ListingsServer)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy()
}

/// A request for listing `l-1` carrying `token` (or no token).
pub fn listing(token: Option<&str>) -> Request<ListingRequest> {
    let mut request = Request::new(ListingRequest {
        listing_id: "l-1".into(),
    });
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
    }
    request
}

/// A user's login through a new marketplace client: the client and the tokens.
pub async fn user_login(app: &TestApp, username: &str) -> (String, pb::IssueTokenResponse) {
    let client = app.marketplace_client().await;
    let login = app.user_login(&client, username, PASSWORD).await;
    (client, login)
}

/// A `trusted:user` token: a login through a marketplace client with a secret, exchanged.
pub async fn trusted_login(app: &TestApp, username: &str) -> (pb::IssueTokenResponse, String) {
    let (client, secret) = app.marketplace_client_with_secret().await;
    let login = app.user_login(&client, username, PASSWORD).await;
    let trusted = app
        .issue(pb::IssueTokenRequest {
            client_id: client,
            client_secret: secret,
            scope: String::new(),
            grant: Some(Grant::TokenExchange(pb::TokenExchangeGrant {
                subject_token: login.access_token.clone(),
                subject_token_type: String::new(),
            })),
        })
        .await
        .expect("token exchange")
        .access_token;
    (login, trusted)
}

/// Ends a session, as a logout does (RevokeToken of one of its tokens).
pub async fn logout(app: &TestApp, client: &str, secret: &str, token: &str) {
    app.revoke(revoke_request(client, secret, token))
        .await
        .expect("logout");
}

/// Polls `check` every 20 ms until it holds, for at most `within`.
pub async fn within<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Forwards TCP connections to a target that can change, until cut.
pub struct Proxy {
    pub addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let target = Arc::new(Mutex::new(target));
        let cut = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = {
            let (target, cut, connections) = (target.clone(), cut.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is refused
                    }
                    let to = *target.lock().expect("lock");
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(to).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().expect("lock").push(task.abort_handle());
                }
            })
            .abort_handle()
        };
        Self {
            addr,
            target,
            cut,
            connections,
            accept,
        }
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().expect("lock").drain(..) {
            connection.abort();
        }
    }

    /// Forwards again, to `target`.
    pub fn restore_to(&self, target: SocketAddr) {
        *self.target.lock().expect("lock") = target;
        self.cut.store(false, Ordering::SeqCst);
    }

    pub fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect_lazy()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A verifier of `app`'s tokens through `channel`, its calls counted in `calls`, with the
/// quick feed settings and `tweak`; its feed authenticates as a new integration client.
pub async fn start_verifier(
    app: &TestApp,
    channel: Channel,
    calls: &Calls,
    tweak: impl FnOnce(VerifierBuilder) -> VerifierBuilder,
) -> Verifier {
    let (id, secret) = app.integration_client().await;
    let credentials = TokenSource::builder(calls.transport(channel.clone()), id, secret).build();
    let builder = quick(Verifier::builder(calls.transport(channel)).credentials(credentials));
    tweak(builder).start().await.expect("the verifier starts")
}
