//! How many sockets local mode may hold. The balancer proxies every client, so each one
//! costs it two open files (the client's socket and the sidecar's); at the process's
//! open-file limit `accept` fails and new clients are refused. The soft limit is raised to
//! the hard one at start (a desktop's default soft limit of 1,024 would stop at about 500
//! clients), and the banner says how many clients fit, so that a load test sized beyond
//! it fails with a reason rather than with handshakes cut short.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Open files kept for everything but proxied clients: listeners, Redis and admin
/// connections, logs, the demo pages being served.
const RESERVED: u64 = 200;

/// Raises the soft open-file limit to the hard limit; returns the limit now in force
/// (sidecars started after this inherit it). `None` when there is no limit.
pub fn raise_to_hard_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        // Refused only where the hard limit itself cannot be read back; the limit in
        // force is read again below either way.
        let _ = setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum });
    }
    getrlimit(Resource::Nofile).current
}

/// How many clients the balancer can proxy at once under an open-file `limit`.
pub fn clients_within(limit: u64) -> u64 {
    limit.saturating_sub(RESERVED) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_proxied_client_costs_two_open_files_beyond_the_reserve() {
        assert_eq!(clients_within(20_000), 9_900);
        assert_eq!(clients_within(1_024), 412);
        assert_eq!(clients_within(100), 0);
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let now = raise_to_hard_limit();
        assert_eq!(now, getrlimit(Resource::Nofile).maximum);
    }
}
