//! What the example binaries share, and the benchmark's receiver too: it logs as the
//! quickstart does, so the figures measure what users run first.

use replicate_webhook::otel::Otel;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Logs to stderr at `info` (`RUST_LOG` overrides), colour only for a terminal: a log file or
/// collector gets plain text. With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans (one per delivery)
/// are exported over OTLP too: keep what this returns and shut it down at exit.
pub fn init_logging() -> Option<Otel> {
    let otel = Otel::from_env().unwrap_or_else(|e| {
        eprintln!("OpenTelemetry stays off: {e}");
        None
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,actix_server=warn".into()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(otel.as_ref().map(Otel::layer))
        .init();
    otel
}
