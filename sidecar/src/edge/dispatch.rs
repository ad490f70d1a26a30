//! A connection's requests: each client frame parsed, authorised and answered in order
//! (subscribe with `since`, publish, presence, ephemeral keys, history), replies queued on
//! the connection's outbox and never dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::delivery::hub::Outbox;
use crate::delivery::offset::{Offset, Position};
use crate::delivery::recovery::Subscribe;
use crate::delivery::session::Session;
use crate::edge::auth::{Action, Identity};
use crate::edge::protocol::{self, ErrorCode, Op, ProtocolError, Request};
use crate::edge::server::Edge;
use crate::store::channels::{ChannelError, PublishFailure};

/// A failed publish, answered as what the client may conclude: `unavailable` only when it
/// was certainly not published. The app API answers the same (`app_api.rs`).
pub(super) fn publish_error(id: Option<u64>, e: &ChannelError) -> ProtocolError {
    match e.publish_failure() {
        PublishFailure::NotPublished => ProtocolError::new(id, ErrorCode::Unavailable, format!("not published: Redis is unavailable: {e}")),
        PublishFailure::Unconfirmed => ProtocolError::new(
            id,
            ErrorCode::Unconfirmed,
            format!("{e}; publish again with the same \"pid\" to have it stored exactly once"),
        ),
        PublishFailure::NotDurable => ProtocolError::new(id, ErrorCode::NotDurable, e.to_string()),
    }
}

/// One connection's request state: who it is, its session, where replies go.
pub(super) struct Conn {
    pub(super) edge: Arc<Edge>,
    pub(super) identity: Identity,
    /// Its subscriptions and positions, checkpointed to Redis (`session.rs`).
    pub(super) session: Arc<Session>,
    /// Resumed from a token: presence re-joins silently.
    pub(super) resumed: bool,
    pub(super) outbox: Outbox,
}

impl Conn {
    /// Queues a reply, waiting for space: replies are never dropped.
    pub(super) async fn send(&self, frame: String) {
        self.outbox.send(Utf8Bytes::from(frame)).await;
    }

    pub(super) async fn fail(&self, e: ProtocolError) {
        self.edge.metrics.protocol_errors.inc();
        self.send(e.to_frame()).await;
    }

    pub(super) fn authorise(&self, id: Option<u64>, action: Action, channel: &str) -> Result<(), ProtocolError> {
        if self.identity.may(action, channel) {
            Ok(())
        } else {
            let verb = if action == Action::Subscribe { "subscribe to" } else { "publish to" };
            Err(ProtocolError::new(id, ErrorCode::Forbidden, format!("your token does not allow you to {verb} {channel:?}")))
        }
    }

    pub(super) async fn handle(&mut self, text: &str) {
        let result = match protocol::parse_request(text) {
            Ok(req) => self.dispatch(req).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.fail(e).await;
        }
    }

    pub(super) async fn dispatch(&mut self, Request { id, op }: Request) -> Result<(), ProtocolError> {
        let unavailable = |e: &dyn std::fmt::Display| ProtocolError::new(id, ErrorCode::Unavailable, format!("Redis is unavailable: {e}"));
        match op {
            Op::Ping => self.send(protocol::reply_frame(id, json!({"pong": true}))).await,
            Op::Subscribe { channel, since } => self.subscribe(id, channel, since).await?,
            Op::Unsubscribe { channel } => {
                if !self.unsubscribe(&channel).await {
                    return Err(ProtocolError::new(id, ErrorCode::NotSubscribed, format!("not subscribed to {channel:?}")));
                }
                self.send(protocol::reply_frame(id, json!({"channel": channel}))).await;
            }
            Op::Refresh { token } => self.refresh(id, &token).await?,
            Op::Publish { channel, data, pid } => {
                self.authorise(id, Action::Publish, &channel)?;
                let published = self.edge.store.publish(&channel, &data, pid.as_deref()).await.map_err(|e| publish_error(id, &e))?;
                if !published.repeated {
                    self.edge.metrics.messages_in.inc();
                }
                let mut reply = json!({"channel": channel, "offset": published.offset.to_string(), "epoch": published.epoch});
                if published.repeated {
                    reply["repeated"] = json!(true);
                }
                self.send(protocol::reply_frame(id, reply)).await;
            }
            Op::Presence { channel } => {
                self.authorise(id, Action::Subscribe, &channel)?;
                let members = self.edge.presence.list(&channel).await.map_err(|e| unavailable(&e))?;
                let mut frame = json!({"type": "presence", "channel": channel, "members": members});
                if let Some(id) = id {
                    frame["id"] = json!(id);
                }
                self.send(frame.to_string()).await;
            }
            Op::Ephemeral { channel, key, data, ttl_ms } => {
                self.authorise(id, Action::Publish, &channel)?;
                self.edge.presence.ephemeral(&channel, &key, &self.identity.user, &data, ttl_ms).await.map_err(|e| unavailable(&e))?;
                self.send(protocol::reply_frame(id, json!({"channel": channel}))).await;
            }
            Op::History { channel, since, limit } => {
                self.authorise(id, Action::Subscribe, &channel)?;
                let after = since.as_ref().map_or(Offset::ZERO, |p| p.offset);
                let page = self.edge.store.read(&channel, after, limit as u32).await.map_err(|e| unavailable(&e))?;
                let gap = since.as_ref().and_then(|s| crate::delivery::offset::gap_for(s, &page.epoch, page.first, page.last));
                let same_epoch = since.as_ref().is_none_or(|s| s.epoch == page.epoch);
                let mut messages = Vec::with_capacity(page.entries.len());
                for (offset, data) in page.entries.iter().filter(|_| same_epoch) {
                    let data =
                        RawValue::from_string(data.clone()).map_err(|e| ProtocolError::new(id, ErrorCode::Internal, e.to_string()))?;
                    messages.push(json!({"offset": offset.to_string(), "data": data}));
                }
                self.send(protocol::reply_frame(
                    id,
                    json!({"channel": channel, "epoch": page.epoch, "offset": page.last.to_string(),
                           "gap": gap.as_ref().map(protocol::gap_json), "messages": messages}),
                ))
                .await;
            }
        }
        Ok(())
    }

