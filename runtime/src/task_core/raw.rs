//! The task allocation and the code that drives it: one `Box` holding header, trailer,
//! scheduler handle and the future (later its output).
//!
//! Invariants: the field-access rules of the task (stage, arena slot, join waker, references)
//! are in the "Safety" section of mod.rs; this file adds:
//! - `Cell<F, S>` is `#[repr(C)]` with `TaskHead` first, so `NonNull<Header>` casts to it.
//! - `dealloc` runs with no other reference left.
//! - Every `RawTask` method that consumes a reference says so; `Task` and `Notified` own one.

use super::header::{Header, TaskHead, Vtable};
use super::memory::{Gate, TaskMemory};
use super::state::{ToIdle, ToRunning};
use super::{current, list, waker, Id, JoinError, Schedule};
use crate::memory;
use std::cell::UnsafeCell;
use std::future::Future;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};

#[repr(C)]
struct Cell<F: Future, S> {
    head: TaskHead,
    scheduler: S,
    stage: UnsafeCell<Stage<F>>,
}

enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, JoinError>),
    Consumed,
}

/// An untyped pointer to a task; owns nothing by itself.
#[derive(Clone, Copy)]
pub(crate) struct RawTask {
    ptr: NonNull<Header>,
}

/// One owned task reference.
pub(crate) struct Task {
    raw: RawTask,
}

/// A task reference that is allowed to poll: the one sitting in a run queue.
pub(crate) struct Notified(Task);

// SAFETY: the task's future and output are `Send` (enforced at spawn), and all shared state is
// reached through atomics or under the ownership rules of the file invariant.
unsafe impl Send for Task {}
// SAFETY: as above.
unsafe impl Send for Notified {}

fn vtable<F, S>() -> &'static Vtable
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    &Vtable {
        poll: poll::<F, S>,
        schedule: schedule::<F, S>,
        dealloc: dealloc::<F, S>,
        try_read_output: try_read_output::<F, S>,
        drop_join_handle: drop_join_handle::<F, S>,
        shutdown: shutdown::<F, S>,
    }
}

impl RawTask {
    /// Allocates a task holding three references: owned list, first `Notified`, join handle.
    pub(crate) fn new<F, S>(
        future: F,
        scheduler: S,
        id: Id,
        memory: Option<Box<TaskMemory>>,
    ) -> RawTask
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        S: Schedule,
    {
        let cell = Box::new(Cell {
            head: TaskHead {
                header: Header::new(vtable::<F, S>(), id, memory),
                owned: list::Pointers::new(),
                join_waker: UnsafeCell::new(None),
            },
            scheduler,
            stage: UnsafeCell::new(Stage::Running(future)),
        });
        // SAFETY: `Box::into_raw` never returns null.
        let ptr = unsafe { NonNull::new_unchecked(Box::into_raw(cell)) };
        RawTask { ptr: ptr.cast() }
    }

    /// # Safety
    /// `ptr` points to a live task.
    pub(crate) unsafe fn from_header(ptr: NonNull<Header>) -> RawTask {
        RawTask { ptr }
    }

    pub(crate) fn header_ptr(self) -> NonNull<Header> {
        self.ptr
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: callers hold a reference, so the task is alive.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn id(&self) -> Id {
        self.header().id
    }

    /// # Safety
    /// `dst` is a `*mut Poll<Result<T, JoinError>>` for the task's output type `T`, and the
    /// caller holds `JOIN_INTEREST`.
    pub(crate) unsafe fn try_read_output(self, dst: *mut (), waker: &Waker) {
        // SAFETY: forwarded caller contract.
        unsafe { (self.header().vtable.try_read_output)(self.ptr, dst, waker) }
    }

    /// Consumes the join handle's reference and interest.
    ///
    /// # Safety
    /// Called once, by the join handle.
    pub(crate) unsafe fn drop_join_handle(self) {
        // SAFETY: forwarded caller contract.
        unsafe { (self.header().vtable.drop_join_handle)(self.ptr) }
    }

    /// Requests cancellation; a worker drops the future at its next opportunity.
    pub(crate) fn remote_abort(self) {
        if self.header().state.transition_to_notified_and_cancel() {
            // SAFETY: the transition created the `Notified` reference `schedule` consumes.
            unsafe { (self.header().vtable.schedule)(self.ptr) }
        }
    }
}

impl Task {
    /// # Safety
    /// The caller transfers one reference to the returned value.
    pub(crate) unsafe fn from_raw(raw: RawTask) -> Task {
        Task { raw }
    }

    pub(crate) fn raw(&self) -> RawTask {
        self.raw
    }

