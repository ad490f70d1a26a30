//! A connection's bounded send queue: the hub and the request handler put frames in, the
//! connection's writer takes them out.
//!
//! It replaces a tokio `mpsc` channel, which allocates its first block of 32 slots (about
//! 1.3 KB with its bookkeeping) when created: every idle connection paid for it. This one
//! holds one frame in place and allocates only behind it, gives that room back once it is
//! written, and wakes the writer only when the queue goes from empty to not empty.
//!
//! While the writer is idle it leaves the socket here ([`SendQueue::park`]). With direct
//! writes on (a runtime of one worker: `Edge::direct_writes`), a frame offered to an empty
//! queue is then written straight from the offering task when the socket takes it without
//! waiting: no writer wake-up, no task switch (that cycle was about 12% of a
//! sidecar's CPU in the fan-out profile). Whatever the socket does not take at once goes to
//! the front of the queue, and the writer, which must hold the socket to write, takes over;
//! so frames leave in the order they were offered, and a slow socket still only fills the
//! queue.
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

/// What became of a frame the queue took.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Written to the socket and flushed already.
    Written,
    /// Left for the writer.
    Queued,
}

/// A socket the queue can write to without waiting.
pub trait WriteNow: Send {
    /// Writes `frame` if the socket takes it now; never waits.
    fn write_now(&mut self, frame: Utf8Bytes) -> Direct;
}

/// The outcome of [`WriteNow::write_now`].
#[derive(Debug, PartialEq, Eq)]
pub enum Direct {
    /// Written and flushed.
    Written,
    /// Taken, but not yet all on the socket (or the socket failed): the writer must flush.
    Buffered,
    /// Not taken (the socket cannot take more now): the frame goes back to the queue.
    Refused(Utf8Bytes),
}

pub struct SendQueue<S = crate::edge::connection::Sink> {
    state: Mutex<State<S>>,
    capacity: usize,
    /// The writer waits here for a frame (or the close).
    ready: Notify,
    /// Senders waiting for room, and a writer waiting for its socket back from a direct
    /// write, wait here (one `Notify` for both: each is rare, and every connection pays for
    /// a `Notify`).
    freed: Notify,
}

struct State<S> {
    frames: Frames,
    closed: bool,
    /// Offers write to the parked socket themselves (else only the writer writes).
    direct: bool,
    /// The socket while the writer is idle; out of here while anyone writes to it.
    socket: Option<S>,
    /// Frames a direct write left in the socket's buffer: the writer flushes and counts them.
    unflushed: u32,
    /// The writer is waiting for the socket to come back from a direct write.
    writer_waits: bool,
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

