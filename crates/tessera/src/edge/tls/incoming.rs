//! The gRPC listener's connections over TLS, as a stream tonic serves: the TCP connections
//! tonic's own `TcpIncoming` accepts (with its nodelay and keepalive), each handshaken on a
//! task of its own, so that a slow or silent client holds up nobody else. tonic knows these
//! streams: each request carries its `TlsConnectInfo`, so `Request::remote_addr` and
//! `Request::peer_certs` (the client's verified certificates) work as with tonic's own TLS.
use std::sync::Arc;

use tokio::{
    net::TcpStream,
    sync::{Semaphore, mpsc},
};
use tokio_rustls::server::TlsStream;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::transport::server::TcpIncoming;

use super::{Listener, Tls, handshake};

/// Handshakes under way at once; past it, new connections are closed unserved until some end
/// (each lasts at most [`super::HANDSHAKE_TIMEOUT`]).
const MAX_HANDSHAKES: usize = 1_024;
/// Handshaken connections waiting for tonic to take them.
const READY_QUEUE: usize = 64;

/// The connections `tcp` accepts, after their TLS handshake on `tls`'s gRPC configuration.
/// Accepting stops, and the listening socket closes, when tonic drops the stream.
pub fn incoming(
    tcp: TcpIncoming,
    tls: Arc<Tls>,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (ready, taken) = mpsc::channel(READY_QUEUE);
    tokio::spawn(accept(tcp, tls, ready));
    ReceiverStream::new(taken)
}

async fn accept(
    mut tcp: TcpIncoming,
    tls: Arc<Tls>,
    ready: mpsc::Sender<Result<TlsStream<TcpStream>, std::io::Error>>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let stream = tokio::select! {
            () = ready.closed() => return,
            next = tcp.next() => match next {
                Some(Ok(stream)) => stream,
                Some(Err(err)) => {
                    // Out of file descriptors, a connection reset before accept: wait, go on.
                    tracing::warn!(error = %err, "gRPC listener: cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
                None => return,
            },
        };
        let Ok(place) = handshakes.clone().try_acquire_owned() else {
            tracing::debug!("gRPC listener: too many TLS handshakes under way, connection closed");
            continue;
        };
        let acceptor = tls.acceptor(Listener::Grpc);
        let ready = ready.clone();
        tokio::spawn(async move {
            let peer = stream.peer_addr().ok();
            match handshake(acceptor, stream).await {
                Ok(stream) => {
                    drop(place);
                    let _ = ready.send(Ok(stream)).await;
                }
                Err(err) => {
                    tracing::debug!(peer = ?peer, error = %err, "gRPC listener: TLS handshake failed");
                }
            }
        });
    }
}
