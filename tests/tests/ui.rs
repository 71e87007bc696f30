//! Compile-fail snapshots for `#[replicate_webhook]`: one mistake per file in `tests/ui/`.
//!
//! The `.stderr` files match the machine's one toolchain; regenerate them with
//! `TRYBUILD=overwrite cargo test -p replicate-webhook-tests --test ui` when rustc changes,
//! and review the diff.

use std::path::Path;

#[test]
fn ui() {
    stage_for_trybuild("fixtures/schemas/replicate__hello-world.json");
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

/// Copies a repository file into the crate trybuild generates, at the same relative path.
///
/// trybuild builds the cases as a crate of its own in `<target dir>/tests/trybuild/<this crate>/`,
/// which is then their `CARGO_MANIFEST_DIR`, the directory `schema = "..."` is relative to. A
/// path climbing from there back into the repository holds only while the target dir is the
/// repository's own `target/`; a shared `CARGO_TARGET_DIR` elsewhere breaks it. A copy inside
/// that crate resolves wherever the target dir is (`scripts/test` runs these tests from one
/// outside the repository).
fn stage_for_trybuild(file: &str) {
    // `CARGO_TARGET_TMPDIR` is `<target dir>/tmp`, the target dir trybuild also takes from cargo.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target dir");
    let to = target
        .join("tests/trybuild")
        .join(env!("CARGO_PKG_NAME"))
        .join(file);
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    std::fs::create_dir_all(to.parent().expect("a file path has a parent")).unwrap();
    std::fs::copy(&from, &to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}
