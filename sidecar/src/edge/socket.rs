//! A connection's TCP socket, shared by tungstenite (which reads frames, and writes
//! replies, pings and close frames) and by direct writes of server frames from the fan-out
//! path ([`RawFrames`]).
//!
//! A server frame is unmasked, so a text frame is two to ten bytes of header and the
//! payload as it is: a direct write sends both with one `writev`, straight from the shared
//! payload, without tungstenite's per-frame path (its waker registration, the split sink's
//! lock, formatting into its buffer). That path was about 8.5% of a sidecar's CPU in the
//! fan-out profile (`bench/RESULTS.md`).
//!
//! Writers never interleave within a frame: a direct write is tried only at a frame
//! boundary of the byte stream, that is when tungstenite has no frame partly written
//! (`tungstenite_pending`: its last write took less than it was given, or had to wait) and
//! no earlier direct write has a rest left. The rest of a frame the socket took only part
//! of is written by the next write or flush tungstenite makes, before its own bytes, so
//! bytes leave in the order they were taken. Once the peer's close frame was read or the
//! connection is ending ([`RawFrames::close`]), nothing more is written directly: what
//! tungstenite refuses after a close must not go out behind its back.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;

struct Shared {
    tcp: TcpStream,
    state: Mutex<WriteState>,
}