    /// Cancels the task for shutdown, consuming this reference.
    pub(crate) fn shutdown(self) {
        let raw = self.raw;
        mem::forget(self);
        // SAFETY: this reference is handed to `shutdown`, which consumes it.
        unsafe { (raw.header().vtable.shutdown)(raw.ptr) }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if self.raw.header().state.ref_dec() {
            // SAFETY: that was the last reference.
            unsafe { (self.raw.header().vtable.dealloc)(self.raw.ptr) }
        }
    }
}

impl Notified {
    /// # Safety
    /// The caller transfers a reference that is entitled to poll (`NOTIFIED` set for it).
    pub(crate) unsafe fn from_raw(raw: RawTask) -> Notified {
        // SAFETY: forwarded caller contract.
        Notified(unsafe { Task::from_raw(raw) })
    }

    /// Polls the task once; the reference moves into the poll.
    pub(crate) fn run(self) {
        let raw = self.0.raw;
        mem::forget(self);
        // SAFETY: a `Notified` reference is exactly what `poll` consumes.
        unsafe { (raw.header().vtable.poll)(raw.ptr) }
    }

    /// The task's header.
    pub(crate) fn header(&self) -> &Header {
        self.0.raw.header()
    }

    /// Cancels a task that will never be run (its scheduler is gone), consuming this reference.
    pub(crate) fn shutdown(self) {
        self.0.shutdown()
    }
}

/// # Safety
/// `ptr` is a live `Cell<F, S>`.
unsafe fn cell<'a, F: Future, S>(ptr: NonNull<Header>) -> &'a Cell<F, S> {
    // SAFETY: caller contract; layout per the file invariant.
    unsafe { ptr.cast::<Cell<F, S>>().as_ref() }
}

unsafe fn poll<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the caller's `Notified` reference keeps the task alive.
    let cell = unsafe { cell::<F, S>(ptr) };
    let header = &cell.head.header;
    let state = &header.state;
    // Memory pressure (with heap accounting): hold the task back, or cancel it, before it runs.
    // An aborted task is not held: this poll drops its future, which is how its memory comes
    // back (the held queue releases aborted tasks, so holding them again would never end).
    let mut memory_error = None;
    let aborted = header.memory().is_some() && state.load().is_cancelled();
    if let Some(memory) = header.memory().filter(|_| !aborted) {
        match memory.gate(header.id) {
            Gate::Poll => {}
            Gate::Hold(budget) => {
                let charged = memory.charged.clone().unwrap_or_else(|| budget.clone());
                // SAFETY: the caller handed this poll its `Notified` reference.
                let task = unsafe { Notified::from_raw(RawTask { ptr }) };
                let Err(task) = cell.scheduler.hold_for_memory(task, charged, budget) else {
                    return;
                };
                mem::forget(task); // not held: the reference goes on into this poll
            }
            Gate::Cancel(err) => memory_error = Some(err),
        }
    }
    match state.transition_to_running() {
        ToRunning::Success => {
            if let Some(err) = memory_error {
                // SAFETY: we hold `RUNNING`.
                unsafe { cancel_task_with(cell, ptr, err) };
                // SAFETY: as below.
                return unsafe { complete::<F, S>(ptr, 1) };
            }
            // SAFETY: we hold `RUNNING`.
            let (done, grew) = unsafe { poll_future(cell, ptr) };
            if !done {
                let exceeded = (grew > 0)
                    .then(|| header.memory().and_then(|m| m.after_growth(header.id)))
                    .flatten();
                if let Some(err) = exceeded {
                    // SAFETY: we hold `RUNNING`.
                    unsafe { cancel_task_with(cell, ptr, err) };
                } else {
                    match state.transition_to_idle() {
                        ToIdle::Ok => return,
                        ToIdle::OkNotified => {
                            // SAFETY: the running reference became a `Notified` one (state.rs).
                            let task = unsafe { Notified::from_raw(RawTask { ptr }) };
                            return cell.scheduler.yield_now(task);
                        }
                        // SAFETY: we hold `RUNNING`.
                        ToIdle::Cancelled => unsafe { cancel_task(cell, ptr) },
                    }
                }
            }
        }
        // SAFETY: we hold `RUNNING`.
        ToRunning::Cancelled => unsafe { cancel_task(cell, ptr) },
        ToRunning::Failed => return,
        // SAFETY: the last reference is gone.
        ToRunning::Dealloc => return unsafe { dealloc::<F, S>(ptr) },
    }
    // SAFETY: we hold `RUNNING` and the running reference; the output is stored.
    unsafe { complete::<F, S>(ptr, 1) }
}

