//! The HTTP listener's accept loop: each connection served by hyper (HTTP/1.1, or HTTP/2 when
//! it starts with the HTTP/2 preface) with the limits `axum::serve` leaves unset: how long a
//! connection may take to show its protocol and a request its headers, how many streams an
//! HTTP/2 connection may hold, keepalive pings that find dead peers, a maximum age, and a bound
//! on connections open at once (shared by every caller: there is no bound per address). On stop,
//! listening ends and every connection finishes its requests in flight, then closes. With TLS,
//! each connection's handshake and first bytes are under the same time limit (the metrics
//! listener is served here too).
use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::watch,
};

use crate::edge::tls::{self, Listener, Tls};
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
/// answers pings would otherwise live for ever); clients reconnect. With `tls`, connections
/// speak TLS only, with that listener's rule for client certificates, and the handshake and
/// the first bytes share the header timeout.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    tls: Option<(Arc<Tls>, Listener)>,
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
        let stop_rx = stopped.clone();
        let acceptor = tls.as_ref().map(|(tls, listener)| tls.acceptor(*listener));
        tokio::spawn(async move {
            let _place = place;
            let Some(acceptor) = acceptor else {
                if protocol_shown(&tcp, first_bytes_timeout).await {
                    serve_connection(&builder, tcp, service, stop_rx, max_connection_age).await;
                }
                return;
            };
            let shown = tokio::time::timeout(first_bytes_timeout, async {
                let tls = tls::handshake(acceptor, tcp).await?;
                first_bytes(tls).await
            });
            match shown.await {
                Ok(Ok(Some(tls))) => {
                    serve_connection(&builder, tls, service, stop_rx, max_connection_age).await;
                }
                Ok(Ok(None)) => {}
                Ok(Err(err)) => {
                    tracing::debug!(peer = %peer, error = %err, "HTTP listener: TLS handshake failed");
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "HTTP listener: no request within the time allowed");
                }
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(stopped);
    stopping.closed().await;
    Ok(())
}

/// Serves one connection until it ends, the server stops or it reaches its maximum age.
async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: TowerToHyperService<ConnectInfoService>,
    mut stop_rx: watch::Receiver<bool>,
    max_connection_age: Duration,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stop_rx.changed() => {}
        () = tokio::time::sleep(max_connection_age) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Reads a TLS connection's first bytes, as [`protocol_shown`] peeks at a plain one (TLS
/// allows no peeking): until they tell HTTP/1 from HTTP/2. `None`: the client closed first.
/// The bytes read are handed to hyper again, in front of the rest.
async fn first_bytes<I: AsyncRead + Unpin>(mut io: I) -> std::io::Result<Option<Prefixed<I>>> {
    let mut seen = Vec::with_capacity(H2_PREFACE.len());
    while seen.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&seen) {
        let mut buf = [0u8; 24];
        let n = io.read(&mut buf[..H2_PREFACE.len() - seen.len()]).await?;
        if n == 0 {
            return Ok(None);
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(Some(Prefixed {
        prefix: seen,
        read: 0,
        io,
    }))
}

/// A connection whose first bytes were already read: they are read again first.
struct Prefixed<I> {
    prefix: Vec<u8>,
    read: usize,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.read < this.prefix.len() {
            let rest = &this.prefix[this.read..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.read += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
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
