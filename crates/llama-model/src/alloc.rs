//! A global allocator for programs that train or run models on the CPU: the system allocator,
//! with transparent huge pages requested for large blocks.
//!
//! A training step allocates and frees gigabytes of activations and gradients; with 4 KiB pages
//! every fresh block costs one page fault (and a page clear) per 4 KiB, about 15% of a CPU
//! training step on SmolLM2-135M. Asking the kernel for 2 MiB pages (`madvise(MADV_HUGEPAGE)`)
//! on blocks of at least 4 MiB cuts that by 512× (measured: +6% training tokens/s, the same as
//! running under `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`). Libraries never install it: binaries opt in with
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: infuse_llama_model::HugePageAlloc = infuse_llama_model::HugePageAlloc;
//! ```
//!
//! On other systems, or where transparent huge pages are disabled (`never`), it is the system
//! allocator.

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator plus `madvise(MADV_HUGEPAGE)` on blocks of at least 4 MiB (Linux).
#[derive(Debug, Default, Clone, Copy)]
pub struct HugePageAlloc;

/// Blocks at least this large get huge pages.
const THRESHOLD: usize = 4 << 20;
const HUGE_PAGE: usize = 2 << 20;

/// Advise the 2 MiB-aligned interior of `[ptr, ptr + size)`.
#[cfg(target_os = "linux")]
fn advise(ptr: *mut u8, size: usize) {
    let start = (ptr as usize).next_multiple_of(HUGE_PAGE);
    let end = (ptr as usize + size) & !(HUGE_PAGE - 1);
    if end > start {
        // Only a hint: failure (THP disabled) leaves ordinary pages.
        #[allow(unsafe_code)]
        // SAFETY: the range lies inside a block the system allocator just returned.
        let _ = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_ptr: *mut u8, _size: usize) {}

#[allow(unsafe_code)]
// SAFETY: every call forwards to `System` with the caller's arguments; `advise` only hints.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && layout.size() >= THRESHOLD {
            advise(p, layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && layout.size() >= THRESHOLD {
            advise(p, layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && new_size >= THRESHOLD {
            advise(p, new_size);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_and_small_blocks_round_trip() {
        let a = HugePageAlloc;
        for size in [16, THRESHOLD - 1, THRESHOLD, 3 * THRESHOLD + 123] {
            let layout = Layout::from_size_align(size, 64).expect("layout");
            #[allow(unsafe_code)]
            // SAFETY: non-zero size; the block is written within bounds and freed once.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert_eq!(*p.add(size - 1), 0);
                *p.add(size - 1) = 7;
                let q = a.realloc(p, layout, size * 2);
                assert_eq!(*q.add(size - 1), 7);
                a.dealloc(q, Layout::from_size_align(size * 2, 64).expect("layout"));
            }
        }
    }
}
