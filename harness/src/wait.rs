//! Bounded polling: every wait has a limit and says what it waited for.

use std::future::Future;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(50);

/// Polls `ok` every 50 ms for up to `timeout`; whether it turned true. Blocks the thread:
/// for synchronous tests.
pub fn poll_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(EVERY);
    }
}

/// [`poll_until`], panicking with `what` on time-out.
pub fn wait_until(what: &str, timeout: Duration, ok: impl FnMut() -> bool) {
    if !poll_until(timeout, ok) {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

/// The async form: sleeps on the runtime's timer between polls, never on a worker thread.
pub async fn wait_until_async<F: Future<Output = bool>>(what: &str, timeout: Duration, mut ok: impl FnMut() -> F) {
    let deadline = Instant::now() + timeout;
    loop {
        if ok().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
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

    #[tokio::test]
    async fn the_async_wait_yields_to_the_runtime() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let setter = flag.clone();
        // On a current-thread runtime this only finishes if the wait yields.
        tokio::spawn(async move { setter.store(true, std::sync::atomic::Ordering::SeqCst) });
        wait_until_async("the flag", Duration::from_secs(5), || {
            let f = flag.clone();
            async move { f.load(std::sync::atomic::Ordering::SeqCst) }
        })
        .await;
    }
}
