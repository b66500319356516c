//! The copy lane: a few threads of this remote that run whole-file jobs one after another.
//!
//! `spawn_blocking` per file costs two wake-ups across threads per file on a busy sync: the
//! engine wakes an idle pool thread for each new file (the pool keeps a thread per file in
//! flight, so one is always idle when the next file comes), and the finished copy wakes the
//! engine. The lane has fewer threads than the engine keeps files in flight, so a thread
//! that finishes a file finds the next one already queued and takes it without sleeping:
//! what remains is the one wake-up that hands the result back. (`strace -f -c` of a first
//! sync of 10,000 small files counts the difference in `futex` calls; see the crate docs.)
//!
//! A job whose caller has gone (a cancelled or abandoned transfer) before a thread takes it
//! is dropped unrun. Threads start on demand and end after [`KEEP_ALIVE`] without work, or
//! when the lane is dropped and its queue is empty.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cloudsync_core::{Error, ErrorKind, Result};
use tokio::sync::oneshot;

/// How long a thread waits for work before it ends.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// A queued job: runs the work unless its caller is gone, and sends the result.
type Job = Box<dyn FnOnce() + Send>;

/// A fixed number of threads running queued jobs in order (see the module docs).
pub(crate) struct Lane {
    shared: Arc<Shared>,
    /// Most threads running at once.
    threads: usize,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a job is queued for an idle thread, or when the lane closes.
    ready: Condvar,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Threads started and not ended.
    started: usize,
    /// Threads waiting on `ready`.
    idle: usize,
    /// The lane was dropped: threads end once the queue is empty.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A job never runs under the lock, so a poisoned lock holds a consistent queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Lane {
    /// A lane of at most `threads` threads (at least one), none started yet.
    pub(crate) fn new(threads: usize) -> Self {
        Lane {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                ready: Condvar::new(),
            }),
            threads: threads.max(1),
        }
    }

    /// Runs `f` on a lane thread and returns its result. A panic in `f` is an
    /// [`ErrorKind::Unexpected`] error (the thread goes on with the next job). When the
    /// returned future is dropped before a thread took the job, `f` never runs.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<std::thread::Result<Result<T>>>();
        let job: Job = Box::new(move || {
            if tx.is_closed() {
                return; // the caller has gone: nothing waits for this copy
            }
            let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
        });
        self.submit(job)?;
        match rx.await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::new(ErrorKind::Unexpected, "a copy job panicked")),
            Err(_) => Err(Error::new(
                ErrorKind::Unexpected,
                "a copy job ended without a result",
            )),
        }
    }

    /// Queues `job`, waking an idle thread or starting one when none is idle and fewer than
    /// `threads` run. With every thread busy nothing is woken: the next thread to finish
    /// takes the job.
    fn submit(&self, job: Job) -> Result<()> {
        let mut st = self.shared.lock();
        st.jobs.push_back(job);
        if st.idle > 0 {
            drop(st);
            self.shared.ready.notify_one();
            return Ok(());
        }
        if st.started >= self.threads {
            return Ok(());
        }
        st.started += 1;
        let running = st.started;
        drop(st);
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("cloudsync-copy".into())
            .spawn(move || work(&shared));
        if let Err(e) = spawned {
            let mut st = self.shared.lock();
            st.started -= 1;
            if st.started == 0 {
                // No thread would ever take the queue: give the jobs back (dropping one
                // drops its sender, so its caller gets an error). Dropped outside the lock:
                // a job may hold the last reference to what owns this lane.
                let dropped = std::mem::take(&mut st.jobs);
                drop(st);
                drop(dropped);
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    format!("cannot start a copy thread: {e}"),
                ));
            }
            tracing::debug!(error = %e, running, "cannot start another copy thread");
        }
        Ok(())
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// A lane thread: takes jobs until the lane closes with an empty queue, or no job came for
/// [`KEEP_ALIVE`].
fn work(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if let Some(job) = st.jobs.pop_front() {
            drop(st);
            job();
            st = shared.lock();
            continue;
        }
        if st.closed {
            break;
        }
        st.idle += 1;
        let (next, timeout) = shared
            .ready
            .wait_timeout(st, KEEP_ALIVE)
            .unwrap_or_else(PoisonError::into_inner);
        st = next;
        st.idle -= 1;
        if timeout.timed_out() && st.jobs.is_empty() {
            break;
        }
    }
    st.started -= 1;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Never more jobs at once than threads, every job runs once, in a lane that outlives
    /// many more jobs than threads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_every_job_with_at_most_its_threads() {
        let lane = Arc::new(Lane::new(2));
        let (now, most, done) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let jobs = (0..64).map(|i| {
            let (lane, now, most, done) = (lane.clone(), now.clone(), most.clone(), done.clone());
            async move {
                lane.run(move || {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                    now.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                    Ok(i)
                })
                .await
            }
        });
        let results: Vec<Result<usize>> = futures::future::join_all(jobs).await;
        let got: Vec<usize> = results.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(got, (0..64).collect::<Vec<_>>());
        assert_eq!(done.load(Ordering::SeqCst), 64);
        let most = most.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most} jobs ran at once");
    }

    /// A panicking job is an error for its caller only; the lane keeps working.
    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_lane_goes_on() {
        let lane = Lane::new(1);
        let e = lane
            .run(|| -> Result<()> { panic!("boom") })
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unexpected, "{e}");
        assert_eq!(lane.run(|| Ok(7)).await.unwrap(), 7);
    }

    /// A job whose caller went away before a thread took it never runs (an abandoned
    /// transfer writes nothing).
    #[tokio::test]
    async fn a_job_abandoned_before_it_starts_never_runs() {
        let lane = Arc::new(Lane::new(1));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = oneshot::channel::<()>();
        // Occupies the only thread until released.
        let blocker = {
            let lane = lane.clone();
            tokio::spawn(async move {
                lane.run(move || {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                    Ok(())
                })
                .await
            })
        };
        started_rx.await.unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        {
            let ran = ran.clone();
            let queued = lane.run(move || {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
            // Polled once (queued), then dropped: the caller is gone.
            let mut queued = Box::pin(queued);
            assert!(futures::poll!(queued.as_mut()).is_pending());
        }
        release_tx.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        // A job queued after the abandoned one runs, so the abandoned one was passed over.
        lane.run(|| Ok(())).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}
