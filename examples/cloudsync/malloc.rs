//! glibc's allocator gives each thread that allocates its own arena, up to eight per CPU, and
//! keeps what was freed in each. The engine's threads are mostly blocking file-system calls
//! (listings, copies) that allocate entries freed later on another thread, so a walk of a big
//! tree spreads its short-lived entries over a dozen arenas: on a no-op sync of 200,000 files
//! with `--checkers 8` (2 CPUs) that was 21 MiB of peak memory against 17 MiB with the arenas
//! capped at one per CPU, in the same time (`scripts/bench.sh --scenarios tiny`).

/// Caps glibc's malloc arenas at one per CPU (at least two). Does nothing on other
/// allocators, or when `MALLOC_ARENA_MAX` is set (the user's choice stands).
pub(crate) fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let arenas = libc::c_int::try_from(cpus).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes a tuning parameter of the allocator; it is called
        // before the runtime starts any thread.
        let _ = unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    }
}
