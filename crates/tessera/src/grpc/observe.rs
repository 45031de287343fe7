//! The gRPC port's view of every call, whatever its service (AuthService, health, reflection):
//! the grpc-ecosystem series (`grpc_server_started_total`, `grpc_server_handled_total`,
//! `grpc_server_handling_seconds`), and, when spans are exported, the call's span: in the
//! caller's trace (W3C `traceparent`) when the caller is a trusted proxy, else a trace of its
//! own linked to the caller's (see [`telemetry::place_in_callers_trace`]). The span is entered
//! while the call's handler runs and while its response body (a stream's messages) is polled,
//! so that work done then is under it. A call is handled when its `grpc-status` is known: in the
//! response's headers (an error at once) or its trailers (the end of its messages: for a
//! stream, its end); a call whose caller left first is `Canceled`.
//!
//! Labels are names from a fixed table: a path that names no method of ours counts as
//! `unknown`, so that no caller can make a label of its own (or put a secret in one).
use std::{
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use http::{HeaderMap, Request, Response};
use http_body::Frame;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower_service::Service;
use tracing::field::Empty;

use crate::{edge::address::trusted_peer, telemetry};

/// One method: its service, its name, its kind (as the grpc-ecosystem `grpc_type` label says),
/// and its full name (a span's name).
struct Method {
    service: &'static str,
    method: &'static str,
    kind: &'static str,
    full: &'static str,
}

macro_rules! methods {
    ($($service:literal / $method:literal: $kind:literal),* $(,)?) => {
        &[$(Method {
            service: $service,
            method: $method,
            kind: $kind,
            full: concat!($service, "/", $method),
        }),*]
    };
}

/// Every method the gRPC port serves.
const METHODS: &[Method] = methods![
    "tessera.auth.v1.AuthService" / "IssueToken": "unary",
    "tessera.auth.v1.AuthService" / "IntrospectToken": "unary",
    "tessera.auth.v1.AuthService" / "RevokeToken": "unary",
    "tessera.auth.v1.AuthService" / "GetKeySet": "unary",
    "tessera.auth.v1.AuthService" / "WatchRevocations": "server_stream",
    "grpc.health.v1.Health" / "Check": "unary",
    "grpc.health.v1.Health" / "Watch": "server_stream",
    "grpc.health.v1.Health" / "List": "unary",
    "grpc.reflection.v1.ServerReflection" / "ServerReflectionInfo": "bidi_stream",
    "grpc.reflection.v1alpha.ServerReflection" / "ServerReflectionInfo": "bidi_stream",
];

const UNKNOWN: Method = Method {
    service: "unknown",
    method: "unknown",
    kind: "unknown",
    full: "unknown",
};

/// The method a path names, with its place in [`METHODS`] (past its end: [`UNKNOWN`]).
fn method_of(path: &str) -> (usize, &'static Method) {
    let path = path.strip_prefix('/').unwrap_or(path);
    METHODS
        .iter()
        .enumerate()
        .find(|(_, m)| {
            path.strip_prefix(m.service)
                .and_then(|rest| rest.strip_prefix('/'))
                == Some(m.method)
        })
        .unwrap_or((METHODS.len(), &UNKNOWN))
}

/// gRPC status codes, 0 (OK) to 16 (Unauthenticated).
const CODES: usize = 17;

/// One method's series, registered on first use and kept: registering hashes the series'
/// name and labels in the recorder's registry (about 2,000 instructions each, three a call:
/// 9% of a health check), an increment of a kept handle is one atomic add. Kept per layer,
/// that is per server, after the recorder it records to is installed.
#[derive(Debug, Default)]
struct MethodSeries {
    started: OnceLock<metrics::Counter>,
    handling: OnceLock<metrics::Histogram>,
    handled: [OnceLock<metrics::Counter>; CODES],
}

/// The series of every method, [`METHODS`] then [`UNKNOWN`].
fn series_table() -> Arc<[MethodSeries]> {
    (0..=METHODS.len())
        .map(|_| MethodSeries::default())
        .collect()
}

/// The layer, innermost on the gRPC server (under gRPC-Web's translation: browsers' calls are
/// counted as the calls they are).
#[derive(Clone, Debug)]
pub struct ObserveLayer {
    trusted: Arc<[ipnet::IpNet]>,
    spans: bool,
    series: Arc<[MethodSeries]>,
}

impl ObserveLayer {
    /// The layer; `trusted` are the proxies whose trace context is adopted
    /// (`TESSERA_TRUSTED_PROXIES`). Spans are made when this process exports them.
    pub fn new(trusted: &[ipnet::IpNet]) -> Self {
        Self {
            trusted: Arc::from(trusted),
            spans: telemetry::exporting(),
            series: series_table(),
        }
    }
}

impl<S> tower_layer::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            trusted: self.trusted.clone(),
            spans: self.spans,
            series: self.series.clone(),
        }
    }
}

