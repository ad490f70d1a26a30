//! Subscribe, optionally with `since`: the algorithm that makes delivery exactly-once.
//!
//! 1. Join the hub in buffering mode; when `join` returns, Redis is delivering the channel
//!    to this pod and every later publication lands in the member's buffer.
//! 2. Read the channel's position (and, with `since`, the history after it).
//! 3. Send `subscribed` (with the exact `gap` when history no longer reaches `since`), then
//!    the history in pages, awaiting queue space between them (backpressure).
//! 4. Switch to live: buffered messages at or below the last sent offset are dropped as
//!    duplicates, the rest are sent in order. If the buffer overflowed meanwhile, read
//!    history again from the last sent offset and retry.
//!
//! A `since` past the stream's last entry (same epoch) is treated as no `since`: the
//! client starts at the end, told so by `recovered: false`.

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::delivery::hub::{GoLive, Hub, HubError, Outbox};
use crate::delivery::offset::{Offset, Position, gap_for};
use crate::edge::protocol;
use crate::metrics::{Metrics, OutcomeLabel};
use crate::store::channels::{ChannelError, ChannelStore};

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Redis(#[from] ChannelError),
    #[error("the client went away")]
    Closed,
    #[error("the client could not keep up with its history")]
    TooSlow,
}

/// How many times history is re-read after the live buffer overflowed.
const MAX_CATCH_UP_ROUNDS: usize = 8;

pub struct Subscribe<'a> {
    pub hub: &'a Hub,
    pub store: &'a ChannelStore,
    pub metrics: &'a Metrics,
    pub outbox: &'a Outbox,
    pub page_size: u32,
}

impl Subscribe<'_> {
    async fn send(&self, frame: String) -> Result<(), RecoveryError> {
        if self.outbox.send(Utf8Bytes::from(frame)).await { Ok(()) } else { Err(RecoveryError::Closed) }
    }

    /// Runs steps 1-4 and returns where the client starts: the position after which it is
    /// sent everything (its `since`, or the channel's end when it had none). On error the
    /// caller removes the member from the hub.
    pub async fn run(&self, id: Option<u64>, channel: &str, since: Option<Position>) -> Result<Position, RecoveryError> {
        self.hub.join(channel, self.outbox.clone()).await?;
        let want = if since.is_some() { self.page_size } else { 0 };
        let after = since.as_ref().map_or(Offset::ZERO, |p| p.offset);
        let mut page = self.store.read(channel, after, want).await?;
        // A `since` past the stream's end in the same epoch names messages this stream does
        // not hold (a forged offset, or history rewound by a failover that kept the epoch).
        // It is answered as a subscription from the end (`recovered: false`, no gap: nothing
        // the stream holds is missing) and never becomes the pod's position.
        let since = match since {
            Some(s) if s.epoch == page.epoch && s.offset > page.last => {
                self.metrics.recoveries.get_or_create(&OutcomeLabel { outcome: "ahead" }).inc();
                tracing::debug!(%channel, since = %s.offset, last = %page.last, "since is past the stream's end; subscribing from the end");
                None
            }
            other => other,
        };
        let gap = since.as_ref().and_then(|s| gap_for(s, &page.epoch, page.first, page.last));
        if let Some(s) = &since {
            let outcome = if gap.is_some() { "gap" } else { "recovered" };
            self.metrics.recoveries.get_or_create(&OutcomeLabel { outcome }).inc();
            if s.epoch != page.epoch {
                // The old stream is gone; everything of the new epoch is news to the client.
                page = self.store.read(channel, Offset::ZERO, self.page_size).await?;
            }
        }
        self.send(protocol::subscribed_frame(id, channel, page.last, &page.epoch, since.is_some() && gap.is_none(), gap.as_ref())).await?;
        let epoch = page.epoch.clone();
        let mut cursor = match &since {
            Some(s) if s.epoch == epoch => s.offset,
            Some(_) => Offset::ZERO,
            None => page.last,
        };
        let start = Position { offset: cursor, epoch: epoch.clone() };
        let mut stream_last = page.last;
        let mut rounds = 0;
        loop {
            // Send this page, then fetch the next until history is exhausted.
            loop {
                for (offset, data) in &page.entries {
                    if *offset > cursor {
                        self.send(protocol::message_frame(channel, *offset, &epoch, data)).await?;
                        cursor = *offset;
                    }
                }
                if page.entries.len() < self.page_size as usize {
                    break;
                }
                page = self.store.read(channel, cursor, self.page_size).await?;
                stream_last = page.last;
            }
            let position = Position { offset: cursor, epoch: epoch.clone() };
            match self.hub.go_live(channel, self.outbox.id, &position, stream_last) {
                GoLive::Live | GoLive::Gone => return Ok(start),
                GoLive::Overflowed if rounds < MAX_CATCH_UP_ROUNDS => {
                    rounds += 1;
                    page = self.store.read(channel, cursor, self.page_size).await?;
                    stream_last = page.last;
                }
                GoLive::Overflowed => return Err(RecoveryError::TooSlow),
            }
        }
    }
}
