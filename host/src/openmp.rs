//! OpenMP's idle threads sleep instead of spinning, unless the operator says
//! otherwise.
//!
//! Plugins may use OpenMP through their libraries (the rag plugin's Faiss
//! does). By default libgomp keeps a team's threads spinning for a while after
//! each parallel region, and when few OpenMP threads exist it spins long
//! enough to take a whole core from the next call's work: a lone client of the
//! rag plugin over a 10k-vector Faiss index waited 19 ms per search with query
//! batching on against 13 ms with it off, and 13 ms in both with
//! `OMP_WAIT_POLICY=passive` (measured on the 2-core machine of
//! BENCHMARKS.md). A server shares its cores between many calls, so passive
//! waiting is the better default. libgomp reads the variable once, when it is
//! loaded with the first plugin that needs it, so it is set at startup.

/// The variable libgomp reads.
pub const WAIT_POLICY: &str = "OMP_WAIT_POLICY";

/// Sets `OMP_WAIT_POLICY=passive` when the environment does not set it;
/// true when it did. Call it first thing, before any thread starts (the
/// environment is not safe to change once other threads may read it); plugin
/// runner processes inherit it.
pub fn prefer_passive_wait() -> bool {
    if std::env::var_os(WAIT_POLICY).is_some() {
        return false;
    }
    std::env::set_var(WAIT_POLICY, "passive");
    true
}