/// The gRPC service `S` with every call counted (and, when spans are exported, traced): its
/// response body records the call as handled when its status passes.
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
    trusted: Arc<[ipnet::IpNet]>,
    /// Whether each call gets a span (spans are exported).
    spans: bool,
    /// Every method's series.
    series: Arc<[MethodSeries]>,
}

impl<S> Observe<S> {
    /// Whether the caller's trace context is adopted: its TCP peer is a trusted proxy. (With
    /// mTLS, a client certificate the client CA verified could be a ground for trust too:
    /// `TlsConnectInfo::peer_certs`, here, is where to read it.)
    fn caller_trusted<B>(&self, request: &Request<B>) -> bool {
        let extensions = request.extensions();
        let peer: Option<IpAddr> = extensions
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .or_else(|| {
                extensions
                    .get::<TlsConnectInfo<TcpConnectInfo>>()
                    .and_then(|info| info.get_ref().remote_addr())
            })
            .map(|addr| addr.ip());
        trusted_peer(peer, &self.trusted)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Observe<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<tonic::codegen::StdError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (place, method) = method_of(request.uri().path());
        self.series[place]
            .started
            .get_or_init(|| {
                metrics::counter!(
                    "grpc_server_started_total",
                    "grpc_service" => method.service,
                    "grpc_method" => method.method,
                    "grpc_type" => method.kind,
                )
            })
            .increment(1);
        let span = self.spans.then(|| {
            let span = tracing::info_span!(
                target: telemetry::OTEL_TARGET,
                parent: None,
                "grpc",
                otel.name = method.full,
                otel.kind = "server",
                otel.status_code = Empty,
                rpc.system = "grpc",
                rpc.service = method.service,
                rpc.method = method.method,
                rpc.grpc.status_code = Empty,
            );
            let trusted = self.caller_trusted(&request);
            telemetry::place_in_callers_trace(&span, request.headers(), trusted);
            span
        });
        let mut call = Call {
            method,
            series: self.series.clone(),
            place,
            started: Instant::now(),
            span,
            done: false,
        };
        let future = match &call.span {
            Some(span) => span.in_scope(|| self.inner.call(request)),
            None => self.inner.call(request),
        };
        Box::pin(async move {
            let response = match &call.span {
                Some(span) => tracing::Instrument::instrument(future, span.clone()).await?,
                None => future.await?,
            };
            if let Some(code) = status_in(response.headers()) {
                call.handled(code);
            }
            // The messages of a stream are made while its body is polled: under the call's
            // span too, until the call is handled.
            let span = if call.done { None } else { call.span.clone() };
            Ok(response.map(|inner| Body::new(ObservedBody { inner, call, span })))
        })
    }
}

/// A call on its way: recorded as handled once, with its code, when its status is known or
/// when it is dropped without one (`Canceled`: the caller or the connection left).
struct Call {
    method: &'static Method,
    /// Every method's series, and this method's place among them.
    series: Arc<[MethodSeries]>,
    place: usize,
    started: Instant,
    /// The call's span, when spans are exported: it ends when the call does.
    span: Option<tracing::Span>,
    done: bool,
}

