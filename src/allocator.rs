//! The process's allocator: mimalloc, called the way its fast path wants.
//!
//! Why not the `mimalloc` crate's `MiMalloc`: it passes every request to
//! `mi_malloc_aligned`, whatever the alignment. In mimalloc 3 that call takes
//! its fast path only when the size-class page of the request has a free
//! block at hand; otherwise (a page just filled up, or anything over 1 KiB)
//! it goes to a generic path, and unless the request's size class is a
//! power of two (up to 4 KiB) it over-allocates by `align - 1` bytes and
//! aligns inside the block — for an alignment of 8 or even 1, which every
//! block has anyway. Where `size + align - 1` crosses into the next size
//! class, the block comes from there, the request's own class is not
//! refilled, and the next request of that size misses again.
//! Callgrind on the SIP thread, per call: of 280 allocations 25 took the
//! generic path and 15 of those over-allocated, at ~565 instructions each;
//! allocating cost 19.2 k instructions through `mi_malloc_aligned` and
//! 12.5 k through `mi_malloc` (bench/RESULTS.md, seventeenth session).
//!
//! mimalloc's size classes are whole double words from 16 bytes up and its
//! pages start 16-aligned, so `mi_malloc` returns 16-aligned blocks for
//! sizes of 16 and more and 8-aligned ones below (the invariant asserted in
//! mimalloc's `alloc.c`). That is the rule the standard library applies to
//! the C `malloc` (`MIN_ALIGN`); requests it covers go to `mi_malloc`, the
//! rest to the aligned entry points.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// Alignment every `mi_malloc` block of at least this size has.
const MIN_ALIGN: usize = 16;

/// mimalloc as the global allocator (`#[global_allocator]` in `main.rs`).
pub struct Allocator;

/// Whether a plain (unaligned) mimalloc call satisfies `layout`.
fn plain(layout: &Layout) -> bool {
    layout.align() <= MIN_ALIGN && layout.align() <= layout.size()
}

// SAFETY: every block comes from mimalloc and goes back to it: `mi_free`,
// `mi_realloc` and `mi_realloc_aligned` take blocks from either entry point
// (they find the block's size from its page, and the aligned realloc checks
// the pointer's alignment before reusing it). Alignment per `plain` above,
// otherwise mimalloc's aligned calls guarantee it.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's entry points accept any size and a power-of-two
        // alignment, which `Layout` guarantees.
        unsafe {
            if plain(&layout) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if plain(&layout) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a block this allocator returned with
        // `layout`; the new block keeps its alignment by the same rule.
        unsafe {
            let new = Layout::from_size_align_unchecked(new_size, layout.align());
            if plain(&new) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates, writes, grows, shrinks and frees one block of `layout`,
    /// checking its alignment and contents at each step.
    fn round_trip(layout: Layout, zeroed: bool) {
        let a = Allocator;
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: non-zero sizes, blocks used within their size and freed
        // once with the layout they have.
        unsafe {
            let p = if zeroed {
                a.alloc_zeroed(layout)
            } else {
                a.alloc(layout)
            };
            assert!(!p.is_null(), "{size}/{align}");
            assert_eq!(p as usize % align, 0, "{size}/{align}");
            if zeroed {
                assert!((0..size).all(|i| *p.add(i) == 0), "{size}/{align} zeroed");
            }
            for i in 0..size {
                *p.add(i) = i as u8;
            }
            let grown = a.realloc(p, layout, size * 3);
            assert_eq!(grown as usize % align, 0, "{size}/{align} grown");
            assert!(
                (0..size).all(|i| *grown.add(i) == i as u8),
                "{size}/{align} kept"
            );
            let bigger = Layout::from_size_align(size * 3, align).expect("layout");
            let shrunk = a.realloc(grown, bigger, size.div_ceil(2));
            assert_eq!(shrunk as usize % align, 0, "{size}/{align} shrunk");
            assert!((0..size.div_ceil(2)).all(|i| *shrunk.add(i) == i as u8));
            let small = Layout::from_size_align(size.div_ceil(2), align).expect("layout");
            a.dealloc(shrunk, small);
        }
    }

    #[test]
    fn blocks_have_the_alignment_asked_for_on_both_paths() {
        let sizes = [
            1, 7, 8, 9, 15, 16, 24, 40, 100, 1000, 1025, 5000, 70_000, 300_000,
        ];
        for align in [1, 2, 8, 16, 32, 64, 128, 4096] {
            for size in sizes {
                let layout = Layout::from_size_align(size, align).expect("layout");
                round_trip(layout, false);
                round_trip(layout, true);
            }
        }
    }

    #[test]
    fn many_odd_sized_blocks_are_16_aligned_and_stay_apart() {
        // Enough blocks to fill whole pages of several of these size
        // classes, so that allocation leaves the per-class fast path for
        // the generic one (page full) again and again. Alignment 16 keeps
        // them all on the plain path: this checks the 16-byte guarantee
        // `plain` relies on, block by block.
        let a = Allocator;
        let mut blocks = Vec::new();
        for n in 0..20_000usize {
            let layout = Layout::from_size_align(24 + n % 200, MIN_ALIGN).expect("layout");
            assert!(plain(&layout));
            // SAFETY: non-zero size; written within it; freed below with it.
            let p = unsafe { a.alloc(layout) };
            assert!(!p.is_null());
            assert_eq!(p as usize % MIN_ALIGN, 0, "{layout:?}");
            // SAFETY: within the block just allocated.
            unsafe { p.write_bytes(n as u8, layout.size()) };
            blocks.push((p, layout, n as u8));
        }
        for (p, layout, fill) in blocks {
            // SAFETY: each block is live, of `layout`, filled with `fill`.
            unsafe {
                assert!((0..layout.size()).all(|i| *p.add(i) == fill));
                a.dealloc(p, layout);
            }
        }
    }
}
