//! The values of generated Secrets (the Redis password, the resume-token key, the JWT
//! secret): read back when their Secret exists, never overwritten, generated once.
//!
//! A generated Secret that someone deleted is never silently replaced by a new value while
//! pods still use the old one (a new Redis password under running Redis pods would split the
//! fleet at the next pod restart). The operator remembers every value it read or made; a
//! deleted Secret is recreated with the remembered value (and an Event says so). After an
//! operator restart nothing is remembered: then, while the Secret's users exist, the fleet
//! goes Degraded with [`Error::SecretLost`], which says how to recover.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use rand::RngCore;

use crate::children::gateway::deployment_name;
use crate::children::secrets::{
    JWT_SECRET_KEY, REDIS_PASSWORD_KEY, RESUME_KEY_KEY, generates_jwt_secret, jwt_secret_name, redis_secret_name, resume_secret_name,
};
use crate::children::{Ctx, Generated};
use crate::error::{Error, Result};
use socketfleet_api::crd::RedisMode;

/// Values this operator process has seen, by fleet uid.
#[derive(Default)]
pub struct SecretMemory {
    by_fleet: Mutex<HashMap<String, Generated>>,
}

impl SecretMemory {
    fn recall(&self, uid: &str) -> Option<Generated> {
        self.by_fleet.lock().ok().and_then(|m| m.get(uid).cloned())
    }

    fn remember(&self, uid: &str, g: &Generated) {
        if let Ok(mut m) = self.by_fleet.lock() {
            m.insert(uid.to_string(), g.clone());
        }
    }
}

/// 32 random bytes as 64 hex digits.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The child whose pods read a generated Secret.
#[derive(Clone)]
enum User {
    StatefulSet(String),
    Deployment(String),
}

impl User {
    /// Whether it exists (read only when its Secret is missing).
    async fn exists(&self, client: &Client, namespace: &str) -> Result<bool> {
        Ok(match self {
            User::StatefulSet(n) => Api::<StatefulSet>::namespaced(client.clone(), namespace).get_opt(n).await?.is_some(),
            User::Deployment(n) => Api::<Deployment>::namespaced(client.clone(), namespace).get_opt(n).await?.is_some(),
        })
    }

    fn describe(&self) -> String {
        match self {
            User::StatefulSet(n) => format!("StatefulSet {n}"),
            User::Deployment(n) => format!("Deployment {n}"),
        }
    }
}

/// One generated Secret of a fleet: its name and key, the child whose pods read it, and
/// the value remembered for it.
struct Wanted<'a> {
    name: String,
    key: &'static str,
    user: User,
    remembered: Option<&'a String>,
}

/// The values for `ctx`'s fleet and, for each Secret recreated from memory, its name (for an
/// Event). A value the spec does not use (the Redis password in external mode, the JWT
/// secret with a `jwtSecretRef`) is left empty and not read.
pub async fn generated(client: &Client, ctx: &Ctx<'_>, memory: &SecretMemory) -> Result<(Generated, Vec<String>)> {
    let uid = ctx.fleet.metadata.uid.clone().unwrap_or_default();
    let remembered = memory.recall(&uid);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ctx.namespace);
    let gateway = User::Deployment(deployment_name(ctx));
    let mut restored = Vec::new();
    let mut value = async |w: Wanted<'_>| -> Result<String> {
        let existing = secrets
            .get_opt(&w.name)
            .await?
            .and_then(|s| s.data)
            .and_then(|d| d.get(w.key).map(|v| String::from_utf8_lossy(&v.0).into_owned()))
            .filter(|v| !v.is_empty());
        if let Some(v) = existing {
            return Ok(v);
        }
        if let Some(v) = w.remembered {
            restored.push(w.name);
            return Ok(v.clone());
        }
        // Never a new value under pods that read the old one.
        if w.user.exists(client, &ctx.namespace).await? {
            return Err(Error::SecretLost { name: w.name, key: w.key.into(), used_by: w.user.describe() });
        }
        Ok(random_secret())
    };
    let g = Generated {
        redis_password: if ctx.fleet.spec.redis.mode == RedisMode::External {
            String::new()
        } else {
            value(Wanted {
                name: redis_secret_name(ctx),
                key: REDIS_PASSWORD_KEY,
                user: User::StatefulSet(ctx.child("redis")),
                remembered: remembered.as_ref().map(|r| &r.redis_password),
            })
            .await?
        },
        resume_key: value(Wanted {
            name: resume_secret_name(ctx),
            key: RESUME_KEY_KEY,
            user: gateway.clone(),
            remembered: remembered.as_ref().map(|r| &r.resume_key),
        })
        .await?,
        jwt_secret: if generates_jwt_secret(ctx) {
            value(Wanted {
                name: jwt_secret_name(ctx),
                key: JWT_SECRET_KEY,
                user: gateway,
                remembered: remembered.as_ref().map(|r| &r.jwt_secret),
            })
            .await?
        } else {
            String::new()
        },
    };
    memory.remember(&uid, &g);
    Ok((g, restored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_long_and_random() {
        let (a, b) = (random_secret(), random_secret());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
