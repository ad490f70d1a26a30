//! Signed resume tokens.
//!
//! `v1.<session>.<user>.<expires>.<mac>`: `user` is base64url, `expires` Unix seconds, `mac`
//! base64url of HMAC-SHA256 over everything before it. Any pod holding the key verifies a
//! token without asking anyone; a token names its user, so it cannot resume another user's
//! session. Keys rotate: tokens are signed with the current key and accepted under the
//! current or the previous one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the resume token is malformed")]
    Malformed,
    #[error("the resume token's signature is invalid")]
    BadSignature,
    #[error("the resume token has expired")]
    Expired,
    #[error("the resume token belongs to another user")]
    OtherUser,
}

/// What a valid token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumable {
    pub session: String,
    pub user: String,
}

pub struct ResumeKeys {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

fn mac(key: &[u8], body: &str) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut m = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(body.as_bytes());
    m
}

impl ResumeKeys {
    pub fn new(current: Vec<u8>, previous: Option<Vec<u8>>) -> ResumeKeys {
        ResumeKeys { current, previous }
    }

    pub fn issue(&self, session: &str, user: &str, expires_unix: u64) -> String {
        let body = format!("v1.{session}.{}.{expires_unix}", B64.encode(user));
        let sig = B64.encode(mac(&self.current, &body).finalize().into_bytes());
        format!("{body}.{sig}")
    }

    /// Checks signature (current or previous key, in constant time) and expiry.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Resumable, TokenError> {
        let (body, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
        let valid = std::iter::once(&self.current).chain(self.previous.as_ref()).any(|key| mac(key, body).verify_slice(&sig).is_ok());
        if !valid {
            return Err(TokenError::BadSignature);
        }
        let parts: Vec<&str> = body.split('.').collect();
        let [version, session, user, expires] = parts[..] else { return Err(TokenError::Malformed) };
        if version != "v1" || session.is_empty() {
            return Err(TokenError::Malformed);
        }
        let expires: u64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        if expires <= now_unix {
            return Err(TokenError::Expired);
        }
        let user = String::from_utf8(B64.decode(user).map_err(|_| TokenError::Malformed)?).map_err(|_| TokenError::Malformed)?;
        Ok(Resumable { session: session.to_string(), user })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ResumeKeys {
        ResumeKeys::new(b"current-key-current-key-current!!".to_vec(), Some(b"previous-key-previous-key-prev!!".to_vec()))
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let t = keys().issue("abc123", "ada", 1000);
        assert_eq!(keys().verify(&t, 999), Ok(Resumable { session: "abc123".into(), user: "ada".into() }));
        assert_eq!(keys().verify(&t, 1000), Err(TokenError::Expired));
    }

    #[test]
    fn tampering_is_detected() {
        let t = keys().issue("abc123", "ada", 1000);
        let forged_session = t.replacen("abc123", "abc124", 1);
        assert_eq!(keys().verify(&forged_session, 1), Err(TokenError::BadSignature));
        let forged_expiry = t.replacen(".1000.", ".9999.", 1);
        assert_eq!(keys().verify(&forged_expiry, 1), Err(TokenError::BadSignature));
        let other_key = ResumeKeys::new(b"attacker".to_vec(), None).issue("abc123", "ada", 1000);
        assert_eq!(keys().verify(&other_key, 1), Err(TokenError::BadSignature));
        assert_eq!(keys().verify("garbage", 1), Err(TokenError::Malformed));
        assert_eq!(keys().verify("a.b.c", 1), Err(TokenError::Malformed));
    }

    #[test]
    fn rotation_accepts_the_previous_key_only_while_configured() {
        let old = ResumeKeys::new(b"previous-key-previous-key-prev!!".to_vec(), None).issue("s", "u", 1000);
        assert!(keys().verify(&old, 1).is_ok(), "signed with the previous key");
        let rotated_out = ResumeKeys::new(b"current-key-current-key-current!!".to_vec(), None);
        assert_eq!(rotated_out.verify(&old, 1), Err(TokenError::BadSignature));
    }
}
