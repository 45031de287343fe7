//! The HTTP listener's accept loop: each connection served by hyper (HTTP/1.1, or HTTP/2 when
//! it starts with the HTTP/2 preface) with the limits `axum::serve` leaves unset: how long a
//! connection may take to show its protocol and a request its headers, how many streams an
//! HTTP/2 connection may hold, keepalive pings that find dead peers, a maximum age, and a bound
//! on connections open at once (shared by every caller: there is no bound per address). On stop,
//! listening ends and every connection finishes its requests in flight, then closes.
use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::watch};

use crate::server::limits::Limits;

/// The HTTP/2 connection preface: a connection whose first bytes are a prefix of it has not
/// yet said which protocol it speaks.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves `router` on `listener` under `limits` until `stop` completes, then waits for the
/// connections to finish what they have in flight (the caller bounds the wait).
///
/// The header timeout also bounds how long a new connection may take to show which protocol
/// it speaks (its first bytes): hyper waits for them without a timer of its own. At the maximum
/// age a connection finishes its requests in flight and closes (an idle HTTP/2 connection that
/// answers pings would otherwise live for ever); clients reconnect.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let first_bytes_timeout = limits.http_header_timeout;
    let max_connection_age = limits.http_max_connection_age;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.http_header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http_max_streams_per_connection)
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout);
    // Connections hold a receiver: when every one is dropped, every connection has ended.
    let (stopping, stopped) = watch::channel(false);
    let places = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.http_max_connections));
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, a connection reset before accept: wait, go on.
                    tracing::warn!(error = %err, "HTTP listener: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            // Full: this connection is closed unserved, the ones open keep going.
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(ConnectInfoService {
            router: router.clone(),
            peer,
        });
        let builder = builder.clone();
        let mut stop_rx = stopped.clone();
        tokio::spawn(async move {
            let _place = place;
            if !protocol_shown(&tcp, first_bytes_timeout).await {
                return;
            }
            let connection = builder.serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stop_rx.changed() => {}
                () = tokio::time::sleep(max_connection_age) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(stopped);
    stopping.closed().await;
    Ok(())
}

/// Whether the connection's first bytes arrive within `timeout` and tell HTTP/1
/// (anything but a prefix of the HTTP/2 preface) from HTTP/2 (the whole preface). A client
/// that sends nothing, or stops part-way through the preface, is closed.
async fn protocol_shown(tcp: &tokio::net::TcpStream, timeout: Duration) -> bool {
    let shown = async {
        let mut buf = [0u8; 24];
        loop {
            let Ok(n) = tcp.peek(&mut buf).await else {
                return false;
            };
            if n == 0 {
                return false;
            }
            if n >= H2_PREFACE.len() || buf[..n] != H2_PREFACE[..n] {
                return true;
            }
            // A prefix of the preface: wait for more bytes than the socket holds now.
            if tcp.readable().await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(timeout, shown).await.unwrap_or(false)
}

/// The router for one connection: it adds the peer's address to each request
/// ([`ConnectInfo`], which logins are throttled by), then hands the request on.
#[derive(Clone)]
struct ConnectInfoService {
    router: Router,
    peer: SocketAddr,
}

impl tower_service::Service<http::Request<Incoming>> for ConnectInfoService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = <Router as tower_service::Service<http::Request<axum::body::Body>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower_service::Service::<http::Request<axum::body::Body>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: http::Request<Incoming>) -> Self::Future {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        self.router.call(request)
    }
}