    /// Subscribes (with `id: None` when restoring a resumed session): the one path for a
    /// `subscribe` request and a restored subscription.
    pub(super) async fn subscribe(&mut self, id: Option<u64>, channel: String, since: Option<Position>) -> Result<(), ProtocolError> {
        self.authorise(id, Action::Subscribe, &channel)?;
        if self.session.is_subscribed(&channel) {
            return Err(ProtocolError::new(id, ErrorCode::AlreadySubscribed, format!("already subscribed to {channel:?}")));
        }
        if self.session.subscription_count() >= self.edge.config.max_subscriptions {
            return Err(ProtocolError::new(
                id,
                ErrorCode::TooManySubscriptions,
                format!("at most {} subscriptions per connection", self.edge.config.max_subscriptions),
            ));
        }
        let sub = Subscribe {
            hub: &self.edge.hub,
            store: &self.edge.store,
            metrics: &self.edge.metrics,
            outbox: &self.outbox,
            page_size: self.edge.config.recovery_page,
        };
        let start = match sub.run(id, &channel, since).await {
            Ok(start) => start,
            Err(e) => {
                self.edge.hub.leave(&channel, self.outbox.id);
                return Err(ProtocolError::new(id, ErrorCode::Unavailable, format!("Redis is unavailable: {e}")));
            }
        };
        self.session.subscribed(&channel, start);
        if let Err(e) = self.edge.presence.join(&channel, &self.session.id, &self.identity.user, !self.resumed).await {
            tracing::warn!(%channel, error = %e, "presence join failed");
        }
        Ok(())
    }

    /// Ends a subscription: out of the session, the hub and presence. False when there was
    /// none.
    async fn unsubscribe(&mut self, channel: &str) -> bool {
        if !self.session.unsubscribed(channel) {
            return false;
        }
        self.edge.hub.leave(channel, self.outbox.id);
        if let Err(e) = self.edge.presence.leave(channel, &self.session.id, &self.identity.user).await {
            tracing::warn!(%channel, error = %e, "presence leave failed");
        }
        true
    }

    /// Takes a fresh token for the same user in band: its grants apply from now on (a
    /// subscription it no longer grants is ended, with a `forbidden` error naming the
    /// channel) and its expiry replaces the old one.
    async fn refresh(&mut self, id: Option<u64>, token: &str) -> Result<(), ProtocolError> {
        if self.identity.grants.is_none() {
            return Err(ProtocolError::new(
                id,
                ErrorCode::BadRequest,
                "authentication is off (SF_AUTH=none): there is no token to refresh",
            ));
        }
        let fresh = self
            .edge
            .auth
            .authenticate(Some(token), self.outbox.id)
            .map_err(|e| ProtocolError::new(id, ErrorCode::Forbidden, format!("refresh refused: {e}")))?;
        if fresh.user != self.identity.user {
            return Err(ProtocolError::new(
                id,
                ErrorCode::Forbidden,
                "refresh refused: the token is for another user; connect again to change users",
            ));
        }
        let expires = fresh.expires.unwrap_or(0);
        self.identity = fresh;
        self.session.identity_expires.store(expires, Ordering::Relaxed);
        for channel in self.session.channels() {
            if !self.identity.may(Action::Subscribe, &channel) && self.unsubscribe(&channel).await {
                let message = format!("your new token does not allow you to subscribe to {channel:?}; you were unsubscribed");
                self.fail(ProtocolError::new(None, ErrorCode::Forbidden, message).with_channel(&channel)).await;
            }
        }
        self.send(protocol::reply_frame(id, json!({"expiresAt": expires}))).await;
        Ok(())
    }

    pub(super) async fn leave_all(&mut self, ended: super::connection::Ended) {
        // A drained client is coming back elsewhere: keep its presence, announce nothing.
        let handing_off = self.outbox.signals.drain.load(Ordering::Relaxed);
        let mut lost = Vec::new();
        for channel in self.session.channels() {
            self.edge.hub.leave(&channel, self.outbox.id);
            if handing_off {
                self.edge.presence.hand_off(&channel, &self.session.id, &self.identity.user);
            } else if ended == super::connection::Ended::Lost {
                // It may come back: a network blip (or a reconnect storm) must not flood
                // every room with leave and join events.
                lost.push(channel);
            } else if let Err(e) = self.edge.presence.leave(&channel, &self.session.id, &self.identity.user).await {
                tracing::debug!(%channel, error = %e, "presence leave failed");
            }
        }
        if !lost.is_empty() {
            self.edge.presence.leave_unless_back(lost, &self.session.id, &self.identity.user);
        }
    }
}
