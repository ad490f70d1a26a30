//! What local mode checks before it starts a process: every problem it can see in advance
//! is reported at once (not one per run), and what it will not do is said at start rather
//! than silently left out.

use std::path::Path;
use std::time::Duration;

use socketfleet_api::crd::{AuthMode, RedisMode, SocketFleet};

/// How long a name lookup of an external Redis address may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// What stops the run, every problem on its own line; `Ok` carries the notices to print.
pub async fn check(fleet: &SocketFleet, www: &Path) -> Result<Vec<String>, String> {
    let spec = &fleet.spec;
    let mut problems = Vec::new();
    let env_missing = |var: &str| std::env::var(var).map_or(true, |v| v.is_empty());
    if spec.redis.mode == RedisMode::External {
        match &spec.redis.external {
            None => problems.push("redis.mode: external needs redis.external (mode and addresses)".to_string()),
            Some(ext) => {
                if let Some(r) = &ext.password_secret_ref
                    && env_missing("SOCKETFLEET_REDIS_PASSWORD")
                {
                    problems.push(format!(
                        "redis.external.passwordSecretRef names Secret {}; locally, put the password in SOCKETFLEET_REDIS_PASSWORD",
                        r.name
                    ));
                }
                problems.extend(unresolvable(&ext.addresses).await);
            }
        }
    }
    match spec.auth.mode {
        AuthMode::Hs256 => {
            if let Some(r) = &spec.auth.jwt_secret_ref
                && env_missing("SOCKETFLEET_JWT_SECRET")
            {
                problems.push(format!("auth.jwtSecretRef names Secret {}; locally, put the secret in SOCKETFLEET_JWT_SECRET", r.name));
            }
        }
        AuthMode::Rs256 => match std::env::var("SOCKETFLEET_JWT_PUBLIC_KEY_FILE") {
            Ok(file) if !Path::new(&file).is_file() => {
                problems.push(format!("SOCKETFLEET_JWT_PUBLIC_KEY_FILE names {file}, which is not a file"))
            }
            Ok(_) => {}
            Err(_) => problems
                .push("auth.mode: rs256 reads a Secret in Kubernetes; locally, set SOCKETFLEET_JWT_PUBLIC_KEY_FILE to the PEM file".into()),
        },
        AuthMode::None => {}
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
