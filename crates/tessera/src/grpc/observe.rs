//! The gRPC port's view of every call, whatever its service (AuthService, health, reflection):
//! the grpc-ecosystem series (`grpc_server_started_total`, `grpc_server_handled_total`,
//! `grpc_server_handling_seconds`), and, when spans are exported, the call's span, a child of
//! the caller's W3C `traceparent`. A call is handled when its `grpc-status` is known: in the
//! response's headers (an error at once) or its trailers (the end of its messages: for a
//! stream, its end); a call whose caller left first is `Canceled`.
//!
//! Labels are names from a fixed table: a path that names no method of ours counts as
//! `unknown`, so that no caller can make a label of its own (or put a secret in one).
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http::{HeaderMap, Request, Response};
use http_body::Frame;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tower_service::Service;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::telemetry;

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

fn method_of(path: &str) -> &'static Method {
    let path = path.strip_prefix('/').unwrap_or(path);
    METHODS
        .iter()
        .find(|m| {
            path.strip_prefix(m.service)
                .and_then(|rest| rest.strip_prefix('/'))
                == Some(m.method)
        })
        .unwrap_or(&UNKNOWN)
}

/// The layer, innermost on the gRPC server (under gRPC-Web's translation: browsers' calls are
/// counted as the calls they are).
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveLayer;

impl<S> tower_layer::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
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
        let method = method_of(request.uri().path());
        let labels = [
            ("grpc_service", method.service),
            ("grpc_method", method.method),
            ("grpc_type", method.kind),
        ];
        metrics::counter!("grpc_server_started_total", &labels).increment(1);
        let span = telemetry::exporting().then(|| {
            let span = tracing::info_span!(
                target: telemetry::OTEL_TARGET,
                "grpc",
                otel.name = method.full,
                otel.kind = "server",
                otel.status_code = Empty,
                rpc.system = "grpc",
                rpc.service = method.service,
                rpc.method = method.method,
                rpc.grpc.status_code = Empty,
            );
            // Fails only when the span is not exported (it always is, here).
            let _ = span.set_parent(telemetry::remote_parent(request.headers()));
            span
        });
        let mut call = Call {
            method,
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
            Ok(response.map(|inner| Body::new(ObservedBody { inner, call })))
        })
    }
}

/// A call on its way: recorded as handled once, with its code, when its status is known or
/// when it is dropped without one (`Canceled`: the caller or the connection left).
struct Call {
    method: &'static Method,
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
        metrics::counter!(
            "grpc_server_handled_total",
            "grpc_service" => m.service,
            "grpc_method" => m.method,
            "grpc_type" => m.kind,
            "grpc_code" => code_name(code),
        )
        .increment(1);
        metrics::histogram!(
            "grpc_server_handling_seconds",
            "grpc_service" => m.service,
            "grpc_method" => m.method,
            "grpc_type" => m.kind,
        )
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
    /// A response body that records its call as handled when its trailers pass.
    struct ObservedBody<B> {
        #[pin]
        inner: B,
        call: Call,
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
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(status_in) {
                    this.call.handled(code);
                }
            }
            // A body that fails or ends without a status: the call did not end well.
            Some(Err(_)) | None => this.call.handled(tonic::Code::Unknown),
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

    #[test]
    fn paths_name_our_methods_and_nothing_else() {
        let m = method_of("/tessera.auth.v1.AuthService/WatchRevocations");
        assert_eq!((m.method, m.kind), ("WatchRevocations", "server_stream"));
        assert_eq!(method_of("/grpc.health.v1.Health/Check").kind, "unary");
        for path in [
            "/tessera.auth.v1.AuthService/IssueTokenX",
            "/tessera.auth.v1.AuthServiceX/IssueToken",
            "/my-secret-token/IssueToken",
            "",
            "/",
        ] {
            assert_eq!(method_of(path).service, "unknown", "{path}");
        }
    }
}