#[derive(Default)]
struct WriteState {
    /// What a direct write left unwritten of its frame: written before anything else.
    rest: Option<Bytes>,
    /// Tungstenite has bytes it tried to write and could not, all or part of a frame.
    tungstenite_pending: bool,
    /// No more direct writes.
    closed: bool,
    /// A direct write failed: the next write or flush reports it (the frame counted as
    /// taken must not count as written).
    failed: Option<io::ErrorKind>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, WriteState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes what a direct write left, if anything; Ready(Ok) once nothing is left.
    fn poll_rest(&self, state: &mut WriteState, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(kind) = state.failed {
            return Poll::Ready(Err(io::Error::from(kind)));
        }
        while let Some(rest) = state.rest.as_mut() {
            match self.poll_write_some(cx, rest) {
                Poll::Ready(Ok(n)) => rest.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            if rest.is_empty() {
                state.rest = None;
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_write_some(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.tcp.poll_write_ready(cx))?;
            match self.tcp.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }
}

/// The socket as tungstenite reads and writes it.
pub struct Io {
    shared: Arc<Shared>,
    /// Bytes the HTTP server read past the upgrade request: the client's first frames.
    read_ahead: Bytes,
}

/// Direct writes of whole text frames, for the connection's parked sink.
#[derive(Clone)]
pub struct RawFrames {
    shared: Arc<Shared>,
}

/// The outcome of [`RawFrames::try_text`].
#[derive(Debug, PartialEq, Eq)]
pub enum RawWrite {
    /// All on the socket.
    Written,
    /// Part of it is on the socket, the rest is kept and goes before anything else; or the
    /// write failed, and the next flush reports it. Either way a flush is owed.
    Partial,
    /// Nothing written: the socket is full.
    Full,
    /// Not tried: another writer is mid-frame, or the connection is ending.
    NotNow,
}

/// Splits an upgraded connection into tungstenite's socket and the direct writer; gives
/// it back when it is not a plain TCP one (the server only makes those).
pub fn from_upgraded(upgraded: Upgraded) -> Result<(Io, RawFrames), Upgraded> {
    let parts = upgraded.downcast::<TokioIo<TcpStream>>()?;
    // A copy: `read_buf` is a view into the HTTP server's read buffer (8 KiB and more), and
    // keeping even an empty view keeps all of it, for as long as the connection lives.
    Ok(share(parts.io.into_inner(), Bytes::copy_from_slice(&parts.read_buf)))
}

/// Shares `tcp` (with bytes already read from it) between tungstenite and direct writes.
pub fn share(tcp: TcpStream, read_ahead: Bytes) -> (Io, RawFrames) {
    let shared = Arc::new(Shared { tcp, state: Mutex::new(WriteState::default()) });
    (Io { shared: shared.clone(), read_ahead }, RawFrames { shared })
}

/// A text frame's header, unmasked (server to client), FIN set.
fn text_header(len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x81;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if len <= u16::MAX as usize {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

impl RawFrames {
    /// Writes `text` as one text frame if the stream is at a frame boundary, without
    /// waiting.
    pub fn try_text(&self, text: &Utf8Bytes) -> RawWrite {
        let mut state = self.shared.state();
        if state.closed || state.tungstenite_pending || state.rest.is_some() || state.failed.is_some() {
            return RawWrite::NotNow;
        }
        let payload = text.as_bytes();
        let (header, h) = text_header(payload.len());
        let total = h + payload.len();
        match self.shared.tcp.try_write_vectored(&[IoSlice::new(&header[..h]), IoSlice::new(payload)]) {
            Ok(n) if n == total => RawWrite::Written,
            Ok(0) => RawWrite::Full,
            Ok(n) => {
                let mut rest = Vec::with_capacity(total - n);
                if n < h {
                    rest.extend_from_slice(&header[n..h]);
                    rest.extend_from_slice(payload);
                } else {
                    rest.extend_from_slice(&payload[n - h..]);
                }
                state.rest = Some(Bytes::from(rest));
                RawWrite::Partial
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => RawWrite::Full,
            Err(e) => {
                state.failed = Some(e.kind());
                RawWrite::Partial
            }
        }
    }

    /// No more direct writes: the peer's close frame was read, or the connection ends.
    pub fn close(&self) {
        self.shared.state().closed = true;
    }
}

impl AsyncRead for Io {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.read_ahead.is_empty() {
            let n = self.read_ahead.len().min(buf.remaining());
            buf.put_slice(&self.read_ahead[..n]);
            self.read_ahead.advance(n);
            return Poll::Ready(Ok(()));
        }
        loop {
            std::task::ready!(self.shared.tcp.poll_read_ready(cx))?;
            match self.shared.tcp.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let shared = &self.shared;
        let mut state = shared.state();
        // Whatever happens below, until all of `buf` is written tungstenite holds part of
        // a frame.
        state.tungstenite_pending = true;
        std::task::ready!(shared.poll_rest(&mut state, cx))?;
        let written = std::task::ready!(shared.poll_write_some(cx, buf))?;
        state.tungstenite_pending = written < buf.len();
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shared = &self.shared;
        let mut state = shared.state();
        shared.poll_rest(&mut state, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shared = &self.shared;
        let mut state = shared.state();
        state.closed = true;
        std::task::ready!(shared.poll_rest(&mut state, cx))?;
        Poll::Ready(socket2::SockRef::from(&shared.tcp).shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    fn text(i: usize) -> Utf8Bytes {
        // Sizes across the three header forms, most above a small socket buffer's share.
        let len = [10, 200, 3_000, 200_000][i % 4] + i % 7;
        let mut s = format!("{i}:");
        s.extend(std::iter::repeat_n(char::from(b'a' + (i % 26) as u8), len));
        Utf8Bytes::from(s)
    }

    /// Direct writes and tungstenite's (frames, and pongs to the client's pings from the
    /// reading half) share one socket whose buffers are small and whose reader is slow, so
    /// direct writes are cut short and refused: every frame must still arrive whole and in
    /// order.
    #[tokio::test(flavor = "current_thread")]
    async fn direct_and_tungstenite_writes_never_interleave_within_a_frame() {
        const FRAMES: usize = 400;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        socket2::SockRef::from(&server).set_send_buffer_size(65_536).expect("sndbuf");
        socket2::SockRef::from(&client).set_recv_buffer_size(65_536).expect("rcvbuf");
        let (io, raw) = share(server, Bytes::new());
        let (mut sink, mut stream) = WebSocketStream::from_raw_socket(io, Role::Server, None).await.split();
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
        let client = tokio::spawn(async move {
            let mut ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
            let mut got = 0;
            while got < FRAMES {
                match tokio::time::timeout(std::time::Duration::from_secs(20), ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => {
                        assert_eq!(t, text(got), "frame {got} arrived whole and in order");
                        got += 1;
                        if got % 25 == 0 {
                            ws.send(Message::Ping(Bytes::from_static(b"p"))).await.expect("ping");
                            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    other => panic!("after {got} frames: {other:?}"),
                }
            }
            got
        });
        let mut outcomes = std::collections::BTreeMap::new();
        for i in 0..FRAMES {
            let frame = text(i);
            let outcome = if i % 5 == 0 { RawWrite::NotNow } else { raw.try_text(&frame) };
            match outcome {
                RawWrite::Written => {}
                // Its rest goes out ahead of anything written next, direct or not.
                RawWrite::Partial => {
                    assert_eq!(raw.try_text(&text(i)), RawWrite::NotNow, "no direct write behind a rest");
                    sink.flush().await.expect("flush")
                }
                RawWrite::Full | RawWrite::NotNow => sink.send(Message::Text(frame)).await.expect("send"),
            }
            *outcomes.entry(format!("{outcome:?}")).or_insert(0) += 1;
        }
        assert_eq!(client.await.expect("client"), FRAMES);
        assert!(outcomes.get("Written").is_some_and(|n| *n > 0), "{outcomes:?}");
        assert!(outcomes.get("Partial").is_some_and(|n| *n > 0), "some direct writes were cut short: {outcomes:?}");
        raw.close();
        assert_eq!(raw.try_text(&text(0)), RawWrite::NotNow, "closed: nothing more goes out directly");
        reader.abort();
    }

    #[test]
    fn text_headers_use_the_shortest_length_form() {
        assert_eq!(&text_header(0).0[..text_header(0).1], &[0x81, 0]);
        assert_eq!(&text_header(125).0[..2], &[0x81, 125]);
        assert_eq!(text_header(125).1, 2);
        assert_eq!(&text_header(126).0[..4], &[0x81, 126, 0, 126]);
        assert_eq!(&text_header(65_535).0[..4], &[0x81, 126, 0xff, 0xff]);
        assert_eq!(&text_header(65_536).0[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }
}
