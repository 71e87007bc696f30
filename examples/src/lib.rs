//! What the example binaries share, and the benchmark's receiver too: it logs as the
//! quickstart does, so the figures measure what users run first.

/// Logs to stderr at `info` (`RUST_LOG` overrides), colour only for a terminal: a log file or
/// collector gets plain text.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,actix_server=warn".into()),
        )
        .init();
}
