//! Task names: `task::name()` inside a task reports its own name, and only its own.

mod common;

use common::*;
use memkit_async::{task, Builder};

/// A named task that panics mid-poll must not leave its name to the worker: the next unnamed
/// task polled on the same (only) worker has no name.
#[test]
fn a_panicking_named_task_leaves_no_name_behind() {
    with_timeout(DEADLINE, || {
        let rt = Builder::new().worker_threads(1).build().unwrap();
        let panicked = rt
            .block_on(
                task::Builder::new()
                    .name("doomed")
                    .spawn_on(
                        async {
                            assert_eq!(task::name().as_deref(), Some("doomed"));
                            panic!("the named task fails");
                        },
                        rt.handle(),
                    )
                    .unwrap(),
            )
            .unwrap_err();
        assert!(panicked.is_panic());
        let after = rt.block_on(rt.spawn(async { task::name() })).unwrap();
        assert_eq!(after, None, "the panicked task's name leaked to its worker");
        // A named task still sees its name, and the worker forgets it afterwards.
        let named = task::Builder::new()
            .name("next")
            .spawn_on(async { task::name() }, rt.handle())
            .unwrap();
        assert_eq!(rt.block_on(named).unwrap().as_deref(), Some("next"));
        assert_eq!(rt.block_on(rt.spawn(async { task::name() })).unwrap(), None);
    });
}
