//! What local mode checks before it starts a process: every problem it can see in advance
//! is reported at once (not one per run), and what it will not do is said at start rather
//! than silently left out.

use std::path::Path;
use std::time::Duration;

use socketfleet_api::crd::{RedisMode, SocketFleet};

/// How long a name lookup of an external Redis address may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// What stops the run, every problem on its own line; `Ok` carries the notices to print.
pub async fn check(fleet: &SocketFleet, www: &Path) -> Result<Vec<String>, String> {
    let spec = &fleet.spec;
    // The same checks the start runs one by one, run here together.
    let mut problems: Vec<String> =
        [super::jwt_secret(fleet).err(), super::auth(fleet, None).err()].into_iter().flatten().map(|e| e.to_string()).collect();
    if spec.redis.mode == RedisMode::External {
        match &spec.redis.external {
            None => problems.push("redis.mode: external needs redis.external (mode and addresses)".to_string()),
            Some(ext) => {
                problems.extend(super::redis::external_password(ext).err().map(|e| e.to_string()));
                problems.extend(unresolvable(&ext.addresses).await);
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n  "));
    }
    let mut notices = Vec::new();
    if let Some(app) = &spec.gateway.app {
        notices.push(format!(
            "gateway.app ({}) is a container of each gateway pod in Kubernetes; local mode runs no containers: \
             start your app yourself and point it at a sidecar's app API (listed below)",
            app.image
        ));
    }
    if !www.join("index.html").is_file() {
        notices.push(format!(
            "--www {}: no index.html there, so / answers \"not found\" (run from the repository, or pass --www <dir with the demo pages>)",
            www.display()
        ));
    }
    Ok(notices)
}

/// The external addresses whose host name does not resolve, each as a problem.
async fn unresolvable(addresses: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for addr in addresses {
        match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(addr.as_str())).await {
            Ok(Ok(found)) => {
                if found.count() == 0 {
                    problems.push(format!("redis.external.addresses: {addr} resolves to no address"));
                }
            }
            Ok(Err(e)) => problems.push(format!("redis.external.addresses: {addr} cannot be resolved here ({e})")),
            Err(_) => problems.push(format!("redis.external.addresses: {addr} was not resolved in {} s", LOOKUP_TIMEOUT.as_secs())),
        }
    }
    problems
}
