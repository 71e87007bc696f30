//! Nothing here: `tests/ui.rs` compiles cases against the runtime renamed to `webhooks`.
