//! Values stored by memkit's containers cannot borrow data that dies before the container
//! drops them: each program here is a use-after-free that must not compile.
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test --test borrow_ui`.

#[test]
#[cfg_attr(
    miri,
    ignore = "trybuild runs rustc in a child process, which Miri cannot start"
)]
fn stored_values_cannot_outlive_what_they_borrow() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui_borrow/*.rs");
}
