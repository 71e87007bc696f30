// Loaded by `not-an-inline-module-file.rs` through `#[path]`.
