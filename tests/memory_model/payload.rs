//! Payloads: byte arrays with a chosen alignment, filled with a per-allocation pattern, held
//! as boxes, vectors or arena values that check their bytes.

use crate::common::KIB;
use futures::FutureExt;
use memkit_async::{MkAllocError, MkArena, MkAsyncBox, MkAsyncVec};
use std::alloc::Layout;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, LazyLock};

/// Vectors are filled with their pattern up to this many bytes (the rest of the capacity is
/// tracked as their range all the same).
pub const FILL_MAX: usize = 64 * KIB;

/// The byte at `i` of the allocation with `seed`.
pub fn pat(seed: u64, i: usize) -> u8 {
    let x =
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    ((x >> 56) ^ (x >> 29)) as u8
}

pub fn fill(bytes: &mut [u8], seed: u64) {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = pat(seed, i);
    }
}

pub fn holds(bytes: &[u8], seed: u64) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| b == pat(seed, i))
}

pub trait Payload: Send + 'static {
    fn zeroed() -> Self;
    fn bytes(&self) -> &[u8];
    fn bytes_mut(&mut self) -> &mut [u8];
}

impl<const N: usize> Payload for [u8; N] {
    fn zeroed() -> Self {
        [0; N]
    }
    fn bytes(&self) -> &[u8] {
        self
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}

macro_rules! aligned {
    ($($name:ident = $align:literal),* $(,)?) => {$(
        #[repr(C, align($align))]
        pub struct $name<const N: usize>(pub [u8; N]);

        impl<const N: usize> Payload for $name<N> {
            fn zeroed() -> Self {
                $name([0; N])
            }
            fn bytes(&self) -> &[u8] {
                &self.0
            }
            fn bytes_mut(&mut self) -> &mut [u8] {
                &mut self.0
            }
        }
    )*};
}

aligned!(
    Al2 = 2,
    Al8 = 8,
    Al16 = 16,
    Al64 = 64,
    Al512 = 512,
    Al4096 = 4096,
    Al8192 = 8192
);

/// How an allocation is asked for: the `try_` API, or the async one polled once (dropped if it
/// would wait).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Try,
    Async,
}

/// A live box or vector, wherever it is held.
pub trait Held: Send {
    /// `[addr, addr + len)` of the memory it owns.
    fn range(&self) -> (usize, usize);
    /// Whether it still holds its pattern.
    fn verify(&self) -> bool;
    /// Frees it the other way (`into_inner` for a box), checking the value.
    fn consume(self: Box<Self>) -> bool;
    /// Vectors: grows by `additional` and fills the new room. `None` if it would wait.
    fn grow(&mut self, _additional: usize, _api: Api) -> Option<Result<(), MkAllocError>> {
        unreachable!("only vectors grow")
    }
}

pub struct HeldBox<T: Payload> {
    pub b: MkAsyncBox<T>,
    pub seed: u64,
}

impl<T: Payload> Held for HeldBox<T> {
    fn range(&self) -> (usize, usize) {
        (MkAsyncBox::as_ptr(&self.b) as usize, size_of::<T>())
    }
    fn verify(&self) -> bool {
        holds(self.b.bytes(), self.seed)
    }
    fn consume(self: Box<Self>) -> bool {
        let seed = self.seed;
        let value = MkAsyncBox::into_inner(self.b);
        holds(value.bytes(), seed)
    }
}

pub struct HeldVec {
    pub v: MkAsyncVec<u8>,
    pub seed: u64,
}

impl HeldVec {
    pub fn fill(&mut self) {
        let (from, to) = (self.v.len(), self.v.capacity().min(FILL_MAX));
        if from < to {
            self.v
                .try_resize(to, 0)
                .expect("a resize within capacity cannot fail");
            for (i, b) in self.v[from..].iter_mut().enumerate() {
                *b = pat(self.seed, from + i);
            }
        }
    }
}

impl Held for HeldVec {
    fn range(&self) -> (usize, usize) {
        (self.v.as_ptr() as usize, self.v.capacity())
    }
    fn verify(&self) -> bool {
        self.v.len() == self.v.capacity().min(FILL_MAX) && holds(&self.v, self.seed)
    }
    fn consume(self: Box<Self>) -> bool {
        let ok = self.verify();
        drop(self);
        ok
    }
    fn grow(&mut self, additional: usize, api: Api) -> Option<Result<(), MkAllocError>> {
        let res = match api {
            Api::Try => Some(self.v.try_reserve(additional)),
            Api::Async => self.v.reserve(additional).now_or_never(),
        };
        if let Some(Ok(())) = res {
            self.fill();
        }
        res
    }
}

