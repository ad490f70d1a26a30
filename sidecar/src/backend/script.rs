//! Lua scripts run on the primary of their keys' slot: EVALSHA first, EVAL on NOSCRIPT
//! (a node that restarted or was promoted does not have the script cached).

use redis::Value;

use super::router::{Lane, Router, RouterError};
use super::slot::key_slot;

/// A Lua script and its SHA1.
pub struct Script {
    body: &'static str,
    sha: String,
}

impl Script {
    pub fn new(body: &'static str) -> Script {
        Script { body, sha: sha1_smol::Sha1::from(body).digest().to_string() }
    }

    fn cmd(&self, by_sha: bool, keys: &[&str], args: &[&[u8]]) -> redis::Cmd {
        let mut c = if by_sha { redis::cmd("EVALSHA") } else { redis::cmd("EVAL") };
        c.arg(if by_sha { self.sha.as_str() } else { self.body }).arg(keys.len());
        for k in keys {
            c.arg(*k);
        }
        for a in args {
            c.arg(*a);
        }
        c
    }

    /// Runs the script on the slot of `keys[0]` (all keys must share it), followed by
    /// `then` on the same connection when given (e.g. `WAIT`, so it goes over the node's
    /// connection for blocking commands). Returns every reply.
    pub async fn run(
        &self,
        router: &Router,
        keys: &[&str],
        args: &[&[u8]],
        idempotent: bool,
        then: Option<&redis::Cmd>,
    ) -> Result<Vec<Value>, RouterError> {
        let slot = key_slot(keys.first().map_or(&b""[..], |k| k.as_bytes()));
        let attempt = |by_sha: bool| {
            let mut pipe = redis::pipe();
            pipe.add_command(self.cmd(by_sha, keys, args));
            if let Some(c) = then {
                pipe.add_command(c.clone());
            }
            pipe
        };
        let lane = if then.is_some() { Lane::Blocking } else { Lane::Shared };
        match router.query_in(lane, slot, &attempt(true), idempotent).await {
            Err(e) if e.code() == Some("NOSCRIPT") => router.query_in(lane, slot, &attempt(false), idempotent).await,
            other => other,
        }
    }
}
