//! `MkTaskLocal`: a value per task that follows the task across workers, is not seen by other
//! tasks, nests, is passed to child tasks only on request, and is still set while a cancelled
//! task's future is dropped.

mod common;

use common::*;
use memkit_async::task::yield_now;
use memkit_async::time::timeout;
use memkit_async::{spawn, MkTaskLocal, MkTaskLocalError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

static ID: MkTaskLocal<u64> = MkTaskLocal::new();
static NAME: MkTaskLocal<String> = MkTaskLocal::new();

#[test]
fn outside_a_scope_the_value_is_not_set() {
    assert_eq!(ID.try_get(), Err(MkTaskLocalError::NotSet));
    let msg = MkTaskLocalError::NotSet.to_string();
    assert!(msg.contains("scope") && msg.contains("inherit"));
}

#[test]
fn each_of_many_tasks_sees_only_its_own_value_across_yields() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let seen: Vec<u64> = rt.block_on(async {
            let tasks: Vec<_> = (0..100u64)
                .map(|i| {
                    spawn(ID.scope(i, async move {
                        let mut sum = 0;
                        for _ in 0..10 {
                            yield_now().await;
                            sum += ID.get();
                        }
                        sum
                    }))
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        assert_eq!(seen, (0..100).map(|i| i * 10).collect::<Vec<_>>());
    });
}

#[test]
fn the_value_follows_the_task_to_another_worker() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let moved = rt
            .block_on(rt.spawn(ID.scope(77, async { migrate(|| assert_eq!(ID.get(), 77)).await })))
            .unwrap();
        assert!(moved, "the task never ran on another worker");
    });
}

#[test]
fn children_inherit_only_on_request() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (inherited, plain, after_change) = rt.block_on(NAME.scope("parent".into(), async {
            let inherited = spawn(NAME.inherit(async { NAME.get() })).await.unwrap();
            let plain = spawn(async { NAME.try_get() }).await.unwrap();
            // The child got a clone: its changes stay its own.
            let child = spawn(NAME.inherit(async {
                NAME.with_mut(|n| n.push_str("-child"));
                NAME.get()
            }));
            assert_eq!(child.await.unwrap(), "parent-child");
            (inherited, plain, NAME.get())
        }));
        assert_eq!(inherited, "parent");
        assert_eq!(plain, Err(MkTaskLocalError::NotSet));
        assert_eq!(after_change, "parent");
        // Inheriting with no value set runs the child without one.
        let none = rt.block_on(rt.spawn(NAME.inherit(async { NAME.try_get() })));
        assert_eq!(none.unwrap(), Err(MkTaskLocalError::NotSet));
    });
}

#[test]
fn scopes_nest_and_shadow() {
    with_timeout(DEADLINE, || {
        runtime(2).block_on(ID.scope(1, async {
            let inner = ID.scope(2, async { (ID.get(), NAME.try_get()) }).await;
            assert_eq!(inner, (2, Err(MkTaskLocalError::NotSet)));
            assert_eq!(ID.get(), 1);
            let both = NAME
                .scope("n".into(), async { (ID.get(), NAME.get()) })
                .await;
            assert_eq!(both, (1, "n".to_string()));
        }));
    });
}

#[test]
fn changes_last_for_the_rest_of_the_scope() {
    with_timeout(DEADLINE, || {
        runtime(2).block_on(ID.scope(5, async {
            ID.with_mut(|v| *v += 1);
            yield_now().await;
            assert_eq!(ID.get(), 6);
        }));
    });
}

#[test]
fn a_nested_borrow_of_the_same_key_is_an_error_not_a_panic() {
    ID.sync_scope(3, || {
        let nested = ID.with(|_| ID.try_get());
        assert_eq!(nested, Err(MkTaskLocalError::Borrowed));
        // Other keys are unaffected.
        let other = ID.with(|_| NAME.sync_scope("x".into(), || NAME.get()));
        assert_eq!(other, "x");
        assert_eq!(ID.get(), 3);
    });
}

#[test]
fn a_panic_inside_with_leaves_the_value_in_place() {
    ID.sync_scope(9, || {
        let caught = std::panic::catch_unwind(|| ID.with(|_| panic!("boom")));
        assert!(caught.is_err());
        assert_eq!(ID.get(), 9);
    });
}

/// Records what [`ID`] reads in its destructor.
struct ReadsOnDrop(Arc<Mutex<Vec<Result<u64, MkTaskLocalError>>>>);

impl Drop for ReadsOnDrop {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(ID.try_get());
    }
}

#[test]
fn destructors_of_an_aborted_timed_out_or_dropped_scope_see_the_value() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let seen = Arc::new(Mutex::new(Vec::new()));
        // Aborted while it waits.
        let guard = ReadsOnDrop(seen.clone());
        let started = Flag::new();
        let s = started.clone();
        let task = rt.spawn(ID.scope(7, async move {
            let _guard = guard;
            s.set();
            std::future::pending::<()>().await
        }));
        wait_until("the task waits", || started.get());
        task.abort();
        assert!(rt.block_on(task).unwrap_err().is_cancelled());
        // Timed out.
        let guard = ReadsOnDrop(seen.clone());
        let timed_out = rt.block_on(timeout(
            Duration::from_millis(10),
            ID.scope(8, async move {
                let _guard = guard;
                std::future::pending::<()>().await
            }),
        ));
        assert!(timed_out.is_err());
        // Dropped before its first poll.
        let guard = ReadsOnDrop(seen.clone());
        drop(ID.scope(9, async move {
            let _guard = guard;
        }));
        assert_eq!(*seen.lock().unwrap(), vec![Ok(7), Ok(8), Ok(9)]);
    });
}

struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        assert_eq!(ID.get(), 10, "the value is set in the destructor");
        panic!("a destructor that panics");
    }
}

#[test]
fn a_destructor_that_panics_inside_the_scope_leaves_no_value_behind() {
    let guard = PanicsOnDrop;
    let scoped = NAME.scope(
        "outer".into(),
        ID.scope(10, async move {
            let _guard = guard;
        }),
    );
    let msg = expect_panic(move || drop(scoped));
    assert_eq!(msg, "a destructor that panics");
    assert_eq!(ID.try_get(), Err(MkTaskLocalError::NotSet));
    assert_eq!(NAME.try_get(), Err(MkTaskLocalError::NotSet));
    assert_eq!(ID.sync_scope(11, || ID.get()), 11);
}
