//! Keeps the agent's working buffers in the heap instead of mapping and unmapping them
//! for every use.
//!
//! glibc serves an allocation above its mmap threshold with a fresh mapping and gives
//! free heap above its trim threshold back to the kernel. The agent allocates a read
//! chunk (up to 256 KiB) per read, an aggregate (about 50 KiB) per shard every few
//! milliseconds and a request body per PutRecords call, so at full speed these pages
//! were faulted in, zeroed by the kernel and unmapped again, over and over. Serving up
//! to 1 MiB from the heap and keeping up to 16 MiB of free heap took about a tenth off
//! the agent's CPU per GB for 2-4 MiB more peak RSS (`bench/agent.sh`).

/// Sets the thresholds; call before the runtime starts its threads.
pub fn keep_buffers_in_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters, and glibc takes its own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
}
