//! The repository's payload fixtures, for unit tests.

/// The bytes of `fixtures/payloads/{name}`.
pub(crate) fn payload(name: &str) -> Vec<u8> {
    let path = format!("{}/../fixtures/payloads/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
