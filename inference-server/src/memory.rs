//! Handing back to the system the memory a model's loading freed.
//!
//! Loading a large tree ensemble parses its attributes into millions of
//! small blocks (a byte string per node, in tract's protobuf) and frees them
//! once the forest is laid out. glibc's allocator returns freed memory to
//! the system only from the top of its heaps, so without help those pages
//! stay resident for the life of the process: the benchmark's 99.5 MB
//! ensemble kept about 90 MB beyond its forest.

/// Asks glibc to return every whole free page of its heaps
/// (`malloc_trim(0)`); elsewhere (musl, macOS) nothing, as their allocators
/// return memory themselves. Call it at a quiet moment: it walks and locks
/// every arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_freed() {
    // SAFETY: malloc_trim takes no pointers and only rearranges the
    // allocator's own free lists, under the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// See the glibc version above.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed() {}
