//! The reactor: registers sources with mio and turns mio events into readiness and wake-ups.
//!
//! Each runtime has one. Its `mio::Poll` is owned by the runtime's driver (the worker that parks
//! blocks in it); this half, shared with every registered source, holds a clone of the poll's
//! registry, the `mio::Waker` that interrupts the blocked worker, and the table of sources.
//! A source's token is its table index plus a generation, so an event still in flight for a
//! deregistered source can never reach the source that reuses its slot.

use super::readiness::{Readiness, ERROR, READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED};
use crate::sync::lock_std;
use mio::event::Source;
use mio::{Interest, Registry, Token};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

/// The token of the reactor's own waker.
pub(crate) const WAKE_TOKEN: Token = Token(usize::MAX);
const INDEX_BITS: u32 = usize::BITS / 2;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

pub(crate) fn shutdown_error() -> io::Error {
    io::Error::other(
        "the memkit-async runtime that drove this I/O resource has shut down; create the \
         resource again inside a running runtime",
    )
}

struct Slot {
    token: usize,
    io: Option<Arc<Readiness>>,
}

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    free: Vec<usize>,
    generation: usize,
    live: usize,
}

pub(crate) struct Reactor {
    registry: Registry,
    waker: mio::Waker,
    table: Mutex<Table>,
    shutdown: AtomicBool,
    /// Registered sources, readable without the lock.
    sources: AtomicUsize,
}

impl Reactor {
    pub(crate) fn new(registry: Registry) -> io::Result<Reactor> {
        let waker = mio::Waker::new(&registry, WAKE_TOKEN)?;
        Ok(Reactor {
            registry,
            waker,
            table: Mutex::new(Table::default()),
            shutdown: AtomicBool::new(false),
            sources: AtomicUsize::new(0),
        })
    }

    /// Interrupts the worker blocked in the poll, if any; if none, the next poll returns at once.
    pub(crate) fn wake(&self) {
        // Fails only if the eventfd or pipe is broken, in which case the process is out of
        // file descriptors and the worker will be woken by its next timer or event anyway.
        let _ = self.waker.wake();
    }

    /// Registers `source` for reading and writing; returns its token and readiness.
    pub(crate) fn register(&self, source: &mut impl Source) -> io::Result<(usize, Arc<Readiness>)> {
        let io = Arc::new(Readiness::new());
        let token = {
            let mut table = lock_std(&self.table);
            if self.shutdown.load(Ordering::Acquire) {
                return Err(shutdown_error());
            }
            let index = match table.free.pop() {
                Some(index) => index,
                None => {
                    let index = table.slots.len();
                    if index >= INDEX_MASK {
                        return Err(io::Error::other(format!(
                            "too many I/O resources registered with one runtime (limit \
                             {INDEX_MASK}); drop sockets you no longer use"
                        )));
                    }
                    table.slots.push(Slot { token: 0, io: None });
                    index
                }
            };
            table.generation = table.generation.wrapping_add(1);
            let token = index | ((table.generation << INDEX_BITS) & !INDEX_MASK);
            // `WAKE_TOKEN` has every bit set: a source never gets it.
            let token = if token == WAKE_TOKEN.0 { index } else { token };
            table.slots[index] = Slot {
                token,
                io: Some(io.clone()),
            };
            table.live += 1;
            self.sources.store(table.live, Ordering::Relaxed);
            token
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.registry.register(source, Token(token), interest) {
            self.release(token);
            return Err(e);
        }
        Ok((token, io))
    }

    /// Deregisters `source` and frees its slot.
    pub(crate) fn deregister(&self, token: usize, source: &mut impl Source) {
        // Fails only if the source was never registered or is already closed: nothing to undo.
        let _ = self.registry.deregister(source);
        self.release(token);
    }

    fn release(&self, token: usize) {
        let io = {
            let mut table = lock_std(&self.table);
            let index = token & INDEX_MASK;
            match table.slots.get_mut(index) {
                Some(slot) if slot.token == token && slot.io.is_some() => {
                    let io = slot.io.take();
                    table.free.push(index);
                    table.live -= 1;
                    self.sources.store(table.live, Ordering::Relaxed);
                    if table.live == 0 && table.slots.len() > 1024 {
                        // Memory returns to baseline after a burst of connections.
                        table.slots = Vec::new();
                        table.free = Vec::new();
                    }
                    io
                }
                _ => None,
            }
        };
        // Dropped outside the lock: its wakers may hold the last reference to a task.
        drop(io);
    }

    /// Records `events` and moves the wakers they satisfy into `wake`.
    pub(crate) fn dispatch(&self, events: &mio::Events, wake: &mut Vec<Waker>) {
        let table = lock_std(&self.table);
        for event in events.iter() {
            let token = event.token().0;
            if token == WAKE_TOKEN.0 {
                continue;
            }
            let Some(slot) = table.slots.get(token & INDEX_MASK) else {
                continue;
            };
            let Some(io) = slot.io.as_ref().filter(|_| slot.token == token) else {
                continue;
            };
            let mut ready = 0;
            if event.is_readable() {
                ready |= READABLE;
            }
            if event.is_writable() {
                ready |= WRITABLE;
            }
            if event.is_read_closed() {
                ready |= READ_CLOSED;
            }
            if event.is_write_closed() {
                ready |= WRITE_CLOSED;
            }
            if event.is_error() {
                // The operation itself reports which error.
                ready |= ERROR | READABLE | WRITABLE;
            }
            io.set(ready, wake);
        }
    }

    /// Sources registered now.
    pub(crate) fn len(&self) -> usize {
        self.sources.load(Ordering::Relaxed)
    }

    /// Whether any source is registered (a busy worker's cheap check before polling).
    pub(crate) fn has_sources(&self) -> bool {
        self.len() != 0
    }

    /// Refuses new sources and ends every wait on the registered ones with an error.
    pub(crate) fn shutdown(&self) {
        let mut wake = Vec::new();
        {
            let table = lock_std(&self.table);
            self.shutdown.store(true, Ordering::Release);
            for io in table.slots.iter().filter_map(|s| s.io.as_ref()) {
                io.shutdown(&mut wake);
            }
        }
        crate::unwind::wake_all(wake);
    }
}
