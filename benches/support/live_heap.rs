//! A global allocator that keeps the number of live heap bytes while switched on, for the
//! benches that measure memory (`limiter`, `sessions`). Included with
//! `#[path = "support/live_heap.rs"] mod live_heap;`, which also installs it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// `System`, keeping the number of live heap bytes while enabled.
struct CountingAlloc;

pub static COUNTING: AtomicBool = AtomicBool::new(false);
pub static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

impl CountingAlloc {
    #[inline]
    fn add(bytes: usize, sign: isize) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(sign * bytes as isize, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counter has no effect on the
// returned memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::add(layout.size(), 1);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::add(layout.size(), 1);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::add(layout.size(), -1);
        Self::add(new_size, 1);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::add(layout.size(), -1);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Live bytes allocated by `f` that are still held when it returns, and its result.
#[allow(dead_code)]
pub fn retained<T>(f: impl FnOnce() -> T) -> (T, isize) {
    LIVE_BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let out = f();
    COUNTING.store(false, Ordering::SeqCst);
    (out, LIVE_BYTES.load(Ordering::SeqCst))
}
