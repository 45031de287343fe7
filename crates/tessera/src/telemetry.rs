//! tracing: human-readable or JSON lines on stderr; level from RUST_LOG (default info). With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set (SPEC §9), `serve` also exports its spans over OTLP/gRPC,
//! and callers' W3C `traceparent` makes a request's span a child of theirs; without it, no
//! OpenTelemetry code runs.
use std::{sync::OnceLock, time::Duration};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_subscriber::{
    EnvFilter, Layer as _, filter::Targets, fmt, layer::SubscriberExt as _,
    util::SubscriberInitExt as _,
};

use crate::config::ConfigError;

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl LogFormat {
    /// Parses TESSERA_LOG_FORMAT.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match text {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(ConfigError {
                name: "TESSERA_LOG_FORMAT",
                value: other.to_owned(),
                expected: "expected pretty or json".into(),
            }),
        }
    }
}

/// The target of the spans only OpenTelemetry sees (one per request, named and shaped as its
/// semantic conventions say): log lines keep their own spans.
pub const OTEL_TARGET: &str = "tessera::otel";

/// Whether spans are exported: set once, when the exporter is installed.
static EXPORTING: OnceLock<()> = OnceLock::new();

/// Whether this process exports spans over OTLP (the edges then open a span per request).
pub fn exporting() -> bool {
    EXPORTING.get().is_some()
}

/// What [`init`] set up; [`Telemetry::shutdown`] sends the spans still buffered.
#[must_use = "shut down to flush the spans still buffered"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered (within a few seconds), then stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The batch processor's thread exports through the tokio-driven gRPC channel; waiting
        // for it must not hold a runtime thread.
        let flushed = tokio::task::spawn_blocking(move || {
            provider.shutdown_with_timeout(Duration::from_secs(5))
        })
        .await;
        if let Ok(Err(err)) = flushed {
            eprintln!("tessera: cannot flush the last spans: {err}");
        }
    }
}

/// Installs the global subscriber, with `default_level` unless RUST_LOG says otherwise; with
/// `otlp` and `OTEL_EXPORTER_OTLP_ENDPOINT` set, the OTLP exporter too. Runs inside the tokio
/// runtime (the exporter's channel is driven by it). An unusable OTEL_* setting is an error.
pub fn init(format: LogFormat, default_level: &str, otlp: bool) -> Result<Telemetry, ConfigError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let filter = match format!("{OTEL_TARGET}=off").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let logs = match format {
        LogFormat::Pretty => fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter);
    let provider = if otlp { exporter()? } else { None };
    let spans = provider.as_ref().map(|provider| {
        // Tessera's own spans and events only: the exporter's gRPC calls (tonic, h2) must not
        // make spans of their own. The inner spans (database, hashing) are at debug level.
        let targets = Targets::new()
            .with_target("tessera", tracing::Level::DEBUG)
            .with_target(OTEL_TARGET, tracing::Level::INFO);
        // Code locations stay; thread names, busy/idle times and targets are noise (and the
        // inactivity tracking costs a clock read per poll).
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("tessera"))
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_filter(targets)
    });
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init();
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let _ = EXPORTING.set(());
    }
    Ok(Telemetry { provider })
}

/// The tracer provider exporting to `OTEL_EXPORTER_OTLP_ENDPOINT` (or its `_TRACES_` form),
/// or `None` when neither is set, `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
fn exporter() -> Result<Option<SdkTracerProvider>, ConfigError> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .map(|value| ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value))
        .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT").map(|v| ("OTEL_EXPORTER_OTLP_ENDPOINT", v)));
    let Some((endpoint_name, endpoint)) = endpoint else {
        return Ok(None);
    };
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none")
    {
        return Ok(None);
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(protocol) = set(name).filter(|p| p.trim() != "grpc") {
            return Err(ConfigError {
                name,
                value: protocol,
                expected: "expected grpc (Tessera exports OTLP over gRPC only)".into(),
            });
        }
    }
    let bad_endpoint = |detail: String| ConfigError {
        name: endpoint_name,
        value: endpoint.clone(),
        expected: format!("expected a URL such as http://collector:4317 ({detail})"),
    };
    let parsed = url::Url::parse(endpoint.trim()).map_err(|e| bad_endpoint(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
        return Err(bad_endpoint("http or https, with a host".into()));
    }
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.trim())
        .build()
        .map_err(|e| bad_endpoint(e.to_string()))?;
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by the resource's detectors.
    let mut resource = Resource::builder();
    if set("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("tessera");
    }
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}

/// The remote parent a request names in its W3C `traceparent` (and `tracestate`) headers, for
/// a span of ours to continue; an absent or invalid `traceparent` gives an empty context (the
/// span starts a trace of its own).
pub fn remote_parent(headers: &http::HeaderMap) -> opentelemetry::Context {
    struct Headers<'a>(&'a http::HeaderMap);
    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Headers(headers))
    })
}
