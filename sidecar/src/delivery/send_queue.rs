//! A connection's bounded send queue: the hub and the request handler put frames in, the
//! connection's writer takes them out.
//!
//! It replaces a tokio `mpsc` channel, which allocates its first block of 32 slots (about
//! 1.3 KB with its bookkeeping) when created: every idle connection paid for it. This one
//! holds one frame in place and allocates only behind it, gives that room back once it is
//! written, and wakes the writer only when the queue goes from empty to not empty.
//!
//! The queue is closed explicitly ([`SendQueue::close`]), by the connection when it is done
//! or by the writer when the socket is gone: what is queued then is still handed to the
//! writer, nothing new is taken.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Full,
    Closed,
}

pub struct SendQueue {
    state: Mutex<State>,
    capacity: usize,
    /// The writer waits here for a frame (or the close).
    ready: Notify,
    /// Senders that wait for room wait here.
    room: Notify,
}

#[derive(Default)]
struct State {
    frames: Frames,
    closed: bool,
}

/// Frames in order: the first in place, the rest behind it. Most connections get one frame
/// at a time, which then costs no allocation; the room a burst took is given back once it
/// is written (most connections are idle most of the time, and room kept by each adds up).
#[derive(Default)]
struct Frames {
    /// Empty only when `rest` is.
    head: Option<Utf8Bytes>,
    rest: VecDeque<Utf8Bytes>,
}

impl Frames {
    fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.len()
    }

    fn push_back(&mut self, frame: Utf8Bytes) {
        if self.head.is_none() {
            self.head = Some(frame);
        } else {
            self.rest.push_back(frame);
        }
    }

    fn pop_front(&mut self) -> Option<Utf8Bytes> {
        let frame = self.head.take()?;
        self.head = self.rest.pop_front();
        if self.rest.is_empty() && self.rest.capacity() > 0 {
            self.rest = VecDeque::new();
        }
        Some(frame)
    }
}

impl SendQueue {
    pub fn new(capacity: usize) -> SendQueue {
        SendQueue { state: Mutex::new(State::default()), capacity: capacity.max(1), ready: Notify::new(), room: Notify::new() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves the queue consistent (each operation is
        // one push or pop): keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues without waiting.
    pub fn offer(&self, frame: Utf8Bytes) -> Result<(), Refused> {
        self.push(frame).map_err(|(why, _)| why)
    }

    /// Queues, waiting for room. False when the queue is closed.
    pub async fn send(&self, mut frame: Utf8Bytes) -> bool {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before the attempt: room made after it wakes this sender.
            room.as_mut().enable();
            match self.push(frame) {
                Ok(()) => return true,
                Err((Refused::Closed, _)) => return false,
                Err((Refused::Full, back)) => frame = back,
            }
            room.await;
        }
    }

    /// Queues `frame`, or gives it back with the reason it was not.
    fn push(&self, frame: Utf8Bytes) -> Result<(), (Refused, Utf8Bytes)> {
        let mut state = self.state();
        if state.closed {
            return Err((Refused::Closed, frame));
        }
        if state.frames.len() >= self.capacity {
            return Err((Refused::Full, frame));
        }
        state.frames.push_back(frame);
        let first = state.frames.len() == 1;
        drop(state);
        // The writer takes everything queued each time it wakes: waking it for a frame
        // behind others would only cost a spurious wake-up.
        if first {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// The next frame, waiting for one; None once the queue is closed and empty.
    pub async fn recv(&self) -> Option<Utf8Bytes> {
        loop {
            let ready = self.ready.notified();
            match self.take() {
                (Some(frame), _) => return Some(frame),
                (None, true) => return None,
                (None, false) => ready.await,
            }
        }
    }

    /// The next frame if one is queued.
    pub fn try_recv(&self) -> Option<Utf8Bytes> {
        self.take().0
    }

    /// The next frame if one is queued, and whether the queue is closed: one lock for both.
    fn take(&self) -> (Option<Utf8Bytes>, bool) {
        let mut state = self.state();
        let was_full = state.frames.len() >= self.capacity;
        let frame = state.frames.pop_front();
        let closed = state.closed;
        drop(state);
        if was_full && frame.is_some() {
            self.room.notify_waiters();
        }
        (frame, closed)
    }

    /// Takes no more frames; the writer still gets those queued. Wakes everyone waiting.
    pub fn close(&self) {
        self.state().closed = true;
        self.ready.notify_one();
        self.room.notify_waiters();
    }
}

/// Closes the queue when dropped: the writer holds one, so however it ends (socket error,
/// slow client, panic) senders waiting for room are released and later frames refused.
pub struct CloseOnDrop(pub std::sync::Arc<SendQueue>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn frame(n: usize) -> Utf8Bytes {
        Utf8Bytes::from(n.to_string())
    }

    #[test]
    fn offers_beyond_the_capacity_are_refused_and_a_closed_queue_takes_nothing() {
        let q = SendQueue::new(2);
        assert_eq!((q.offer(frame(1)), q.offer(frame(2)), q.offer(frame(3))), (Ok(()), Ok(()), Err(Refused::Full)));
        q.close();
        assert_eq!(q.offer(frame(4)), Err(Refused::Closed));
        // What was queued before the close is still handed out, in order.
        assert_eq!((q.try_recv(), q.try_recv(), q.try_recv()), (Some(frame(1)), Some(frame(2)), None));
    }

    /// A queue of one, full (frame 1), and a task sending frame 2 into it, already waiting.
    async fn full_with_a_waiting_sender() -> (Arc<SendQueue>, tokio::task::JoinHandle<bool>) {
        let q = Arc::new(SendQueue::new(1));
        assert!(q.send(frame(1)).await);
        let sender = tokio::spawn({
            let q = q.clone();
            async move { q.send(frame(2)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sender.is_finished(), "the queue is full: the sender waits");
        (q, sender)
    }

    #[tokio::test]
    async fn a_sender_waits_for_room_and_the_writer_for_frames() {
        let (q, sender) = full_with_a_waiting_sender().await;
        assert_eq!(q.recv().await, Some(frame(1)));
        assert!(sender.await.expect("sender"), "room was made: it sent");
        assert_eq!(q.recv().await, Some(frame(2)));
        let writer = tokio::spawn({
            let q = q.clone();
            async move { q.recv().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(q.offer(frame(3)).is_ok());
        assert_eq!(writer.await.expect("writer"), Some(frame(3)));
    }

    #[tokio::test]
    async fn closing_releases_a_waiting_sender_and_ends_the_writer_after_the_queued_frames() {
        let (q, sender) = full_with_a_waiting_sender().await;
        drop(CloseOnDrop(q.clone()));
        assert!(!sender.await.expect("sender"), "a closed queue refuses the waiting sender");
        assert_eq!(q.recv().await, Some(frame(1)));
        assert_eq!(q.recv().await, None);
    }

    #[test]
    fn an_emptied_queue_gives_its_room_back() {
        let q = SendQueue::new(1000);
        for n in 0..500 {
            assert!(q.offer(frame(n)).is_ok());
        }
        while q.try_recv().is_some() {}
        assert_eq!(q.state().frames.rest.capacity(), 0);
    }
}
