//! Compile-fail snapshots for `#[replicate_webhook]`: one mistake per file in `tests/ui/`.
//!
//! The `.stderr` files match the machine's one toolchain; regenerate them with
//! `TRYBUILD=overwrite cargo test -p replicate-webhook-tests --test ui` when rustc changes,
//! and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