impl Call {
    fn handled(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let m = self.method;
        let series = &self.series[self.place];
        series.handled[(code as usize).min(CODES - 1)]
            .get_or_init(|| {
                metrics::counter!(
                    "grpc_server_handled_total",
                    "grpc_service" => m.service,
                    "grpc_method" => m.method,
                    "grpc_type" => m.kind,
                    "grpc_code" => code_name(code),
                )
            })
            .increment(1);
        series
            .handling
            .get_or_init(|| {
                metrics::histogram!(
                    "grpc_server_handling_seconds",
                    "grpc_service" => m.service,
                    "grpc_method" => m.method,
                    "grpc_type" => m.kind,
                )
            })
            .record(self.started.elapsed().as_secs_f64());
        if let Some(span) = self.span.take() {
            span.record("rpc.grpc.status_code", code as i64);
            // The semantic conventions' server errors: the caller's mistakes are not ours.
            if matches!(
                code,
                tonic::Code::Unknown
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unimplemented
                    | tonic::Code::Internal
                    | tonic::Code::Unavailable
                    | tonic::Code::DataLoss
            ) {
                span.record("otel.status_code", "ERROR");
            }
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.handled(tonic::Code::Cancelled);
    }
}

/// The `grpc-status` of a response's headers or trailers, if it has one.
fn status_in(headers: &HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?;
    let code = value.to_str().ok()?.parse::<i32>().ok()?;
    Some(tonic::Code::from_i32(code))
}

pin_project_lite::pin_project! {
    /// A response body that records its call as handled when its trailers pass, polled
    /// inside the call's span.
    struct ObservedBody<B> {
        #[pin]
        inner: B,
        call: Call,
        // The call's span (a handle of its own: the call's ends it when handled), entered
        // while the body is polled; dropped once the call is handled.
        span: Option<tracing::Span>,
    }
}

impl<B> http_body::Body for ObservedBody<B>
where
    B: http_body::Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let entered = this.span.as_ref().map(tracing::Span::enter);
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        drop(entered);
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(status_in) {
                    this.call.handled(code);
                }
            }
            // A body that fails or ends without a status: the call did not end well.
            Some(Err(_)) | None => this.call.handled(tonic::Code::Unknown),
        }
        if this.call.done {
            // The span ends now, not when the body is dropped.
            *this.span = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A code's name as the grpc-ecosystem series spell it (`OK`, `Unauthenticated`, ...).
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tracing_subscriber::{layer::SubscriberExt as _, registry::LookupSpan};

    /// Records, for every event, the span it happened in.
    struct SpansOfEvents(Arc<Mutex<Vec<Option<String>>>>);

    impl<S> tracing_subscriber::Layer<S> for SpansOfEvents
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        fn on_event(
            &self,
            _event: &tracing::Event<'_>,
            ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let span = ctx.lookup_current().map(|span| span.name().to_owned());
            self.0.lock().expect("lock").push(span);
        }
    }

    /// A stream's body: it logs as it makes each message (as a stream's work does), then
    /// ends with an OK status.
    struct Stream {
        left: usize,
        ended: bool,
    }

    impl http_body::Body for Stream {
        type Data = Bytes;
        type Error = tonic::Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
            if self.ended {
                return Poll::Ready(None);
            }
            if self.left == 0 {
                self.ended = true;
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            self.left -= 1;
            tracing::info!("a message made");
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"message")))))
        }
    }

    #[derive(Clone)]
    struct Streams;

    impl Service<Request<()>> for Streams {
        type Response = Response<Stream>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Response<Stream>, Self::Error>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _request: Request<()>) -> Self::Future {
            std::future::ready(Ok(Response::new(Stream {
                left: 2,
                ended: false,
            })))
        }
    }

    #[test]
    fn a_streams_messages_are_made_inside_its_calls_span() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(SpansOfEvents(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let mut service = tower_layer::Layer::layer(
                &ObserveLayer {
                    trusted: Arc::from([]),
                    spans: true,
                    series: series_table(),
                },
                Streams,
            );
            let request = Request::builder()
                .uri("/tessera.auth.v1.AuthService/WatchRevocations")
                .body(())
                .expect("request");
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let mut call = service.call(request);
            let Poll::Ready(Ok(response)) = call.as_mut().poll(&mut cx) else {
                panic!("the call answers at once");
            };
            let mut body = std::pin::pin!(response.into_body());
            while let Poll::Ready(Some(frame)) = http_body::Body::poll_frame(body.as_mut(), &mut cx)
            {
                frame.expect("a frame");
            }
        });
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen, vec![Some("grpc".to_owned()); 2], "{seen:?}");
    }

    #[test]
    fn paths_name_our_methods_and_nothing_else() {
        let (place, m) = method_of("/tessera.auth.v1.AuthService/WatchRevocations");
        assert_eq!((m.method, m.kind), ("WatchRevocations", "server_stream"));
        assert_eq!(METHODS[place].full, m.full);
        assert_eq!(method_of("/grpc.health.v1.Health/Check").1.kind, "unary");
        for path in [
            "/tessera.auth.v1.AuthService/IssueTokenX",
            "/tessera.auth.v1.AuthServiceX/IssueToken",
            "/my-secret-token/IssueToken",
            "",
            "/",
        ] {
            let (place, m) = method_of(path);
            assert_eq!((place, m.service), (METHODS.len(), "unknown"), "{path}");
        }
    }
}
