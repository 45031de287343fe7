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

use crate::config::{ConfigError, redact_url};

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
    let provider = if otlp {
        exporter(&|name| std::env::var(name).ok())?
    } else {
        None
    };
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
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init();
    if let Err(err) = installed {
        // Only a second call in one process gets here (a global subscriber is set once): the
        // first one keeps logging, and this one's exporter would never see a span. Said, not
        // fatal: the logs still flow.
        eprintln!("tessera: logging was already set up; keeping it ({err})");
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
        return Ok(Telemetry { provider: None });
    }
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        // Already set only by an earlier call, which set it the same way.
        let _ = EXPORTING.set(());
    }
    Ok(Telemetry { provider })
}

/// Reads an environment variable.
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The tracer provider exporting to `OTEL_EXPORTER_OTLP_ENDPOINT` (or its `_TRACES_` form),
/// or `None` when neither is set, `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
/// `env` reads a variable (the process's, or a test's). (The SDK reads the resource's and the
/// batch processor's variables itself.)
fn exporter(env: Env<'_>) -> Result<Option<SdkTracerProvider>, ConfigError> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
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
    // The exporter would ignore a compression it cannot do (zstd) without a word.
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    ] {
        if let Some(compression) =
            set(name).filter(|c| !matches!(c.trim().to_ascii_lowercase().as_str(), "gzip" | "none"))
        {
            return Err(ConfigError {
                name,
                value: compression,
                expected: "expected gzip or none".into(),
            });
        }
    }
    // The endpoint may hold a token (`https://user:token@collector`): never shown whole.
    let shown = redact_url(endpoint.trim());
    let bad_endpoint = |detail: String| ConfigError {
        name: endpoint_name,
        value: shown.clone(),
        expected: format!("expected a URL such as http://collector:4317 ({detail})"),
    };
    let parsed = url::Url::parse(endpoint.trim()).map_err(|e| bad_endpoint(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
        return Err(bad_endpoint("http or https, with a host".into()));
    }
    // The exporter's own errors quote the endpoint as given.
    let redacted = |detail: String| {
        let detail = detail.replace(endpoint.trim(), &shown);
        match parsed.password() {
            Some(password) if !password.is_empty() => detail.replace(password, "***"),
            _ => detail,
        }
    };
    use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.trim());
    if parsed.scheme() == "https" {
        let tls = exporter_tls(env)?;
        // Checked here, so that a bad certificate is named as such (the exporter would blame
        // the endpoint).
        tonic::transport::Endpoint::from_shared(endpoint.trim().to_owned())
            .and_then(|e| e.tls_config(tls.config.clone()))
            .map_err(|e| match &tls.named_by {
                Some(name) => ConfigError {
                    name,
                    value: tls.files.clone(),
                    expected: format!("expected PEM certificates and key ({e})"),
                },
                None => bad_endpoint(redacted(e.to_string())),
            })?;
        exporter = exporter.with_tls_config(tls.config);
    }
    let exporter = exporter
        .build()
        .map_err(|e| bad_endpoint(redacted(e.to_string())))?;
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

/// The exporter's TLS for an `https://` endpoint: the web PKI's roots (webpki-roots, compiled
/// in: the image needs no CA bundle), the CA of `OTEL_EXPORTER_OTLP_CERTIFICATE` (a private
/// collector's), and a client certificate (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and
/// `_CLIENT_KEY`) for a collector that asks for one; each also in its `_TRACES_` form.
struct ExporterTls {
    config: tonic::transport::ClientTlsConfig,
    /// The setting to blame when the files do not make a TLS configuration.
    named_by: Option<&'static str>,
    /// The files read (for that error).
    files: String,
}