/// Polls the future once; on `Ready` (or a panic) stores the output and returns `true`. Also
/// returns the bytes the poll grew the task by (with heap accounting; 0 otherwise).
///
/// # Safety
/// The caller holds `RUNNING`.
unsafe fn poll_future<F: Future, S>(cell: &Cell<F, S>, ptr: NonNull<Header>) -> (bool, i64) {
    // SAFETY: `RUNNING` gives us the stage; the poller's reference keeps the task alive while
    // the borrowed waker is in use.
    let (stage, waker) = unsafe { (&mut *cell.stage.get(), waker::borrowed(ptr)) };
    let header = &cell.head.header;
    let id = header.id;
    let memory = header.memory();
    let res = {
        let _current = current::enter(ptr);
        let _budget = crate::coop::start_poll();
        let heap = memory.and_then(|m| {
            m.count_poll();
            m.enter_heap()
        });
        let res = catch_unwind(AssertUnwindSafe(|| {
            let Stage::Running(future) = stage else {
                unreachable!("a task is polled only while its future is alive")
            };
            // SAFETY: the future lives in the heap cell and never moves until it is dropped.
            let future = unsafe { Pin::new_unchecked(future) };
            future.poll(&mut Context::from_waker(&waker))
        }));
        (res, heap.map_or(0, |h| h.finish()))
    };
    let output = match res {
        (Ok(Poll::Pending), grew) => return (false, grew),
        (res, _) => res,
    };
    let output = match output {
        Ok(Poll::Ready(value)) => Ok(value),
        Ok(Poll::Pending) => unreachable!("returned above"),
        Err(payload) => Err(JoinError::panic(id, payload)),
    };
    let output = match drop_stage(stage, ptr) {
        Ok(()) => output,
        Err(payload) => {
            let _ = catch_unwind(AssertUnwindSafe(|| drop(output)));
            Err(JoinError::panic(id, payload))
        }
    };
    *stage = Stage::Finished(output);
    (true, 0)
}

/// Drops the future or output in place (with the task set as current, so its memory is
/// released to the right arena), leaving `Consumed` even if the drop panics.
fn drop_stage<F: Future>(
    stage: &mut Stage<F>,
    ptr: NonNull<Header>,
) -> Result<(), Box<dyn std::any::Any + Send>> {
    let _current = current::enter(ptr);
    // SAFETY: the caller holds a reference, so the header is alive.
    let _heap = unsafe { ptr.as_ref() }
        .memory()
        .and_then(|m| m.enter_heap());
    // An assignment writes the new value even when dropping the old one unwinds.
    catch_unwind(AssertUnwindSafe(|| *stage = Stage::Consumed))
}

/// Drops the output of a completed task, with the task current as for its future, then frees
/// any arena that the drop created: the task's own arena was freed at completion, and nothing
/// else would free a new one, whose chunks would stay charged to the budget for good.
///
/// # Safety
/// The caller owns the output of the completed task: it completed it (holding `RUNNING`) and
/// nobody holds `JOIN_INTEREST`, or it holds `JOIN_INTEREST` after `COMPLETE`. Nothing else
/// touches the stage or the arena slot after completion.
unsafe fn drop_output<F: Future, S>(cell: &Cell<F, S>, ptr: NonNull<Header>) {
    // SAFETY: caller contract.
    let _ = drop_stage(unsafe { &mut *cell.stage.get() }, ptr);
    // SAFETY: as above: the slot is ours, and this is the drop's only chance to be freed.
    unsafe { memory::drop_task_arena(cell.head.header.arena.get()) };
}

/// Drops the future of a cancelled task and stores the cancellation as its output.
///
/// # Safety
/// The caller holds `RUNNING`.
unsafe fn cancel_task<F: Future, S>(cell: &Cell<F, S>, ptr: NonNull<Header>) {
    // SAFETY: forwarded caller contract.
    unsafe { cancel_task_with(cell, ptr, JoinError::cancelled(cell.head.header.id)) }
}

/// Drops the future of a cancelled task and stores `err` as its output (or the panic of the
/// future's destructor).
///
/// # Safety
/// The caller holds `RUNNING`.
unsafe fn cancel_task_with<F: Future, S>(cell: &Cell<F, S>, ptr: NonNull<Header>, err: JoinError) {
    // SAFETY: `RUNNING` gives us the stage.
    let stage = unsafe { &mut *cell.stage.get() };
    let id = cell.head.header.id;
    let err = match drop_stage(stage, ptr) {
        Ok(()) => err,
        Err(payload) => JoinError::panic(id, payload),
    };
    *stage = Stage::Finished(Err(err));
}

