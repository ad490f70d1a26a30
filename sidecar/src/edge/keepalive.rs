//! Keepalive pings for every connection of the pod from one task, instead of a timer in
//! each connection's writer (a tokio timer is a boxed `Sleep` of its own: on 50,000 idle
//! connections that was the difference between above and below 5 KiB per connection).
//!
//! The connections are split into `SLICES` by id ([`crate::slices`]), and every
//! `SF_PING_INTERVAL / SLICES` the next slice is told to ping: each connection gets one
//! ping per interval, and the pings of a pod are spread over the interval rather than
//! sent together.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::delivery::drain::Drain;
use crate::slices::{Slice, Turns};

/// Slices of the ping interval: at the 1 s minimum interval, a slice every 62.5 ms.
const SLICES: u64 = 16;

/// Tells one slice of the connections to ping every `interval / SLICES`, forever.
pub async fn ping_forever(connections: Arc<Drain>, interval: Duration) {
    // Nobody is due at once: slice 0's turn is one turn after the start.
    let mut turns = Turns::starting_later(interval, SLICES);
    loop {
        ping_slice(&connections, turns.next().await);
    }
}

/// Sets the ping flag of every connection in `slice` and wakes its writer.
fn ping_slice(connections: &Drain, slice: Slice) {
    connections.each_live(|id, signals| {
        if slice.holds(id) {
            signals.ping.store(true, Ordering::Release);
            signals.wake.notify_one();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::hub::ConnSignals;

    #[test]
    fn each_slice_pings_its_own_connections_and_every_connection_is_in_one() {
        let drain = Drain::default();
        let conns: Vec<Arc<ConnSignals>> = (0..100).map(|_| Arc::default()).collect();
        for (id, signals) in conns.iter().enumerate() {
            drain.register(id as u64, signals.clone());
        }
        ping_slice(&drain, Slice { index: 3, count: SLICES });
        let pinged: Vec<usize> = (0..100).filter(|&i| conns[i].ping.swap(false, Ordering::AcqRel)).collect();
        assert_eq!(pinged, vec![3, 19, 35, 51, 67, 83, 99]);
        for index in 0..SLICES {
            ping_slice(&drain, Slice { index, count: SLICES });
        }
        assert!(conns.iter().all(|s| s.ping.load(Ordering::Acquire)), "one round of slices pings everyone");
    }
}
