//! One process-wide setting of glibc's allocator for a server process.

/// Turns glibc's *fastbins* off (`mallopt(M_MXFAST, 0)`) so that no later
/// allocation stops the thread to merge them. Call it once, first thing in
/// `main`, in a process that serves an exchange; `effex serve` does. Returns
/// whether it applied (always false where the C library is not glibc: there
/// is nothing to do).
///
/// Why: glibc keeps small freed chunks on per-size fastbins and merges all of
/// them (`malloc_consolidate`) at the next large request. When 100,000
/// watched items expired in a few seconds, the hub thread of a memory-store
/// node ran 52 ms without a break in that merge (perf), and expiry pushes
/// were up to 215 ms late (p99 up to 113 ms; 5–8 ms with this call). With
/// fastbins off, small frees still go to glibc's per-thread cache first.
/// What it costs, back to back on the 2-core VM: in `bench_cluster` the
/// writes/s and the node CPU per write did not change beyond the swing
/// between runs, and the memory per stored 1 KiB item stayed at
/// 1,407–1,410 B; the idle-heartbeat workload of `bench/run` (10,000 idle
/// connections) took ~10% more CPU (6.5–7.2% of a core, scaled to 50,000
/// connections, against 5.8–6.5% without; memory per connection 6.6 vs
/// 6.7 KiB). (mimalloc, tried as the binary's allocator, also ended the
/// stalls but took 1,845–2,001 B per stored 1 KiB item: its size classes
/// round a 1 KiB value up to 1,280 bytes.)
pub fn tune_malloc() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only reads its two integer arguments and takes
        // glibc's own arena locks; any thread may call it at any time.
        unsafe { libc::mallopt(libc::M_MXFAST, 0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #[test]
    fn glibc_takes_the_setting() {
        assert!(super::tune_malloc(), "mallopt(M_MXFAST, 0) was refused");
    }
}
