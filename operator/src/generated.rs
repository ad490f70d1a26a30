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

/// One generated value: whence it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Its Secret exists.
    Read,
    /// Its Secret was deleted; the value the pods use was remembered.
    Restored,
    /// Nothing uses it yet: a new value.
    New,
}

/// The values for `ctx`'s fleet and, for each Secret recreated from memory, its name (for an
/// Event).
pub async fn generated(client: &Client, ctx: &Ctx<'_>, memory: &SecretMemory) -> Result<(Generated, Vec<String>)> {
    let uid = ctx.fleet.metadata.uid.clone().unwrap_or_default();
    let remembered = memory.recall(&uid);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ctx.namespace);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ctx.namespace);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ctx.namespace);
    let redis_users = if ctx.fleet.spec.redis.mode == RedisMode::External {
        None
    } else {
        sets.get_opt(&ctx.child("redis")).await?.map(|_| format!("StatefulSet {}", ctx.child("redis")))
    };
    let gateway_users = deployments.get_opt(&deployment_name(ctx)).await?.map(|_| format!("Deployment {}", deployment_name(ctx)));
    let mut restored = Vec::new();
    let mut one = async |name: String, key: &str, users: Option<String>, recalled: Option<String>, needed: bool| -> Result<String> {
        let existing = secrets
            .get_opt(&name)
            .await?
            .and_then(|s| s.data)
            .and_then(|d| d.get(key).map(|v| String::from_utf8_lossy(&v.0).into_owned()))
            .filter(|v| !v.is_empty());
        let (value, source) = match (existing, recalled, users) {
            (Some(v), _, _) => (v, Source::Read),
            (None, _, _) if !needed => (String::new(), Source::New),
            (None, Some(v), _) => (v, Source::Restored),
            (None, None, Some(used_by)) => return Err(Error::SecretLost { name, key: key.into(), used_by }),
            (None, None, None) => (random_secret(), Source::New),
        };
        if source == Source::Restored {
            restored.push(name);
        }
        Ok(value)
    };
    let g = Generated {
        redis_password: one(
            redis_secret_name(ctx),
            REDIS_PASSWORD_KEY,
            redis_users,
            remembered.as_ref().map(|g| g.redis_password.clone()),
            ctx.fleet.spec.redis.mode != RedisMode::External,
        )
        .await?,
        resume_key: one(
            resume_secret_name(ctx),
            RESUME_KEY_KEY,
            gateway_users.clone(),
            remembered.as_ref().map(|g| g.resume_key.clone()),
            true,
        )
        .await?,
        jwt_secret: one(
            jwt_secret_name(ctx),
            JWT_SECRET_KEY,
            gateway_users,
            remembered.as_ref().map(|g| g.jwt_secret.clone()),
            generates_jwt_secret(ctx),
        )
        .await?,
    };
    // A value that is not needed (an unused kind) keeps whatever was remembered for it.
    let merged = Generated {
        redis_password: or_remembered(&g.redis_password, remembered.as_ref().map(|r| &r.redis_password)),
        resume_key: g.resume_key.clone(),
        jwt_secret: or_remembered(&g.jwt_secret, remembered.as_ref().map(|r| &r.jwt_secret)),
    };
    memory.remember(&uid, &merged);
    Ok((merged, restored))
}

fn or_remembered(value: &str, remembered: Option<&String>) -> String {
    if value.is_empty() { remembered.cloned().unwrap_or_else(random_secret) } else { value.to_string() }
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
