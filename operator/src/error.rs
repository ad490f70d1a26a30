//! The operator's errors, each with a fixed reason: the same word in metrics, Events and
//! status conditions.

use crate::redis_cluster::HealError;
use crate::validate::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the spec breaks a rule: {0}")]
    InvalidSpec(#[from] Invalid),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("Redis administration: {0}")]
    Redis(#[from] HealError),
    #[error("Secret {name} has no key {key:?} (referenced by the spec)")]
    MissingSecretKey { name: String, key: String },
    #[error("the object has no namespace")]
    NoNamespace,
}

impl Error {
    /// A fixed, CamelCase reason for conditions, Events and the metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => "Forbidden",
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "Conflict",
            Error::Kube(_) => "KubernetesApiError",
            Error::Redis(_) => "RedisAdminError",
            Error::MissingSecretKey { .. } => "SecretMissing",
            Error::NoNamespace => "InvalidSpec",
        }
    }

    /// Whether retrying without a spec change can help.
    pub fn retryable(&self) -> bool {
        !matches!(self, Error::InvalidSpec(_) | Error::NoNamespace)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_fixed_words() {
        let invalid = Error::InvalidSpec(Invalid(vec!["x".into()]));
        assert_eq!((invalid.reason(), invalid.retryable()), ("InvalidSpec", false));
        let missing = Error::MissingSecretKey { name: "s".into(), key: "k".into() };
        assert_eq!((missing.reason(), missing.retryable()), ("SecretMissing", true));
        assert!(missing.to_string().contains("Secret s has no key \"k\""));
    }
}
