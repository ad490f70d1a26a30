//! Generated secrets: created once, never overwritten (their values come from `Generated`,
//! which `apply` fills from the existing Secrets).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::{COMPONENT_GATEWAY, COMPONENT_REDIS, Ctx, Generated};
use socketfleet_api::crd::{AuthMode, RedisMode};

/// Secret names and keys the gateway and Redis pods read.
pub const REDIS_PASSWORD_KEY: &str = "password";
pub const RESUME_KEY_KEY: &str = "key";
pub const JWT_SECRET_KEY: &str = "secret";

pub fn redis_secret_name(ctx: &Ctx) -> String {
    ctx.child("redis")
}

pub fn resume_secret_name(ctx: &Ctx) -> String {
    ctx.child("resume")
}

pub fn jwt_secret_name(ctx: &Ctx) -> String {
    ctx.child("jwt")
}

/// Whether the operator generates the JWT secret (hs256 without a reference).
pub fn generates_jwt_secret(ctx: &Ctx) -> bool {
    ctx.fleet.spec.auth.mode == AuthMode::Hs256 && ctx.fleet.spec.auth.jwt_secret_ref.is_none()
}

fn secret(ctx: &Ctx, name: String, component: &str, key: &str, value: &str) -> Secret {
    Secret {
        metadata: ctx.meta(name, component),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(key.to_string(), ByteString(value.as_bytes().to_vec()))])),
        ..Secret::default()
    }
}

pub fn build(ctx: &Ctx, generated: &Generated) -> Vec<Secret> {
    let mut out = vec![secret(ctx, resume_secret_name(ctx), COMPONENT_GATEWAY, RESUME_KEY_KEY, &generated.resume_key)];
    if ctx.fleet.spec.redis.mode != RedisMode::External {
        out.push(secret(ctx, redis_secret_name(ctx), COMPONENT_REDIS, REDIS_PASSWORD_KEY, &generated.redis_password));
    }
    if generates_jwt_secret(ctx) {
        out.push(secret(ctx, jwt_secret_name(ctx), COMPONENT_GATEWAY, JWT_SECRET_KEY, &generated.jwt_secret));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fleet, generated};
    use super::*;
    use kube::ResourceExt;
    use serde_json::json;

    fn names(spec: serde_json::Value) -> Vec<String> {
        let f = fleet(spec);
        build(&Ctx::new(&f), &generated()).iter().map(|s| s.name_any()).collect()
    }

    #[test]
    fn secrets_follow_the_auth_and_redis_modes() {
        assert_eq!(names(json!({})), ["chat-resume", "chat-redis", "chat-jwt"]);
        assert_eq!(names(json!({"auth": {"mode": "hs256", "jwtSecretRef": {"name": "mine", "key": "k"}}})), ["chat-resume", "chat-redis"]);
        assert_eq!(
            names(json!({"auth": {"mode": "none"}, "redis": {"mode": "external", "external": {"addresses": ["r:1"]}}})),
            ["chat-resume"]
        );
        let f = fleet(json!({}));
        let s = &build(&Ctx::new(&f), &generated())[1];
        assert_eq!(s.data.as_ref().and_then(|d| d.get(REDIS_PASSWORD_KEY)).map(|b| b.0.clone()), Some(b"pw".to_vec()));
    }
}
