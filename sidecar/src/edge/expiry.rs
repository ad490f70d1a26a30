//! A connection lives no longer than its token: a warning frame ahead of the token's `exp`
//! (so a client can send `{"op":"refresh","token":...}` or reconnect with a fresh one),
//! then, at `exp` (plus the clock-skew leeway accepted at connect), an error frame and the
//! close code [`EXPIRED_CLOSE_CODE`]. Resume tokens never outlive the identity either
//! (`connection::resume_token`), so a drain cannot extend it.

use std::time::Duration;

use tokio::time::Instant;

use crate::edge::auth::LEEWAY_SECS;

/// How long before expiry the client is warned.
pub const WARNING: Duration = Duration::from_secs(30);

/// WebSocket close code of a connection whose token expired (4000-4999 are for applications).
pub const EXPIRED_CLOSE_CODE: u16 = 4001;

/// What the connection does at its next expiry deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send the `expiring` frame for this `exp`.
    Warn { expires: u64 },
    /// The token has expired: end the connection.
    Expire { expires: u64 },
}

/// The next deadline, as milliseconds from `now_ms` (Unix), for a token expiring at
/// `expires` (Unix seconds) when `warned` is the `exp` already warned about. `None`: the
/// connection has no token and never expires.
pub fn next(expires: Option<u64>, warned: Option<u64>, now_ms: u64) -> Option<(u64, Step)> {
    let expires = expires?;
    let end_ms = (expires + LEEWAY_SECS).saturating_mul(1000);
    let warn_ms = end_ms.saturating_sub(WARNING.as_millis() as u64);
    if warned != Some(expires) {
        return Some((warn_ms.saturating_sub(now_ms), Step::Warn { expires }));
    }
    Some((end_ms.saturating_sub(now_ms), Step::Expire { expires }))
}

/// A connection's expiry timer. It is re-armed only when the token or what was warned
/// about changes, not for every frame the client sends: the read loop polls it per frame.
pub struct Timer {
    /// The (expires, warned) it is armed for.
    armed_for: Option<(Option<u64>, Option<u64>)>,
    step: Option<Step>,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Default for Timer {
    fn default() -> Timer {
        Timer { armed_for: None, step: None, sleep: Box::pin(tokio::time::sleep(Duration::ZERO)) }
    }
}

impl Timer {
    /// Arms it for a token expiring at `expires` of which `warned` was warned about, unless
    /// it is armed for exactly that already. `now_ms`: Unix milliseconds.
    pub fn arm(&mut self, expires: Option<u64>, warned: Option<u64>, now_ms: impl FnOnce() -> u64) {
        if self.armed_for == Some((expires, warned)) {
            return;
        }
        self.armed_for = Some((expires, warned));
        let next = next(expires, warned, now_ms());
        self.step = next.map(|(_, step)| step);
        if let Some((in_ms, _)) = next {
            self.sleep.as_mut().reset(Instant::now() + Duration::from_millis(in_ms));
        }
    }

    /// Waits for the armed step; forever when there is none.
    pub async fn fired(&mut self) -> Step {
        match self.step {
            Some(step) => {
                self.sleep.as_mut().await;
                step
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_thirty_seconds_ahead_then_expires_at_exp_plus_the_leeway() {
        let now = 1_000_000_000;
        let exp = now / 1000 + 120;
        let (in_ms, step) = next(Some(exp), None, now).expect("a deadline");
        assert_eq!(step, Step::Warn { expires: exp });
        assert_eq!(in_ms, (120 + LEEWAY_SECS - 30) * 1000);
        let (in_ms, step) = next(Some(exp), Some(exp), now).expect("a deadline");
        assert_eq!(step, Step::Expire { expires: exp });
        assert_eq!(in_ms, (120 + LEEWAY_SECS) * 1000);
    }

    #[test]
    fn a_token_close_to_expiry_is_warned_at_once_and_a_refreshed_one_is_warned_again() {
        let now = 1_000_000_000;
        let exp = now / 1000 + 10;
        assert_eq!(next(Some(exp), None, now), Some((0, Step::Warn { expires: exp })));
        let later = exp + 3600;
        assert_eq!(next(Some(later), Some(exp), now).map(|(_, s)| s), Some(Step::Warn { expires: later }));
        assert_eq!(next(Some(exp - 100), Some(exp - 100), now), Some((0, Step::Expire { expires: exp - 100 })));
        assert_eq!(next(None, None, now), None, "no token, no expiry");
    }
}
