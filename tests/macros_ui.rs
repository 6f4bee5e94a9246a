//! Compile errors of `#[memkit_async::main]` and `#[memkit_async::test]`.
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test --test macros_ui`.

#[test]
#[cfg_attr(
    miri,
    ignore = "trybuild runs rustc in a child process, which Miri cannot start"
)]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
