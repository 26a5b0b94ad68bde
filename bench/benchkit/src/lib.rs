//! What the harness's programs share (the load generator, the push source
//! and the effex client program): this process's CPU time, a monotonic clock
//! that two processes on one machine can compare, and percentiles.

/// This process's user + system CPU time in µs, all its threads
/// (getrusage RUSAGE_SELF); 0 if the call fails.
pub fn cpu_us() -> u64 {
    // SAFETY: getrusage only writes the struct we hand it.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0;
        }
        let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        tv(usage.ru_utime) + tv(usage.ru_stime)
    }
}

/// CLOCK_MONOTONIC in µs. The same clock in every process of the machine
/// (and the one Node's `process.hrtime` reads), so a time stamped into a
/// frame by one process can be subtracted from this in another.
pub fn mono_us() -> u64 {
    // SAFETY: clock_gettime only writes the struct we hand it.
    unsafe {
        let mut t: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) != 0 {
            return 0;
        }
        t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1_000
    }
}

/// The `p` quantile (0..=1, nearest rank) of an ascending slice; 0 if empty.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// At most this many latency samples are kept per run (8 MiB of u64); later
/// ones are counted but not kept, so percentiles cover the first ones.
pub const MAX_SAMPLES: usize = 1 << 20;

/// The read buffer of the harness's raw WebSocket connections
/// (tokio-tungstenite's `read_buffer_size`). Its default, 128 KiB, is
/// allocated per connection and zero-filled up to that size before every
/// read: a profile of the load generator in fan-out (a) showed 40% of its
/// CPU in `memset`, and 10,000 idle connections would hold 1.25 GiB. Our
/// frames are under 200 bytes; 4 KiB reads them all in one go.
pub const WS_READ_BUFFER: usize = 4 * 1024;

/// The command line as `--name value` pairs (every option takes a value).
pub fn option_map() -> Result<std::collections::HashMap<String, String>, String> {
    let mut map = std::collections::HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        let name = name
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {name:?} (options are --name value)"))?
            .to_string();
        let value = args
            .next()
            .ok_or_else(|| format!("--{name} needs a value"))?;
        map.insert(name, value);
    }
    Ok(map)
}
