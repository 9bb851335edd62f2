//! The counting global allocator of secure-api's own tests and benchmarks: `System`, counting
//! allocations and live heap bytes while a measurement runs, and nothing else (a relaxed
//! atomic load per call) otherwise, so that timings in the same process are not disturbed.
//!
//! A test or bench binary installs it and measures closures:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: counting_alloc::CountingAlloc = counting_alloc::CountingAlloc;
//!
//! fn main() {
//!     let (allocations, v) = counting_alloc::allocations(|| vec![1u8; 16]);
//!     assert_eq!((allocations, v.len()), (1, 16));
//!     let (kept, bytes) = counting_alloc::retained(|| vec![0u8; 1000]);
//!     assert_eq!((kept.len(), bytes), (1000, 1000));
//! }
//! ```
//!
//! Measurements are process-wide: whatever other threads allocate during one is counted
//! too, and measurements must not overlap or nest.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

/// `System`, counting while a measurement runs. Install it with `#[global_allocator]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

impl CountingAlloc {
    #[inline]
    fn record(allocated: usize, freed: usize, allocation: bool) {
        if COUNTING.load(Ordering::Relaxed) {
            if allocation {
                ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            }
            LIVE_BYTES.fetch_add(allocated as isize - freed as isize, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counters have no effect on the
// memory returned.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::record(layout.size(), 0, true);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::record(layout.size(), 0, true);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::record(new_size, layout.size(), true);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::record(0, layout.size(), false);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn measure<R>(f: impl FnOnce() -> R) -> (R, usize, isize) {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    LIVE_BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let out = black_box(f());
    COUNTING.store(false, Ordering::SeqCst);
    (
        out,
        ALLOCATIONS.load(Ordering::SeqCst),
        LIVE_BYTES.load(Ordering::SeqCst),
    )
}

/// How many allocations (`alloc`, `alloc_zeroed` and `realloc` calls) `f` makes, and its
/// result.
pub fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let (out, allocations, _) = measure(f);
    (allocations, out)
}

/// The heap bytes that `f` allocates and still holds when it returns (negative when it
/// freed more than it allocated), and its result.
pub fn retained<R>(f: impl FnOnce() -> R) -> (R, isize) {
    let (out, _, live) = measure(f);
    (out, live)
}

/// Inside a [`retained`] or [`allocations`] measurement: the heap bytes allocated and not
/// freed since it began, for following a peak while `f` runs. 0 outside a measurement.
pub fn live_bytes() -> isize {
    if COUNTING.load(Ordering::SeqCst) {
        LIVE_BYTES.load(Ordering::SeqCst)
    } else {
        0
    }
}
