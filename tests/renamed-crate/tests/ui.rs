//! Cases that must compile when the runtime is a dependency named `webhooks`: the attributes'
//! `crate = "webhooks"` argument reaches every generated path.

use std::path::Path;

#[test]
fn ui() {
    stage_for_trybuild("fixtures/schemas/replicate__hello-world.json");
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/*.rs");
}

/// Copies a repository file into the crate trybuild generates, at the same relative path:
/// trybuild builds the cases in `<target dir>/tests/trybuild/<this crate>/`, their
/// `CARGO_MANIFEST_DIR`, so a copy there resolves wherever the target dir is (the same helper
/// as `tests/tests/ui.rs`; this crate depends on nothing but the runtime, on purpose).
fn stage_for_trybuild(file: &str) {
    // `CARGO_TARGET_TMPDIR` is `<target dir>/tmp`, the target dir trybuild also takes from cargo.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target dir");
    let to = target
        .join("tests/trybuild")
        .join(env!("CARGO_PKG_NAME"))
        .join(file);
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(file);
    std::fs::create_dir_all(to.parent().expect("a file path has a parent")).unwrap();
    std::fs::copy(&from, &to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}
