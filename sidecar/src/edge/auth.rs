//! Client authentication (JWT) and channel authorisation.
//!
//! A token is HS256 (shared secret) or RS256 (public key file), carries `sub` (the user)
//! and `exp`, and grants channels by pattern:
//! `"channels": {"subscribe": ["room:*"], "publish": ["room:1"]}`. A pattern is an exact
//! name or a prefix ending in `*`. Subscribe grants also cover presence and history;
//! publish grants cover ephemeral keys. With `SF_AUTH=none` every client is anonymous and
//! may do everything; that mode must be chosen explicitly (see `config`).

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;

use socketfleet_api::settings::Auth;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Grants {
    #[serde(default)]
    pub subscribe: Vec<String>,
    #[serde(default)]
    pub publish: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    channels: Grants,
}

/// Who a connection belongs to and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    /// `None`: unrestricted (auth disabled).
    pub grants: Option<Grants>,
    /// When its token expires (Unix seconds); the connection ends then (`expiry.rs`).
    /// `None` with auth disabled.
    pub expires: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Subscribe,
    Publish,
}

impl Identity {
    pub fn anonymous(conn_id: u64) -> Identity {
        Identity { user: format!("anon-{conn_id}"), grants: None, expires: None }
    }

    pub fn may(&self, action: Action, channel: &str) -> bool {
        let Some(grants) = &self.grants else { return true };
        let patterns = match action {
            Action::Subscribe => &grants.subscribe,
            Action::Publish => &grants.publish,
        };
        patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => channel.starts_with(prefix),
            None => p == channel,
        })
    }
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("a token is required: connect with ?token=<jwt>")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the configured key cannot be used: {0}")]
    BadKey(String),
}

/// Clock skew allowed on `exp`, at connect and for a live connection alike.
pub const LEEWAY_SECS: u64 = 5;

pub enum Authenticator {
    Disabled,
    Jwt { key: Box<DecodingKey>, validation: Box<Validation> },
}

impl Authenticator {
    /// The key from the settings; a key file is read here, once, at start.
    pub fn from_settings(auth: &Auth) -> Result<Authenticator, AuthError> {
        let read =
            |path: &std::path::Path| std::fs::read(path).map_err(|e| AuthError::BadKey(format!("cannot read {}: {e}", path.display())));
        let (key, alg) = match auth {
            Auth::None => return Ok(Authenticator::Disabled),
            Auth::Hs256(secret) => {
                let value = secret.value().ok_or_else(|| AuthError::BadKey("the HS256 secret is a reference, not a value".into()))?;
                (DecodingKey::from_secret(value.as_bytes()), Algorithm::HS256)
            }
            Auth::Hs256File(path) => {
                let secret = read(path)?;
                if secret.len() < socketfleet_api::settings::MIN_HS256_SECRET_BYTES {
                    return Err(AuthError::BadKey(format!("the HS256 secret in {} is shorter than 32 bytes", path.display())));
                }
                (DecodingKey::from_secret(&secret), Algorithm::HS256)
            }
            Auth::Rs256 { public_key_file } => {
                let pem = read(public_key_file)?;
                (DecodingKey::from_rsa_pem(&pem).map_err(|e| AuthError::BadKey(e.to_string()))?, Algorithm::RS256)
            }
        };
        let mut validation = Validation::new(alg);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Ok(Authenticator::Jwt { key: Box::new(key), validation: Box::new(validation) })
    }

    /// Checks the connect-time token; `conn_id` names anonymous users.
    pub fn authenticate(&self, token: Option<&str>, conn_id: u64) -> Result<Identity, AuthError> {
        match self {
            Authenticator::Disabled => Ok(Identity::anonymous(conn_id)),
            Authenticator::Jwt { key, validation } => {
                let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
                let data = decode::<Claims>(token, key, validation).map_err(|e| AuthError::Invalid(e.to_string()))?;
                if data.claims.sub.is_empty() || data.claims.sub.len() > 256 {
                    return Err(AuthError::Invalid("\"sub\" must be 1-256 characters".into()));
                }
                Ok(Identity { user: data.claims.sub, grants: Some(data.claims.channels), expires: Some(data.claims.exp) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn hs256() -> Authenticator {
        let secret = socketfleet_api::settings::Secret::Value(String::from_utf8_lossy(SECRET).into_owned());
        Authenticator::from_settings(&Auth::Hs256(secret)).expect("key")
    }

    fn token(claims: serde_json::Value, secret: &[u8]) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).expect("encode")
    }

    fn far_future() -> u64 {
        4_000_000_000
    }

    #[test]
    fn hs256_token_grants_channels_by_pattern() {
        let auth = hs256();
        let t = token(json!({"sub": "ada", "exp": far_future(), "channels": {"subscribe": ["room:*"], "publish": ["room:1"]}}), SECRET);
        let id = auth.authenticate(Some(&t), 1).expect("valid token");
        assert_eq!(id.user, "ada");
        assert_eq!(id.expires, Some(far_future()));
        assert!(id.may(Action::Subscribe, "room:7"));
        assert!(!id.may(Action::Subscribe, "admin"));
        assert!(id.may(Action::Publish, "room:1"));
        assert!(!id.may(Action::Publish, "room:2"));
    }

    #[test]
    fn rejects_missing_forged_and_expired_tokens() {
        let auth = hs256();
        assert_eq!(auth.authenticate(None, 1), Err(AuthError::Missing));
        let forged = token(json!({"sub": "eve", "exp": far_future()}), b"another-secret-another-secret-xx");
        assert!(matches!(auth.authenticate(Some(&forged), 1), Err(AuthError::Invalid(_))));
        let expired = token(json!({"sub": "ada", "exp": 1_000_000}), SECRET);
        assert!(matches!(auth.authenticate(Some(&expired), 1), Err(AuthError::Invalid(_))));
        let no_sub = token(json!({"exp": far_future()}), SECRET);
        assert!(matches!(auth.authenticate(Some(&no_sub), 1), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn a_token_without_grants_may_do_nothing() {
        let auth = hs256();
        let id = auth.authenticate(Some(&token(json!({"sub": "bob", "exp": far_future()}), SECRET)), 1).expect("valid");
        assert!(!id.may(Action::Subscribe, "room:1"));
    }

    #[test]
    fn disabled_auth_is_anonymous_and_unrestricted() {
        let id = Authenticator::Disabled.authenticate(None, 42).expect("anonymous");
        assert_eq!(id.user, "anon-42");
        assert!(id.may(Action::Publish, "anything"));
    }
}
