//! Cases that must compile when the runtime is a dependency named `webhooks`: the attributes'
//! `crate = "webhooks"` argument reaches every generated path.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/*.rs");
}
