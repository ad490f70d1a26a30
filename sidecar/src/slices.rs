//! Periodic work over every connection of the pod, spread over its interval: the
//! connections are split into `count` slices by id, and every `interval / count` the next
//! slice has its turn. Each connection is still visited once per interval, and what the
//! visits send (keepalive pings, session checkpoints to Redis) leaves evenly instead of in
//! one burst per interval.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// The slices' turns, in order, forever.
pub struct Turns {
    tick: Interval,
    count: u64,
    next: u64,
}

/// One slice: the ids `id % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub index: u64,
    pub count: u64,
}

impl Slice {
    pub fn holds(self, id: u64) -> bool {
        id % self.count == self.index
    }
}

impl Turns {
    /// `count` slices of `interval`, the first turn (slice 0's) at once; a turn that runs
    /// late delays the next.
    pub fn new(interval: Duration, count: u64) -> Turns {
        Self::starting(Instant::now(), interval, count)
    }

    /// As [`Turns::new`], but slice 0's turn comes one turn's length from now: for work
    /// nobody is due for yet (a ping right after start).
    pub fn starting_later(interval: Duration, count: u64) -> Turns {
        Self::starting(Instant::now() + interval / count as u32, interval, count)
    }

    fn starting(first: Instant, interval: Duration, count: u64) -> Turns {
        let mut tick = tokio::time::interval_at(first, interval / count as u32);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Turns { tick, count, next: 0 }
    }

    /// Waits for the next turn and names its slice: 0, 1, …, `count - 1`, 0, …
    pub async fn next(&mut self) -> Slice {
        self.tick.tick().await;
        let index = self.next;
        self.next = (index + 1) % self.count;
        Slice { index, count: self.count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_slices_take_turns_in_order_and_each_holds_its_ids() {
        let mut turns = Turns::new(Duration::from_millis(8), 4);
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(turns.next().await.index);
        }
        assert_eq!(seen, [0, 1, 2, 3, 0, 1]);
        // Starting later skips no slice: slice 0 still has the first turn, a turn later.
        let started = Instant::now();
        let mut later = Turns::starting_later(Duration::from_millis(80), 4);
        assert_eq!(later.next().await.index, 0);
        assert!(started.elapsed() >= Duration::from_millis(20), "{:?}", started.elapsed());
        let slice = Slice { index: 3, count: 16 };
        assert_eq!((0..100).filter(|&id| slice.holds(id)).collect::<Vec<_>>(), [3, 19, 35, 51, 67, 83, 99]);
    }
}
