//! A global allocator that counts live heap bytes and their peak, so a target can assert that
//! decoding never allocates more than its input justifies (no capacity taken on trust from a
//! length field).
//!
//! Install it in a target with
//! `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc;`.
//! The counters are process-wide and the window assumes one thread, which is how libFuzzer
//! runs a target.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;

/// Bytes currently allocated through [`CountingAlloc`].
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
/// The most [`LIVE_BYTES`] has been since the last [`AllocWindow::open`].
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

/// `std::alloc::System`, counting what it hands out.
pub struct CountingAlloc;

// SAFETY: every call is forwarded unchanged to `System`, which upholds the `GlobalAlloc`
// contract; the counting only reads sizes and touches atomics, and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees about `layout`.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees about `layout`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees about `ptr` and `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees about `ptr`, `layout` and `new_size`.
        let new_ptr = unsafe { System.realloc(ptr, layout, new_size) };
        if !new_ptr.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE_BYTES.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        new_ptr
    }
}

fn grew(bytes: usize) {
    let live = LIVE_BYTES.fetch_add(bytes, Relaxed) + bytes;
    PEAK_BYTES.fetch_max(live, Relaxed);
}

/// The heap growth of one stretch of code: the most bytes that were live at once above what
/// was live when the window opened. One window at a time.
pub struct AllocWindow {
    baseline_bytes: usize,
}

impl AllocWindow {
    /// Starts measuring. Panics when [`CountingAlloc`] is not the global allocator, because
    /// every measurement would then read 0 and the bound would pass without checking anything.
    pub fn open() -> AllocWindow {
        assert!(
            is_installed(),
            "CountingAlloc is not the #[global_allocator] of this binary"
        );
        let baseline_bytes = LIVE_BYTES.load(Relaxed);
        PEAK_BYTES.store(baseline_bytes, Relaxed);
        AllocWindow { baseline_bytes }
    }

    /// Peak bytes allocated above the baseline since [`AllocWindow::open`].
    pub fn peak_bytes(&self) -> usize {
        PEAK_BYTES.load(Relaxed).saturating_sub(self.baseline_bytes)
    }
}

/// True when allocations go through [`CountingAlloc`]; probed once with a real allocation.
pub fn is_installed() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let before = LIVE_BYTES.load(Relaxed);
        let probe = std::hint::black_box(Box::new([0u8; 256]));
        let during = LIVE_BYTES.load(Relaxed);
        drop(probe);
        during >= before + 256
    })
}
