//! Counts the bytes each thread holds (as glibc would: request + 8, rounded
//! up to 16, at least 32), so a program can measure what the store keeps per
//! item when the store's work runs on its own thread. Install it with
//! `#[global_allocator] static A: counting::Counting = counting::Counting;`.
//! Shared by `bench_rest` and `tests/store.rs` (via `#[path]`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Counting;

thread_local! {
    static HELD: Cell<i64> = const { Cell::new(0) };
}

fn chunk(layout: Layout) -> i64 {
    (((layout.size() + 8).max(32) + 15) & !15) as i64
}

fn add(delta: i64) {
    let _ = HELD.try_with(|held| held.set(held.get() + delta));
}

/// Bytes held by this thread's allocations.
pub fn held() -> i64 {
    HELD.with(|held| held.get())
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(chunk(layout));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-chunk(layout));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(chunk(layout));
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(-chunk(layout));
        // SAFETY: the caller guarantees `new_size` is valid for `layout.align()`.
        add(chunk(unsafe {
            Layout::from_size_align_unchecked(new_size, layout.align())
        }));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
