//! Work that may wait: threads that must not take the CPU from the paths a client is
//! waiting on (the commits that acknowledge HTTP requests, the API's answers).
//!
//! On two cores, a stream checkpoint (the state serialised, `order_status` merged) or a
//! Delta log checkpoint at normal priority held HTTP acknowledgements up by a few hundred
//! milliseconds. At a lower priority the scheduler gives them only the time the request
//! paths leave, which on an unsaturated machine is all they need.

use std::future::Future;

/// How far behind the request paths a thread runs (its Linux nice value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Stream processing and KPI rollups: behind requests, ahead of housekeeping.
    Deferred,
    /// Housekeeping (Delta log checkpoints): only on time nothing else wants.
    Idle,
}

impl Priority {
    fn nice(self) -> i32 {
        match self {
            Priority::Deferred => 10,
            Priority::Idle => 19,
        }
    }
}

/// Lowers the calling thread to `priority` (never raises it: a process started with a
/// higher nice keeps it); threads it starts inherit it. On Linux, nice is per thread;
/// elsewhere this does nothing. A refusal is logged and otherwise ignored: the work is
/// only slower to give way.
pub fn lower_this_threads_priority(priority: Priority) {
    #[cfg(target_os = "linux")]
    {
        let nice = priority.nice().max(this_threads_nice());
        // SAFETY: `setpriority` takes plain integers and touches no memory of ours.
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, this_thread(), nice) };
        if result != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a background thread's priority");
        }
    }
}

#[cfg(target_os = "linux")]
fn this_thread() -> libc::id_t {
    // SAFETY: `gettid` has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::id_t }
}

/// The calling thread's nice value (`getpriority` cannot fail for the caller's own id).
#[cfg(target_os = "linux")]
fn this_threads_nice() -> i32 {
    // SAFETY: `getpriority` takes plain integers and touches no memory of ours.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, this_thread()) }
}

/// Runs `work` to its end on a runtime of its own (two workers), every thread of it at
/// `priority`, on a thread named `name`. Returns once the thread is started, with its
/// handle (the thread ends when `work` does).
pub fn spawn_runtime<F>(name: &str, priority: Priority, work: F) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .on_thread_start(move || lower_this_threads_priority(priority))
        .enable_all()
        .build()?;
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        lower_this_threads_priority(priority);
        runtime.block_on(work);
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn only_the_calling_thread_and_its_children_are_lowered() {
        let before = this_threads_nice();
        let lowered = std::thread::spawn(|| {
            lower_this_threads_priority(Priority::Idle);
            let child = std::thread::spawn(this_threads_nice).join().unwrap();
            (this_threads_nice(), child)
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (19, 19), "Idle is the lowest priority there is");
        assert_eq!(this_threads_nice(), before);
    }

    #[test]
    fn a_background_runtime_runs_its_tasks_at_its_priority() {
        let expected = this_threads_nice().max(10);
        let (tx, rx) = std::sync::mpsc::channel();
        spawn_runtime("op-test-deferred", Priority::Deferred, async move {
            let on_worker = tokio::spawn(async { this_threads_nice() }).await.unwrap();
            let on_blocking = tokio::task::spawn_blocking(this_threads_nice).await.unwrap();
            tx.send((this_threads_nice(), on_worker, on_blocking)).unwrap();
        })
        .unwrap();
        assert_eq!(rx.recv().unwrap(), (expected, expected, expected));
    }
}
