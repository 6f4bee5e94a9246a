//! A `LocalSet` and the handles of its tasks stay on their thread: each program here sends or
//! shares one with another thread and must not compile.
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test --test local_set_ui`.

#[test]
#[cfg_attr(
    miri,
    ignore = "trybuild runs rustc in a child process, which Miri cannot start"
)]
fn local_sets_and_their_handles_cannot_leave_their_thread() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui_local/*.rs");
}
