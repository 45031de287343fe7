//! What the layer costs: the listings service's `GetListing` throughput with no auth at all,
//! with the AuthLayer verifying offline (keys and signature cache warm, revocations checked
//! on every request), and calling IntrospectToken on every request instead. Tessera runs
//! in-process on a temp SQLite database; the three services and the load share the machine.
//! The modes take turns, ROUNDS times, so that whatever else runs on the machine weighs on
//! each alike; each mode's rate is its calls over its windows' total time.
//!
//! ```sh
//! cargo run --release -p tessera-client --example layer_bench -- [SECONDS] [IN_FLIGHT] [CONNECTIONS] [ROUNDS]
//! ```
#[path = "support/listings.rs"]
mod listings;

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use listings::{ListingRequest, ListingsClient, ListingsServer};
use tessera_client::{TokenSource, Verifier};
use tessera_testkit::{PASSWORD, TestApp};
use tokio::net::TcpListener;
use tonic::{
    Request, Status,
    body::Body,
    metadata::{Ascii, MetadataValue},
    transport::{Endpoint, Server, server::TcpIncoming},
};
use tower::layer::layer_fn;

const WARMUP: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let window = Duration::from_secs(args.next().map_or(Ok(10), |a| a.parse())?);
    let in_flight: usize = args.next().map_or(Ok(32), |a| a.parse())?;
    let connections: usize = args.next().map_or(Ok(4), |a| a.parse())?;
    let rounds: u32 = args.next().map_or(Ok(5), |a| a.parse())?;

    let tessera = TestApp::spawn().await;
    let market = tessera.marketplace_client().await;
    let user = tessera
        .user_login(&market, "bench@example.com", PASSWORD)
        .await
        .access_token;
    let (id, secret) = tessera.integration_client().await;
    let credentials = TokenSource::builder(tessera.channel(), id, secret).build();
    let verifier = Verifier::builder(tessera.channel())
        .credentials(credentials)
        .start()
        .await?;

    let no_auth = serve(|listener| async move {
        Server::builder()
            .add_service(ListingsServer)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
    })
    .await?;
    let layer = listings::auth_layer(verifier.clone());
    let offline = serve(|listener| async move {
        Server::builder()
            .layer(layer)
            .add_service(ListingsServer)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
    })
    .await?;
    let introspecting_verifier = verifier.clone();
    let introspecting = serve(|listener| async move {
        Server::builder()
            .layer(layer_fn(move |inner| Introspecting {
                inner,
                verifier: introspecting_verifier.clone(),
            }))
            .add_service(ListingsServer)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
    })
    .await?;

    let bearer: MetadataValue<Ascii> = format!("Bearer {user}").parse()?;
    println!(
        "GetListing, {in_flight} in flight over {connections} connections, {rounds} rounds of {}s warm-up + {}s window per mode, {} CPUs",
        WARMUP.as_secs(),
        window.as_secs(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let modes = [
        ("no auth", no_auth),
        ("AuthLayer, offline verification", offline),
        ("IntrospectToken per request", introspecting),
    ];
    let mut totals = [(0.0_f64, 0_u64); 3];
    for round in 1..=rounds {
        let mut line = format!("round {round}:");
        for ((mode, addr), total) in modes.iter().zip(totals.iter_mut()) {
            let (rate, errors) = load(*addr, &bearer, in_flight, connections, window).await?;
            total.0 += rate;
            total.1 += errors;
            line.push_str(&format!(" {mode} {rate:.0}/s;"));
        }
        println!("{line}");
    }
    let baseline = totals[0].0 / f64::from(rounds);
    println!("| mode | req/s | vs no auth | errors |");
    println!("|---|---|---|---|");
    for ((mode, _), (sum, errors)) in modes.iter().zip(totals) {
        let rate = sum / f64::from(rounds);
        println!(
            "| {mode} | {rate:.0} | {:.1}% | {errors} |",
            rate / baseline * 100.0
        );
    }
    Ok(())
}

/// Binds 127.0.0.1:0 and serves there with `serve`; returns the address.
async fn serve<F, Fut>(serve: F) -> std::io::Result<std::net::SocketAddr>
where
    F: FnOnce(TcpListener) -> Fut,
    Fut: Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener));
    Ok(addr)
}

/// `in_flight` callers over `connections` connections, calling GetListing without pause;
/// returns the calls per second completed in the window after the warm-up, and the errors.
async fn load(
    addr: std::net::SocketAddr,
    bearer: &MetadataValue<Ascii>,
    in_flight: usize,
    connections: usize,
    window: Duration,
) -> Result<(f64, u64), Box<dyn std::error::Error>> {
    let mut channels = Vec::new();
    for _ in 0..connections.max(1) {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true);
        channels.push(endpoint.connect().await?);
    }
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (done, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut callers = tokio::task::JoinSet::new();
    for slot in 0..in_flight {
        let mut client = ListingsClient::new(channels[slot % channels.len()].clone());
        let (counting, stop, done, errors) =
            (counting.clone(), stop.clone(), done.clone(), errors.clone());
        let bearer = bearer.clone();
        callers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut request = Request::new(ListingRequest {
                    listing_id: "l-1".into(),
                });
                request
                    .metadata_mut()
                    .insert("authorization", bearer.clone());
                let outcome = client.get_listing(request).await;
                if counting.load(Ordering::Relaxed) {
                    match outcome {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
        });
    }
    tokio::time::sleep(WARMUP).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    while callers.join_next().await.is_some() {}
    Ok((
        done.load(Ordering::Relaxed) as f64 / elapsed,
        errors.load(Ordering::Relaxed),
    ))
}

/// The baseline a service without tessera-client would write: IntrospectToken on every
/// request, then the same scope rule as the layer's (`user` for GetListing).
#[derive(Clone)]
struct Introspecting<S> {
    inner: S,
    verifier: Verifier,
}

impl<S> tower::Service<http::Request<Body>> for Introspecting<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let token = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_owned();
            match verifier.introspect(&token).await {
                Ok(claims) if claims.has_scope("user") => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Ok(_) => Ok(Status::permission_denied("needs user").into_http()),
                Err(_) => Ok(Status::unauthenticated("inactive").into_http()),
            }
        })
    }
}