pub fn new_vec(cap: usize, seed: u64, api: Api) -> Option<Result<Box<dyn Held>, MkAllocError>> {
    let res = match api {
        Api::Try => Some(MkAsyncVec::try_with_capacity(cap)),
        Api::Async => MkAsyncVec::with_capacity(cap).now_or_never(),
    };
    res.map(|r| {
        r.map(|v| {
            let mut h = HeldVec { v, seed };
            h.fill();
            Box::new(h) as Box<dyn Held>
        })
    })
}

/// Counts arena values dropped, and those that had lost their pattern.
#[derive(Default)]
pub struct Sink {
    pub drops: AtomicUsize,
    pub corrupt: AtomicUsize,
}

/// An `MkArena` value that checks its bytes when its arena drops it.
pub struct Checked<T: Payload> {
    pub payload: T,
    pub seed: u64,
    pub armed: bool,
    pub sink: Arc<Sink>,
}

impl<T: Payload> Drop for Checked<T> {
    fn drop(&mut self) {
        if self.armed {
            self.sink.drops.fetch_add(1, SeqCst);
            if !holds(self.payload.bytes(), self.seed) {
                self.sink.corrupt.fetch_add(1, SeqCst);
            }
        }
    }
}

pub type BoxFn = fn(u64, Api) -> Option<Result<Box<dyn Held>, MkAllocError>>;
pub type ArenaFn =
    fn(&mut MkArena, u64, &Arc<Sink>, Api) -> Option<Result<(usize, usize), MkAllocError>>;

/// One payload type: its layouts as a box and as an arena value, and how to allocate it.
pub struct Kind {
    pub name: &'static str,
    pub layout: Layout,
    pub arena_layout: Layout,
    pub boxed: BoxFn,
    pub arena: ArenaFn,
}

pub fn new_box<T: Payload>(seed: u64, api: Api) -> Option<Result<Box<dyn Held>, MkAllocError>> {
    let res = match api {
        Api::Try => Some(MkAsyncBox::try_new(T::zeroed())),
        Api::Async => MkAsyncBox::new(T::zeroed()).now_or_never(),
    };
    res.map(|r| {
        r.map(|mut b| {
            fill(b.bytes_mut(), seed);
            Box::new(HeldBox { b, seed }) as Box<dyn Held>
        })
    })
}

pub fn arena_put<T: Payload>(
    arena: &mut MkArena,
    seed: u64,
    sink: &Arc<Sink>,
    api: Api,
) -> Option<Result<(usize, usize), MkAllocError>> {
    let value = Checked {
        payload: T::zeroed(),
        seed,
        armed: false,
        sink: sink.clone(),
    };
    let res = match api {
        Api::Try => Some(arena.alloc(value)),
        Api::Async => arena.alloc_async(value).now_or_never(),
    };
    res.map(|r| {
        r.map(|slot| {
            fill(slot.payload.bytes_mut(), seed);
            slot.armed = true;
            (slot as *mut Checked<T> as usize, size_of::<Checked<T>>())
        })
    })
}

pub fn kind<T: Payload>(name: &'static str) -> Kind {
    Kind {
        name,
        layout: Layout::new::<T>(),
        arena_layout: Layout::new::<Checked<T>>(),
        boxed: new_box::<T>,
        arena: arena_put::<T>,
    }
}

pub static KINDS: LazyLock<Vec<Kind>> = LazyLock::new(|| {
    vec![
        kind::<[u8; 0]>("[u8; 0]"),
        kind::<[u8; 1]>("[u8; 1]"),
        kind::<[u8; 24]>("[u8; 24]"),
        kind::<[u8; 1000]>("[u8; 1000]"),
        kind::<[u8; 4096]>("[u8; 4096]"),
        kind::<[u8; 5000]>("[u8; 5000]"),
        kind::<[u8; 40000]>("[u8; 40000]"),
        kind::<Al2<3>>("Al2<3>"),
        kind::<Al8<20>>("Al8<20>"),
        kind::<Al16<100_000>>("Al16<100000>"),
        kind::<Al64<1>>("Al64<1>"),
        kind::<Al512<700>>("Al512<700>"),
        kind::<Al4096<1>>("Al4096<1>"),
        kind::<Al4096<5000>>("Al4096<5000>"),
        kind::<Al4096<0>>("Al4096<0>"),
        kind::<Al8192<1>>("Al8192<1>"),
    ]
});
