//! Bounded polling: every wait has a limit and says what it waited for.

use std::future::Future;

use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(50);

/// Runs the blocking `f` (a poll, a `redis-cli`, a synchronous HTTP request). Called from a
/// multi-thread runtime's worker (an async test), it runs through `block_in_place`, which
/// hands the worker's other tasks to another thread meanwhile, so a synchronous wait never
/// stalls the tasks it is waiting for; anywhere else it simply runs.
pub fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Polls `ok` every 50 ms for up to `timeout`; whether it turned true. Blocks the calling
/// thread, never an async worker (see [`off_worker`]).
pub fn poll_until(timeout: Duration, ok: impl FnMut() -> bool) -> bool {
    off_worker(|| poll_blocking(timeout, EVERY, ok))
}

fn poll_blocking(timeout: Duration, every: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// [`poll_until`], panicking with `what` on time-out.
pub fn wait_until(what: &str, timeout: Duration, ok: impl FnMut() -> bool) {
    wait_until_every(what, timeout, EVERY, ok)
}

/// [`wait_until`] polling every `every`: for polls that are expensive themselves.
pub fn wait_until_every(what: &str, timeout: Duration, every: Duration, ok: impl FnMut() -> bool) {
    if !off_worker(|| poll_blocking(timeout, every, ok)) {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

/// The async form of [`poll_until`]: sleeps on the runtime's timer between polls, never on a
/// worker thread; whether `ok` turned true within `timeout`.
pub async fn poll_until_async<F: Future<Output = bool>>(timeout: Duration, mut ok: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ok().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_stops_at_its_limit() {
        let start = Instant::now();
        assert!(!poll_until(Duration::from_millis(120), || false));
        assert!(start.elapsed() < Duration::from_secs(2));
        let mut n = 0;
        assert!(poll_until(Duration::from_secs(5), || {
            n += 1;
            n == 3
        }));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_synchronous_wait_in_a_task_lets_the_runtime_run_the_others() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (setter, seen) = (flag.clone(), flag.clone());
        // The test body runs on its own thread; a spawned task takes the one worker. The
        // setter, spawned from inside it, only runs if the wait gives the worker up.
        let waiter = tokio::spawn(async move {
            tokio::spawn(async move { setter.store(true, std::sync::atomic::Ordering::SeqCst) });
            poll_until(Duration::from_secs(2), || seen.load(std::sync::atomic::Ordering::SeqCst))
        });
        assert!(waiter.await.expect("the waiting task"), "the setter never ran while the task waited");
    }

    #[tokio::test]
    async fn the_async_wait_yields_to_the_runtime() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let setter = flag.clone();
        // On a current-thread runtime this only finishes if the wait yields.
        tokio::spawn(async move { setter.store(true, std::sync::atomic::Ordering::SeqCst) });
        let set = poll_until_async(Duration::from_secs(5), || {
            let f = flag.clone();
            async move { f.load(std::sync::atomic::Ordering::SeqCst) }
        })
        .await;
        assert!(set, "the flag was set while the wait yielded");
    }
}