fn exporter_tls(env: Env<'_>) -> Result<ExporterTls, ConfigError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    // A file named by the first of `names` that is set (the `_TRACES_` form first).
    let file = |names: [&'static str; 2]| {
        let (name, path) = names.into_iter().find_map(|name| {
            let path = env(name)?.trim().to_owned();
            (!path.is_empty()).then_some((name, path))
        })?;
        Some(
            std::fs::read(&path)
                .map(|pem| (name, path.clone(), pem))
                .map_err(|e| ConfigError {
                    name,
                    value: path.clone(),
                    expected: format!("expected a readable PEM file ({e})"),
                }),
        )
    };
    let mut config = ClientTlsConfig::new().with_webpki_roots();
    let mut named_by = None;
    let mut files = Vec::new();
    if let Some(ca) = file([
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
    ]) {
        let (name, path, pem) = ca?;
        config = config.ca_certificate(Certificate::from_pem(pem));
        named_by = Some(name);
        files.push(path);
    }
    match (
        file([
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        ]),
        file([
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        ]),
    ) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let (name, cert_path, cert) = cert?;
            let (_, key_path, key) = key?;
            config = config.identity(Identity::from_pem(cert, key));
            named_by = Some(name);
            files.extend([cert_path, key_path]);
        }
        (Some(given), None) | (None, Some(given)) => {
            let (name, path, _) = given?;
            return Err(ConfigError {
                name,
                value: path,
                expected: "expected both OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and \
                           OTEL_EXPORTER_OTLP_CLIENT_KEY, or neither"
                    .into(),
            });
        }
    }
    Ok(ExporterTls {
        config,
        named_by,
        files: files.join(", "),
    })
}

/// Places a request's `span` in the caller's trace, as its W3C `traceparent` (and
/// `tracestate`) headers name it, if the caller is `trusted` (a proxy of
/// `TESSERA_TRUSTED_PROXIES`, see [`crate::edge::address::trusted_peer`]). Anyone else's
/// context would decide for us: its sampled flag whether the call is recorded (`-00` hides a
/// credential-stuffing run from traces; `-01` forces export past a ratio sampler), its trace
/// id which trace our spans land in (someone else's). So an untrusted caller's call starts a
/// trace of its own, sampled by our sampler alone, with a link to the caller's span (its
/// trace and span ids only: its flags and `tracestate` are dropped), so that the caller can
/// still find it. An absent or invalid `traceparent` leaves the span a root without a link.
pub fn place_in_callers_trace(span: &tracing::Span, headers: &http::HeaderMap, trusted: bool) {
    use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    struct Headers<'a>(&'a http::HeaderMap);
    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }
    if !headers.contains_key("traceparent") {
        return;
    }
    let context = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Headers(headers))
    });
    let remote = context.span().span_context().clone();
    if !remote.is_valid() {
        return;
    }
    if trusted {
        // Fails only when the span is not exported (it always is where this is called).
        let _ = span.set_parent(context);
    } else {
        span.add_link(SpanContext::new(
            remote.trace_id(),
            remote.span_id(),
            TraceFlags::default(),
            true,
            TraceState::default(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exporter_with(vars: &[(&str, &str)]) -> Result<Option<SdkTracerProvider>, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        exporter(&move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[tokio::test]
    async fn an_https_collector_with_gzip_is_exported_to() {
        let provider = exporter_with(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://collector.example:4317",
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ])
        .expect("https and gzip are supported")
        .expect("an exporter");
        let _ = provider.shutdown_with_timeout(Duration::from_millis(100));
    }

    #[tokio::test]
    async fn bad_otlp_settings_name_themselves_and_never_show_a_token() {
        let err = exporter_with(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "ftp://user:s3cret-token@collector:4317",
        )])
        .expect_err("not http or https");
        assert_eq!(err.name, "OTEL_EXPORTER_OTLP_ENDPOINT");
        assert!(!err.to_string().contains("s3cret-token"), "{err}");
        assert!(err.to_string().contains("user:***@collector"), "{err}");

        for (vars, name) in [
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                    ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd"),
                ][..],
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
                    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/no/such/ca.pem"),
                ][..],
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
                    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/no/such/key.pem"),
                ][..],
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            ),
        ] {
            let err = exporter_with(vars).expect_err(name);
            assert_eq!(err.name, name, "{err}");
        }
    }
}