/// Marks the task complete, hands the output to the join handle (or drops it), leaves the
/// owned list and drops `refs` references plus the list's.
///
/// # Safety
/// The caller holds `RUNNING` and `refs` references.
unsafe fn complete<F, S>(ptr: NonNull<Header>, refs: usize)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the caller's references keep the task alive.
    let cell = unsafe { cell::<F, S>(ptr) };
    // The future is gone: give the arena's chunks back (objects still alive in them, such as
    // the output, keep their chunks until they are dropped).
    // SAFETY: we hold `RUNNING`, which gives us the arena slot; this runs once per task.
    unsafe { memory::drop_task_arena(cell.head.header.arena.get()) };
    // Leave the owned list and the budgets' task counts before `COMPLETE` is published: a
    // join handle polled at any moment after (woken or not) sees the output only once the task
    // no longer counts as alive, so a user who joined every task reads exact metrics.
    // SAFETY: we hold `refs` references to the task.
    let released = unsafe { cell.scheduler.release(ptr) }
        .map(mem::forget)
        .is_some();
    if let Some(memory) = cell.head.header.memory() {
        memory.finished();
    }
    let prev = cell.head.header.state.transition_to_complete();
    if !prev.is_join_interested() {
        // SAFETY: without join interest the output is ours after `COMPLETE`.
        unsafe { drop_output(cell, ptr) };
    } else if prev.has_join_waker() {
        // SAFETY: `JOIN_WAKER` was set at completion, so the slot is initialised and the join
        // handle no longer writes it (state.rs).
        if let Some(waker) = unsafe { &*cell.head.join_waker.get() } {
            let _ = catch_unwind(AssertUnwindSafe(|| waker.wake_by_ref()));
        }
    }
    if cell
        .head
        .header
        .state
        .transition_to_terminal(refs + released as usize)
    {
        // SAFETY: those were the last references.
        unsafe { dealloc::<F, S>(ptr) }
    }
}

unsafe fn schedule<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the caller hands over a `Notified` reference, which keeps the task alive.
    let cell = unsafe { cell::<F, S>(ptr) };
    // SAFETY: as above.
    cell.scheduler
        .schedule(unsafe { Notified::from_raw(RawTask { ptr }) });
}

unsafe fn dealloc<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: the last reference is gone and the cell came from `Box::into_raw` in `new`.
    drop(unsafe { Box::from_raw(ptr.cast::<Cell<F, S>>().as_ptr()) });
}

unsafe fn try_read_output<F: Future, S>(ptr: NonNull<Header>, dst: *mut (), waker: &Waker) {
    // SAFETY: the join handle's reference keeps the task alive.
    let cell = unsafe { cell::<F, S>(ptr) };
    // SAFETY: the join handle holds `JOIN_INTEREST`.
    if unsafe { can_read_output(&cell.head, waker) } {
        // SAFETY: `COMPLETE` with `JOIN_INTEREST`: the output belongs to the join handle.
        let stage = unsafe { &mut *cell.stage.get() };
        let Stage::Finished(output) = mem::replace(stage, Stage::Consumed) else {
            panic!("`JoinHandle` polled after it returned `Poll::Ready`");
        };
        // SAFETY: the caller passes a `Poll<Result<F::Output, JoinError>>` (RawTask contract).
        unsafe { *(dst as *mut Poll<Result<F::Output, JoinError>>) = Poll::Ready(output) };
    }
}

/// `true` once the task is complete; otherwise leaves `waker` to be woken at completion.
///
/// # Safety
/// Called by the join handle, which holds `JOIN_INTEREST`.
unsafe fn can_read_output(head: &TaskHead, waker: &Waker) -> bool {
    let state = &head.header.state;
    let snapshot = state.load();
    if snapshot.is_complete() {
        return true;
    }
    if snapshot.has_join_waker() {
        // SAFETY: with `JOIN_WAKER` set the slot is initialised and only read by others.
        let current = unsafe { &*head.join_waker.get() };
        if current.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return false;
        }
        if state.unset_join_waker().is_err() {
            return true;
        }
    }
    // SAFETY: `JOIN_WAKER` is clear, so the join handle has the slot to itself.
    unsafe { *head.join_waker.get() = Some(waker.clone()) };
    state.set_join_waker().is_err()
}

unsafe fn drop_join_handle<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: the join handle's reference keeps the task alive.
    let cell = unsafe { cell::<F, S>(ptr) };
    let state = &cell.head.header.state;
    if state.unset_join_interested().is_err() {
        // SAFETY: complete with our join interest: the output is ours to drop.
        unsafe { drop_output(cell, ptr) };
    }
    if state.ref_dec() {
        // SAFETY: that was the last reference.
        unsafe { dealloc::<F, S>(ptr) }
    }
}

unsafe fn shutdown<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the caller's reference keeps the task alive.
    let cell = unsafe { cell::<F, S>(ptr) };
    if cell.head.header.state.transition_to_shutdown() {
        // SAFETY: the transition claimed `RUNNING` for us; we hold one reference.
        unsafe {
            cancel_task(cell, ptr);
            complete::<F, S>(ptr, 1);
        }
    } else if cell.head.header.state.ref_dec() {
        // SAFETY: that was the last reference.
        unsafe { dealloc::<F, S>(ptr) }
    }
}
