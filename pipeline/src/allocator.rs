//! Transparent huge pages, chosen by what a process does with its memory.
//!
//! mimalloc (the binary's allocator) asks the kernel for transparent huge pages (2 MiB)
//! for its memory. That suits the stream processor, whose hot state is hundreds of MB
//! read at random: without huge pages its state machine runs ~20 % slower (TLB misses).
//! It does not suit queries, which allocate and free gigabytes within seconds: with
//! huge pages the kernel spent seconds zeroing pages for them (`clear_page_erms`, under
//! huge-page faults, was 31 % of a profile), most likely for huge pages mimalloc had
//! handed back in part and touched again. On the 1M-order bench lake a KPI process
//! (`orderpulse kpi carrier_transit_time`) spent 1.2-6.8 s of system time next to
//! ~6.5 s of user time, and 0.7-1.0 s without huge pages: 4.1-7.5 s of wall time became
//! 3.5-4.2 s. Served warm by `orderpulse run` (against huge pages with mimalloc purging
//! whole huge pages only, which had already cut some of it), 3.2-3.6 s became 2.8-2.9 s
//! (measured 2026-12-07; `benches/results/allocator-2026-12-07.json`). So only
//! `orderpulse process` keeps huge pages; every other command, `run` included (which
//! serves queries and whose state machine mostly keeps up with live input), turns them
//! off for itself.

/// What a process mostly does with its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// A long-lived state read at random (the stream processor alone): huge pages.
    StreamState,
    /// Queries, ingest and everything else: memory allocated and freed in bulk, no huge
    /// pages.
    Queries,
}

/// Sets the process up for `workload`. Call first thing, before the process has much
/// memory. A refusal is logged and otherwise ignored: the process is only slower.
pub fn configure(workload: Workload) {
    if workload == Workload::Queries {
        disable_transparent_huge_pages();
    }
}

fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `prctl(PR_SET_THP_DISABLE)` takes plain integers and touches no memory;
        // it applies to the whole process from the next page fault on.
        let result = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if result != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot turn transparent huge pages off");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the kernel gives this process transparent huge pages.
    #[cfg(target_os = "linux")]
    fn transparent_huge_pages_allowed() -> Option<bool> {
        // SAFETY: `prctl(PR_GET_THP_DISABLE)` takes plain integers and touches no memory.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        (disabled >= 0).then_some(disabled == 0)
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn queries_turn_huge_pages_off_and_the_stream_state_leaves_them() {
        // The test binary is one process: the stream state first, which changes nothing.
        let before = transparent_huge_pages_allowed();
        configure(Workload::StreamState);
        assert_eq!(transparent_huge_pages_allowed(), before);
        configure(Workload::Queries);
        assert_eq!(transparent_huge_pages_allowed(), Some(false));
    }
}
