//! What the test process logs, captured for assertions on log lines.

use std::sync::{Mutex, OnceLock};

/// Everything logged at WARN and above from the first call on, through a global subscriber
/// (so a test binary using it owns the global subscriber).
pub fn captured() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || Capture(log))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
        log
    })
}

/// The captured log as text.
pub fn text() -> String {
    String::from_utf8_lossy(&captured().lock().expect("log lock")).into_owned()
}

struct Capture(&'static Mutex<Vec<u8>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
