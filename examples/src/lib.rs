//! What the example binaries share, and the benchmark's receiver too: it logs as the
//! quickstart does, so the figures measure what users run first.

use replicate_webhook::otel::Otel;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Logs to stderr at `info` (`RUST_LOG` overrides), colour only for a terminal: a log file or
/// collector gets plain text. With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans (one per delivery)
/// are exported over OTLP too, at `info` whatever `RUST_LOG` says: keep what this returns and
/// shut it down at exit.
pub fn init_logging() -> Option<Otel> {
    let otel = Otel::from_env().unwrap_or_else(|e| {
        eprintln!("OpenTelemetry stays off: {e}");
        None
    });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,actix_server=warn".into());
    match &otel {
        None => tracing_subscriber::registry()
            .with(filter)
            .with(log())
            .init(),
        // `RUST_LOG` quiets the log, not the traces: with `RUST_LOG=warn` every delivery's
        // span (at `info`) is still exported.
        Some(otel) => tracing_subscriber::registry()
            .with(log().with_filter(filter))
            .with(
                otel.layer()
                    .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
            )
            .init(),
    }
    otel
}

/// The log on stderr, colour only for a terminal.
fn log<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
}