    fn push_front(&mut self, frame: Utf8Bytes) {
        if let Some(head) = self.head.replace(frame) {
            self.rest.push_front(head);
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

/// The socket in the writer's hands, with the frames a direct write left unflushed: the
/// writer's next flush writes them, and it counts them then.
pub struct Checkout<S> {
    pub socket: S,
    pub unflushed: u32,
}

impl<S: WriteNow> SendQueue<S> {
    /// A queue of `capacity` frames; with `direct`, offers write to the parked socket
    /// themselves when nothing is queued (see the module's documentation).
    pub fn new(capacity: usize, direct: bool) -> SendQueue<S> {
        let state = State { frames: Frames::default(), closed: false, direct, socket: None, unflushed: 0, writer_waits: false };
        SendQueue { state: Mutex::new(state), capacity: capacity.max(1), ready: Notify::new(), freed: Notify::new() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<S>> {
        // A panic while holding this lock leaves the queue consistent (each operation is
        // one push or pop): keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues (or writes) without waiting.
    pub fn offer(&self, frame: Utf8Bytes) -> Result<Taken, Refused> {
        self.push(frame).map_err(|(why, _)| why)
    }

    /// Queues (or writes), waiting for room. None when the queue is closed.
    pub async fn send(&self, mut frame: Utf8Bytes) -> Option<Taken> {
        loop {
            let room = self.freed.notified();
            tokio::pin!(room);
            // Registered before the attempt: room made after it wakes this sender.
            room.as_mut().enable();
            match self.push(frame) {
                Ok(taken) => return Some(taken),
                Err((Refused::Closed, _)) => return None,
                Err((Refused::Full, back)) => frame = back,
            }
            room.await;
        }
    }

    /// Writes `frame` at once when nothing is queued and the socket is idle here, else
    /// queues it; or gives it back with the reason it was not taken.
    fn push(&self, frame: Utf8Bytes) -> Result<Taken, (Refused, Utf8Bytes)> {
        let mut state = self.state();
        if state.closed {
            return Err((Refused::Closed, frame));
        }
        if state.frames.len() >= self.capacity {
            return Err((Refused::Full, frame));
        }
        if state.direct
            && state.frames.len() == 0
            && state.unflushed == 0
            && let Some(socket) = state.socket.take()
        {
            drop(state);
            return Ok(self.write_now(socket, frame));
        }
        state.frames.push_back(frame);
        let first = state.frames.len() == 1;
        drop(state);
        // The writer takes everything queued each time it wakes: waking it for a frame
        // behind others would only cost a spurious wake-up.
        if first {
            self.ready.notify_one();
        }
        Ok(Taken::Queued)
    }

    /// Writes `frame` to the socket taken out of the queue (outside its lock: others queue
    /// meanwhile, behind this frame), then puts the socket back.
    fn write_now(&self, mut socket: S, frame: Utf8Bytes) -> Taken {
        let direct = socket.write_now(frame);
        let mut state = self.state();
        state.socket = Some(socket);
        let taken = match direct {
            Direct::Written => Taken::Written,
            Direct::Buffered => {
                state.unflushed += 1;
                Taken::Queued
            }
            // Ahead of anything queued while it was tried: it was offered first. (The
            // queue can hold one frame over its capacity this way, until the writer runs.)
            Direct::Refused(frame) => {
                state.frames.push_front(frame);
                Taken::Queued
            }
        };
        let writer_waits = std::mem::take(&mut state.writer_waits);
        drop(state);
        if taken == Taken::Queued {
            self.ready.notify_one();
        }
        if writer_waits {
            self.freed.notify_waiters();
        }
        taken
    }

    /// Leaves the socket here while the writer is idle: offers to an empty queue write to
    /// it directly.
    pub fn park(&self, socket: S) {
        self.state().socket = Some(socket);
    }

    /// Takes the socket back for the writer, waiting while a direct write has it. Only the
    /// writer calls this, and only after [`park`](Self::park).
    pub async fn checkout(&self) -> Checkout<S> {
        loop {
            let back = self.freed.notified();
            tokio::pin!(back);
            back.as_mut().enable();
            {
                let mut state = self.state();
                if let Some(socket) = state.socket.take() {
                    state.writer_waits = false;
                    return Checkout { socket, unflushed: std::mem::take(&mut state.unflushed) };
                }
                state.writer_waits = true;
            }
            back.await;
        }
    }

    /// Waits until the writer has something to do: frames queued or a direct write to
    /// flush. False once the queue is closed and nothing is left.
    pub async fn work(&self) -> bool {
        loop {
            let ready = self.ready.notified();
            {
                let state = self.state();
                if state.frames.len() > 0 || state.unflushed > 0 {
                    return true;
                }
                if state.closed {
                    return false;
                }
            }
            ready.await;
        }
    }

    /// The next frame if one is queued.
    pub fn try_recv(&self) -> Option<Utf8Bytes> {
        let mut state = self.state();
        let was_full = state.frames.len() >= self.capacity;
        let frame = state.frames.pop_front();
        drop(state);
        if was_full && frame.is_some() {
            self.freed.notify_waiters();
        }
        frame
    }

    /// Takes no more frames; the writer still gets those queued. Wakes everyone waiting.
    pub fn close(&self) {
        self.state().closed = true;
        self.ready.notify_one();
        self.freed.notify_waiters();
    }
}

/// Closes the queue when dropped: the writer holds one, so however it ends (socket error,
/// slow client, panic) senders waiting for room are released and later frames refused.
pub struct CloseOnDrop<S: WriteNow>(pub std::sync::Arc<SendQueue<S>>);

impl<S: WriteNow> Drop for CloseOnDrop<S> {
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

    /// A socket that answers direct writes as told and keeps what it took, in order.
    #[derive(Default)]
    struct Socket {
        answer: Vec<&'static str>,
        took: Arc<Mutex<Vec<Utf8Bytes>>>,
        /// Holds each write until a message arrives (to catch the writer waiting for it).
        hold: Option<std::sync::mpsc::Receiver<()>>,
    }

    impl WriteNow for Socket {
        fn write_now(&mut self, frame: Utf8Bytes) -> Direct {
            if let Some(hold) = &self.hold {
                hold.recv().expect("released");
            }
            match self.answer.pop().unwrap_or("written") {
                "refused" => Direct::Refused(frame),
                answer => {
                    self.took.lock().expect("lock").push(frame);
                    if answer == "buffered" { Direct::Buffered } else { Direct::Written }
                }
            }
        }
    }

    type Queue = SendQueue<Socket>;

    impl Queue {
        fn new_direct(capacity: usize) -> Queue {
            SendQueue::new(capacity, true)
        }
    }

    fn drained(q: &Queue) -> Vec<Utf8Bytes> {
        std::iter::from_fn(|| q.try_recv()).collect()
    }

    #[test]
    fn offers_beyond_the_capacity_are_refused_and_a_closed_queue_takes_nothing() {
        let q = Queue::new_direct(2);
        assert_eq!((q.offer(frame(1)), q.offer(frame(2)), q.offer(frame(3))), (Ok(Taken::Queued), Ok(Taken::Queued), Err(Refused::Full)));
        q.close();
        assert_eq!(q.offer(frame(4)), Err(Refused::Closed));
        // What was queued before the close is still handed out, in order.
        assert_eq!((q.try_recv(), q.try_recv(), q.try_recv()), (Some(frame(1)), Some(frame(2)), None));
    }

    /// A queue of one, full (frame 1), and a task sending frame 2 into it, already waiting.
    async fn full_with_a_waiting_sender() -> (Arc<Queue>, tokio::task::JoinHandle<Option<Taken>>) {
        let q = Arc::new(Queue::new_direct(1));
        assert_eq!(q.send(frame(1)).await, Some(Taken::Queued));
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
        assert!(q.work().await);
        assert_eq!(q.try_recv(), Some(frame(1)));
        assert_eq!(sender.await.expect("sender"), Some(Taken::Queued), "room was made: it sent");
        assert_eq!(q.try_recv(), Some(frame(2)));
        let writer = tokio::spawn({
            let q = q.clone();
            async move { q.work().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!writer.is_finished(), "nothing queued: the writer waits");
        assert!(q.offer(frame(3)).is_ok());
        assert!(writer.await.expect("writer"));
        assert_eq!(q.try_recv(), Some(frame(3)));
    }

    #[tokio::test]
    async fn closing_releases_a_waiting_sender_and_ends_the_writer_after_the_queued_frames() {
        let (q, sender) = full_with_a_waiting_sender().await;
        drop(CloseOnDrop(q.clone()));
        assert_eq!(sender.await.expect("sender"), None, "a closed queue refuses the waiting sender");
        assert!(q.work().await);
        assert_eq!(q.try_recv(), Some(frame(1)));
        assert!(!q.work().await);
    }

    #[test]
    fn an_emptied_queue_gives_its_room_back() {
        let q = Queue::new_direct(1000);
        for n in 0..500 {
            assert!(q.offer(frame(n)).is_ok());
        }
        while q.try_recv().is_some() {}
        assert_eq!(q.state().frames.rest.capacity(), 0);
    }

    #[tokio::test]
    async fn with_the_socket_parked_an_offer_to_an_empty_queue_is_written_at_once() {
        let q = Queue::new_direct(4);
        let socket = Socket::default();
        let took = socket.took.clone();
        q.park(socket);
        assert_eq!(q.offer(frame(1)), Ok(Taken::Written));
        assert_eq!(q.offer(frame(2)), Ok(Taken::Written));
        assert_eq!(*took.lock().expect("lock"), vec![frame(1), frame(2)]);
        assert!(drained(&q).is_empty(), "nothing was left for the writer");
        // Checked out, the socket is the writer's: offers queue.
        let held = q.checkout().await;
        assert_eq!(held.unflushed, 0);
        assert_eq!(q.offer(frame(3)), Ok(Taken::Queued));
        assert_eq!(drained(&q), vec![frame(3)]);
    }

    #[tokio::test]
    async fn without_direct_writes_only_the_writer_writes() {
        let q = SendQueue::new(4, false);
        let socket = Socket::default();
        let took = socket.took.clone();
        q.park(socket);
        assert_eq!(q.offer(frame(1)), Ok(Taken::Queued));
        assert!(took.lock().expect("lock").is_empty());
        assert!(q.work().await);
        let _held = q.checkout().await;
        assert_eq!(drained(&q), vec![frame(1)]);
    }

    #[tokio::test]
    async fn a_frame_the_socket_refuses_goes_ahead_of_later_ones_and_they_wait_for_the_writer() {
        let q = Queue::new_direct(4);
        let socket = Socket { answer: vec!["refused"], ..Socket::default() };
        let took = socket.took.clone();
        q.park(socket);
        assert_eq!(q.offer(frame(1)), Ok(Taken::Queued));
        // Something is queued: later frames queue behind it, even though the socket is idle.
        assert_eq!(q.offer(frame(2)), Ok(Taken::Queued));
        assert!(took.lock().expect("lock").is_empty());
        assert!(q.work().await, "the writer is told");
        assert_eq!(drained(&q), vec![frame(1), frame(2)]);
    }

    #[tokio::test]
    async fn a_frame_left_in_the_sockets_buffer_is_the_writers_to_flush_and_count() {
        let q = Queue::new_direct(4);
        q.park(Socket { answer: vec!["buffered"], ..Socket::default() });
        assert_eq!(q.offer(frame(1)), Ok(Taken::Queued), "not written yet: not counted as written");
        // Until the writer has flushed, later frames queue (they must not pass it).
        assert_eq!(q.offer(frame(2)), Ok(Taken::Queued));
        assert!(q.work().await);
        let held = q.checkout().await;
        assert_eq!(held.unflushed, 1);
        assert_eq!(drained(&q), vec![frame(2)]);
        q.park(held.socket);
        assert_eq!(q.offer(frame(3)), Ok(Taken::Written), "flushed and empty again: direct");
    }

    #[tokio::test]
    async fn the_writer_waits_for_its_socket_while_a_direct_write_has_it_and_frames_keep_their_order() {
        let q = Arc::new(Queue::new_direct(4));
        let (release, hold) = std::sync::mpsc::channel();
        let socket = Socket { answer: vec!["refused"], hold: Some(hold), ..Socket::default() };
        q.park(socket);
        let offering = std::thread::spawn({
            let q = q.clone();
            move || q.offer(frame(1))
        });
        // Frame 1 is with the socket; frame 2 queues meanwhile and wakes the writer.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while q.state().socket.is_some() {
            assert!(std::time::Instant::now() < deadline, "the direct write never started");
            std::thread::yield_now();
        }
        assert_eq!(q.offer(frame(2)), Ok(Taken::Queued));
        let writer = tokio::spawn({
            let q = q.clone();
            async move {
                let held = q.checkout().await;
                (drained(&q), held.unflushed)
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!writer.is_finished(), "the socket is out with the direct write: the writer waits");
        release.send(()).expect("release");
        assert_eq!(offering.join().expect("offering"), Ok(Taken::Queued));
        let (frames, unflushed) =
            tokio::time::timeout(Duration::from_secs(5), writer).await.expect("the writer got its socket").expect("writer");
        assert_eq!((frames, unflushed), (vec![frame(1), frame(2)], 0), "the refused frame goes first");
    }
}
