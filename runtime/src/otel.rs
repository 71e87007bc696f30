//! OpenTelemetry (feature `otel`): one span per delivery, continuing the W3C `traceparent` /
//! `tracestate` the request carries (Cog's webhook sender forwards them), with the prediction
//! id, model, status, event and outcome as attributes, exported over OTLP/HTTP by the
//! ecosystem's exporter (`opentelemetry-otlp`) through `tracing-opentelemetry`.
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt as _;
//! use tracing_subscriber::util::SubscriberInitExt as _;
//!
//! // On when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; the
//! // other standard variables (headers, timeout, OTEL_SERVICE_NAME) apply as usual.
//! let otel = replicate_webhook::otel::Otel::from_env()?;
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer())
//!     .with(otel.as_ref().map(|o| o.layer()))
//!     .init();
//! // ... run the server; at exit, send what is buffered:
//! if let Some(otel) = otel {
//!     otel.shutdown();
//! }
//! # Ok::<(), replicate_webhook::otel::OtelError>(())
//! ```

use actix_web::http::header::{HeaderMap, HeaderName};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt as _};

/// The standard variable naming the OTLP endpoint (`/v1/traces` is appended).
pub const ENV_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard variable naming the traces endpoint itself.
pub const ENV_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";

/// The exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry exporter: {0}")]
pub struct OtelError(String);

/// An OTLP trace pipeline. Keep it for the life of the process and [`Otel::shutdown`] it at exit.
#[derive(Debug)]
pub struct Otel {
    provider: SdkTracerProvider,
}

impl Otel {
    /// A pipeline configured by the standard `OTEL_*` variables, or `None` when no endpoint is
    /// set.
    pub fn from_env() -> Result<Option<Self>, OtelError> {
        let set = |var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
        if !set(ENV_ENDPOINT) && !set(ENV_TRACES_ENDPOINT) {
            return Ok(None);
        }
        Self::build(None).map(Some)
    }

    /// A pipeline exporting to `traces_url` (e.g. `http://127.0.0.1:4318/v1/traces`).
    pub fn with_endpoint(traces_url: &str) -> Result<Self, OtelError> {
        Self::build(Some(traces_url))
    }

    fn build(endpoint: Option<&str>) -> Result<Self, OtelError> {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary);
        if let Some(endpoint) = endpoint {
            exporter = exporter.with_endpoint(endpoint);
        }
        let exporter = exporter.build().map_err(|e| OtelError(e.to_string()))?;
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("replicate-webhook");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        Ok(Self { provider })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, Tracer>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("replicate-webhook"))
    }

    /// Exports what is buffered now.
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "OpenTelemetry spans could not be flushed");
        }
    }

    /// Exports what is buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "OpenTelemetry exporter did not shut down cleanly");
        }
    }
}

/// Makes `span` a child of the request's `traceparent` (with its `tracestate`), when it has one.
pub(crate) fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // Fails only when the span is disabled or already started: nothing to continue then.
    let _ = span.set_parent(parent);
}

/// The W3C trace context of the current span (`traceparent`, and `tracestate` when set), to
/// store with an inbox job so that its run continues the delivery's trace; empty when no
/// OpenTelemetry layer records the span.
pub(crate) fn current_trace_headers() -> Vec<(String, String)> {
    let mut headers = Injected(Vec::new());
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut headers);
    headers.0
}

struct Injected(Vec<(String, String)>);

impl Injector for Injected {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

/// Makes `span` a child of the trace context stored with a job, when it has one.
pub(crate) fn continue_stored_trace(span: &tracing::Span, headers: &[(String, String)]) {
    if !headers.iter().any(|(name, _)| name == "traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Stored(headers));
    let _ = span.set_parent(parent);
}

struct Stored<'a>(&'a [(String, String)]);

impl Extractor for Stored<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_str()).collect()
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}
