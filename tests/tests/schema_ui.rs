//! Compile-fail snapshots for `#[replicate_model]`: one mistake per file in `tests/ui-schema/`.
//!
//! Regenerate with `TRYBUILD=overwrite cargo test -p replicate-webhook-tests --test schema_ui`
//! and review the diff. (Schema-content errors such as `unsupported type "tuple"` are tested in
//! the macros crate: trybuild builds cases in another directory, so relative schema paths would
//! not find the corpus.)

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui-schema/*.rs");
}
